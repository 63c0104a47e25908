// /v1/referrals/{id}/messages: one thread per referral between the prescribing office and the
// therapist side. Messages never change but for an urgent one's acknowledgement; each reader has a
// read marker.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound, validationFailed } from '../../lib/errors.js';
import { emptyBodyAsObject, optionalBodyKeyword } from '../../lib/optional-body.js';
import { decodeCursor, toPage } from '../../lib/pagination.js';
import { IdParams } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { referralReadPolicy } from '../referrals/index.js';
import { acknowledgementRefusal, outsideCareTeam } from './acknowledgement.js';
import { toMessage, type MessagesRepository } from './messages-repository.js';
import { CreateMessage, MarkRead, Message, MessageListQuery, MessagePage, MessageParams, ReadState } from './schemas.js';

const referralResource = { type: 'referral', param: 'id' };
const writePolicy = { roles: everyone, clientScope: 'referrals:write' } as const;

const messageRoutes: FastifyPluginAsyncTypebox<{ repository: MessagesRepository }> = async (app, { repository: messagesRepository }) => {
  app.post('/referrals/:id/messages', {
    config: { policy: writePolicy, auditAction: 'message.create', auditResource: referralResource },
    schema: {
      tags: ['messages'],
      operationId: 'createMessage',
      summary: "Post to the referral's thread",
      description:
        'An urgent message (priority: urgent) also announces message.urgent and stays flagged in the referral\'s activity until the other side ' +
        'acknowledges it (POST …/messages/{messageId}/acknowledge); unacknowledged after URGENT_ESCALATION_MINUTES, urgent.unacknowledged is sent once.',
      params: IdParams,
      body: CreateMessage,
      response: { 201: Message },
    },
  }, async (request, reply) => {
    const message = await app.messages.post(auditContextOf(request), request.principal!, request.params.id, request.body);
    return reply.code(201).send(message);
  });

  app.post('/referrals/:id/messages/:messageId/acknowledge', {
    config: { policy: writePolicy, auditAction: 'message.acknowledge', auditResource: referralResource },
    schema: {
      tags: ['messages'],
      operationId: 'acknowledgeMessage',
      summary: 'Acknowledge an urgent message of the other side',
      description:
        'The office acknowledges the therapist side\'s urgent messages; the therapist side of the care team (the accepting therapist, the accepting ' +
        'practice\'s admins and API clients) the office\'s. Acknowledging again answers 200 and keeps the first acknowledgement. ' +
        '409 not-urgent for a routine message, own-side for a message of the caller\'s own side, not-accepted for the practice side before anyone accepted. ' +
        'Anyone outside the care team gets 404.',
      params: MessageParams,
      response: { 200: Message },
    },
  }, async (request) => {
    const principal = request.principal!;
    const { id, messageId } = request.params;
    const acknowledged = await app.unitOfWork.run(auditContextOf(request), async (unit) => {
      // The referral's lock, which every change of the thread takes: an escalation of this message
      // takes it first too, so the two queue rather than deadlock.
      const referral = await app.referrals.lockParticipating(principal, id, unit.tx);
      if (!referral || outsideCareTeam(principal, referral)) return undefined;
      const message = await messagesRepository.find({ referralId: referral.id, messageId }, unit.tx);
      if (!message) throw notFound('message', messageId, 'Message', referral.patientId);
      const refused = acknowledgementRefusal(principal, referral, message);
      if (refused) throw refused;
      const row = (await messagesRepository.acknowledge({ messageId, by: principal.id }, unit.tx)) ?? message;
      unit.audit({ action: 'message.acknowledge', httpStatus: 200, resourceType: 'message', resourceId: messageId, patientId: referral.patientId });
      return toMessage(row);
    });
    if (!acknowledged) throw await app.referrals.notFound(id);
    return acknowledged;
  });

  app.get('/referrals/:id/messages', {
    config: { policy: referralReadPolicy, auditAction: 'message.list', auditResource: referralResource },
    schema: {
      tags: ['messages'],
      operationId: 'listMessages',
      summary: "The referral's thread, oldest first, with the caller's unread count",
      params: IdParams,
      querystring: MessageListQuery,
      response: { 200: MessagePage },
    },
  }, async (request) => {
    const principal = request.principal!;
    const after = decodeCursor(request.query.cursor, ['position']) as [number] | undefined;
    const { referral, messages } = await app.messages.listOf(principal, request.params.id, { afterSeq: after?.[0], limit: request.query.limit });
    const { unread } = await messagesRepository.readState({ referralId: referral.id, readerId: principal.id });
    await app.auditLog.record(auditContextOf(request), {
      action: 'message.list',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
    });
    return { ...toPage(messages, request.query.limit, (message) => [message.seq], ({ seq: _seq, ...message }) => message), unread };
  });

  app.post('/referrals/:id/messages/read', {
    config: { policy: referralReadPolicy, auditAction: 'message.mark_read', auditResource: referralResource },
    schema: {
      tags: ['messages'],
      operationId: 'markMessagesRead',
      summary: 'Mark the thread read, up to a message or entirely; markers never move back',
      params: IdParams,
      body: MarkRead,
      // The body is optional: an empty POST marks everything read.
      [optionalBodyKeyword]: true,
      response: { 200: ReadState },
    },
    preValidation: emptyBodyAsObject,
  }, async (request) => {
    const principal = request.principal!;
    const referral = await app.referrals.readParticipating(principal, request.params.id);
    let seq: number | undefined;
    if (request.body.upTo) {
      const message = await messagesRepository.find({ referralId: referral.id, messageId: request.body.upTo });
      if (!message) throw validationFailed([{ field: 'upTo', message: 'is not a message of this thread' }]);
      seq = message.seq;
    } else {
      seq = await messagesRepository.lastSeq(referral.id);
    }
    return app.unitOfWork.run(auditContextOf(request), async (unit) => {
      if (seq !== undefined) await messagesRepository.markRead({ referralId: referral.id, readerId: principal.id, seq }, unit.tx);
      unit.audit({ action: 'message.mark_read', httpStatus: 200, resourceType: 'referral', resourceId: referral.id, patientId: referral.patientId });
      return messagesRepository.readState({ referralId: referral.id, readerId: principal.id }, unit.tx);
    });
  });
};

export default messageRoutes;
