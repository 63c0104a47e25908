// /v1/referrals: prescriptions from physician offices to therapists, their lifecycle and history.
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { emptyBodyAsObject, optionalBodyKeyword } from '../../lib/optional-body.js';
import type { ReferralStatus } from '../../lib/vocabulary.js';
import { etagOf } from '../../lib/etag.js';
import { decodeCursor, encodeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page, PageQuery } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone, officeRoles } from '../auth/policy.js';
import { prescriberPolicy, referralReadPolicy } from './policies.js';
import type { MoveRequest } from './referral-workflow.js';
import { toReferral, toReferralEvent } from './referrals-repository.js';
import {
  AcceptReferral,
  AmendReferral,
  CancelReferral,
  CreateReferral,
  DeclineReferral,
  IfMatchHeaders,
  Referral,
  ReferralEvent,
  ReferralListQuery,
  ReferralPage,
  RerouteReferral,
  SignReferral,
} from './schemas.js';
import { apiPrefix } from '../../lib/api-prefix.js';

const writePolicy = { roles: everyone, clientScope: 'referrals:write' } as const;
const referralResource = { type: 'referral', param: 'id' };
const EtagHeader = { ETag: Type.String({ description: 'The version of the referral, for If-Match' }) };
const noSyncYet = encodeCursor(['0', '00000000-0000-0000-0000-000000000000']);

function sendReferral(reply: FastifyReply, referral: Referral, status = 200) {
  return reply.code(status).header('etag', etagOf(referral.version)).send(referral);
}

const referralRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const workflow = app.referrals;

  const moveRequest = (request: { principal?: unknown; id: string; headers: { 'if-match'?: string | undefined }; params: { id: string } } & Parameters<typeof auditContextOf>[0]): MoveRequest => ({
    context: auditContextOf(request),
    principal: request.principal!,
    referralId: request.params.id,
    ifMatch: request.headers['if-match'],
  });

  app.post('/referrals', {
    config: { policy: { roles: officeRoles, clientScope: 'referrals:write' }, auditAction: 'referral.create' },
    schema: {
      tags: ['referrals'],
      operationId: 'createReferral',
      summary: 'Prescribe medical massage: a draft, or sent at once with "send": true',
      description: 'Give an existing patientId of your office or an inline patient to register, and exactly one target.',
      body: CreateReferral,
      response: { 201: Referral },
    },
  }, async (request, reply) => {
    const referral = await workflow.create(auditContextOf(request), request.principal!, request.body);
    reply.header('location', `${apiPrefix}/referrals/${referral.id}`);
    return sendReferral(reply, referral, 201);
  });

  app.get('/referrals', {
    config: { policy: referralReadPolicy, auditAction: 'referral.list' },
    schema: {
      tags: ['referrals'],
      operationId: 'listReferrals',
      summary: 'The referrals the caller takes part in, in change order: the sync feed of therapist apps and EHRs',
      description:
        'Ordered by change. A referral appears again whenever it changes. Keep syncCursor and poll with cursor=syncCursor: ' +
        'every change after it arrives, also when transactions commit out of order.',
      querystring: ReferralListQuery,
      response: { 200: ReferralPage },
    },
  }, async (request) => {
    const { status, patientId, updatedSince, cursor, limit } = request.query;
    const after = decodeCursor(cursor, ['digits', 'uuid']) as [string, string] | undefined;
    const rows = await workflow.referrals.list({
      principal: request.principal!,
      statuses: status ? (status.split(',') as ReferralStatus[]) : undefined,
      patientId,
      updatedSince: updatedSince ? new Date(updatedSince) : undefined,
      after,
      limit,
    });
    const now = new Date();
    const page = toPage(rows, limit, (row) => [row.syncKey, row.referral.id], (row) => toReferral(row.referral, row.patient, request.principal!, row.thread, now));
    const shown = rows.slice(0, limit);
    const lastShown = shown.at(-1);
    // Each referral listed is a read of its patient's record, also in the limited view, which
    // shows no patient id but still discloses the patient's order.
    await app.auditLog.recordMany(
      auditContextOf(request),
      shown.map(({ referral }) => ({
        action: 'referral.list',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'referral',
        resourceId: referral.id,
        patientId: referral.patientId,
      })),
    );
    return { ...page, syncCursor: lastShown ? encodeCursor([lastShown.syncKey, lastShown.referral.id]) : (cursor ?? noSyncYet) };
  });

  app.get('/referrals/:id', {
    config: { policy: referralReadPolicy, auditAction: 'referral.read', auditResource: referralResource },
    schema: {
      tags: ['referrals'],
      operationId: 'getReferral',
      summary: 'Read a referral, with its progress summary',
      params: IdParams,
      response: { 200: { ...Referral, headers: EtagHeader } },
    },
  }, async (request, reply) => {
    const { referral, patient, thread } = await workflow.read(request.principal!, request.params.id);
    await app.auditLog.record(auditContextOf(request), {
      action: 'referral.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
    });
    return sendReferral(reply, toReferral(referral, patient, request.principal!, thread));
  });

  app.patch('/referrals/:id', {
    // Every amendment adds care (more visits, a later expiry): the prescriber's to order (SPEC §14.1).
    config: { policy: prescriberPolicy, auditAction: 'referral.amend', auditResource: referralResource },
    schema: {
      tags: ['referrals'],
      operationId: 'amendReferral',
      summary: 'Amend an open referral: extend expiresOn, raise visitsAuthorized (kept in the history)',
      params: IdParams,
      headers: IfMatchHeaders,
      body: AmendReferral,
      response: { 200: Referral },
    },
  }, async (request, reply) => sendReferral(reply, await workflow.amend(moveRequest(request), request.body)));

  app.post('/referrals/:id/sign', {
    // A physician of the office who is not the prescriber gets 403 from the workflow; the practice side 404.
    config: { policy: prescriberPolicy, auditAction: 'referral.sign', auditResource: referralResource },
    schema: {
      tags: ['referrals'],
      operationId: 'signReferral',
      summary: 'The prescriber signs the order (and may send the draft at once)',
      description:
        'Only the prescriber, or the office\'s EHR client with scope referrals:sign (which vouches that the prescriber signed in the EHR). ' +
        'A referral is signed once: 409 already-signed after that. An unsigned referral cannot be sent (409 signature-required).',
      params: IdParams,
      headers: IfMatchHeaders,
      body: SignReferral,
      response: { 200: Referral },
    },
  }, async (request, reply) => sendReferral(reply, await workflow.sign(moveRequest(request), request.body)));

  const moves = [
    { move: 'send', summary: 'Send a draft referral to its target', operationId: 'sendReferral' },
    { move: 'accept', summary: 'Accept a sent referral (therapists, or a practice naming its therapist)', operationId: 'acceptReferral', body: AcceptReferral },
    { move: 'decline', summary: 'Decline a sent referral, with a reason', operationId: 'declineReferral', body: DeclineReferral },
    { move: 'cancel', summary: 'Cancel an open referral (prescribing office)', operationId: 'cancelReferral', body: CancelReferral },
    { move: 'reroute', summary: 'Send a declined referral to a new target', operationId: 'rerouteReferral', body: RerouteReferral },
  ] as const;

  for (const { move, summary, operationId, ...rest } of moves) {
    const body = 'body' in rest ? rest.body : undefined;
    app.post(`/referrals/:id/${move}`, {
      config: { policy: writePolicy, auditAction: `referral.${move}`, auditResource: referralResource },
      schema: {
        tags: ['referrals'],
        operationId,
        summary,
        params: IdParams,
        headers: IfMatchHeaders,
        ...(body ? { body } : {}),
        // Accept's body is optional: an empty POST is an empty object.
        ...(move === 'accept' ? { [optionalBodyKeyword]: true } : {}),
        response: { 200: Referral },
      },
      ...(move === 'accept' ? { preValidation: emptyBodyAsObject } : {}),
    }, async (request, reply) => {
      const params = moveRequest(request as never);
      const payload = request.body as Record<string, unknown> | undefined;
      const referral =
        move === 'send'
          ? await workflow.send(params)
          : move === 'accept'
            ? await workflow.accept(params, payload as AcceptReferral)
            : move === 'decline'
              ? await workflow.decline(params, (payload as DeclineReferral).reason)
              : move === 'cancel'
                ? await workflow.cancel(params, (payload as CancelReferral).reason)
                : await workflow.reroute(params, payload as RerouteReferral);
      return sendReferral(reply, referral);
    });
  }

  app.get('/referrals/:id/history', {
    config: { policy: referralReadPolicy, auditAction: 'referral.history', auditResource: referralResource },
    schema: {
      tags: ['referrals'],
      operationId: 'getReferralHistory',
      summary: 'Every transition and amendment of a referral, oldest first, with actor, time and reason',
      params: IdParams,
      querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
      response: { 200: Page(ReferralEvent) },
    },
  }, async (request) => {
    const { referral } = await workflow.read(request.principal!, request.params.id);
    const after = decodeCursor(request.query.cursor, ['position']) as [number] | undefined;
    const rows = await workflow.referrals.history({ referralId: referral.id, afterId: after?.[0], limit: request.query.limit });
    await app.auditLog.record(auditContextOf(request), {
      action: 'referral.history',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
    });
    return toPage(rows, request.query.limit, (row) => [row.id], toReferralEvent);
  });
};

export default referralRoutes;
