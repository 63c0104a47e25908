// Communication: a referral's message thread, read, searched and posted through the messages
// module (app.messages), with the rules, 404s, audit events, domain events and idempotency of
// /v1/referrals/{id}/messages.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { validationFailed } from '../../../lib/errors.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { everyone } from '../../auth/policy.js';
import { referralReadPolicy } from '../../referrals/index.js';
import { assertJsonAccepted, fhirJson, sendBundle, sendResource } from '../http.js';
import { communicationOf } from '../inbound/communication.js';
import { validateInbound } from '../inbound/validator.js';
import { toCommunication } from '../map/communication.js';
import { contextOfRecord } from '../map/thread-context.js';
import { communicationDefinition } from '../resources.js';
import { fhirBodyTypes, fhirResource, readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling } from '../search/params.js';
import { commonFilter, readAcross, resolveAnchor } from './thread-search.js';

const anchors = ['part-of', 'based-on', 'patient'];
const writePolicy = { roles: everyone, clientScope: 'referrals:write' } as const;

const communicationRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  async function auditThreadRead(request: FastifyRequest, action: string, records: { resourceType: string; resourceId: string; patientId: string }[]) {
    await app.auditLog.recordMany(
      auditContextOf(request),
      records.map((record) => ({ action, outcome: 'success' as const, httpStatus: 200, ...record })),
    );
  }

  app.get('/Communication/:id', {
    config: { policy: referralReadPolicy, auditAction: 'message.read', auditResource: { type: 'message', param: 'id' } },
    schema: readSchema(communicationDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const { message, referral } = await app.messages.byId(principal, request.params.id);
    await auditThreadRead(request, 'message.read', [{ resourceType: 'message', resourceId: message.id, patientId: referral.patientId }]);
    return sendResource(reply, toCommunication(message, contextOfRecord(principal, referral)));
  });

  app.get('/Communication', {
    config: { policy: referralReadPolicy, auditAction: 'message.list' },
    schema: searchSchema(communicationDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const search = parseSearch(request.query as Record<string, unknown>, communicationDefinition.searchParams, { strict: wantsStrictHandling(request.headers.prefer) });
    const { contexts } = await resolveAnchor(app, request, search, anchors, 'message.list');
    const segments = contexts.map((context) => ({ context, source: 'messages' }));
    const page = await readAcross(segments, { cursor: search.cursor, count: search.count, keyShape: ['position'] }, async ({ context }, after, limit) => {
      const { messages } = await app.messages.listOf(principal, context.referralId, { afterSeq: after?.[0] as number | undefined, limit });
      return messages.map(({ seq, ...message }) => ({ item: message, key: [seq] }));
    });
    // As the /v1 list: one read of the thread per referral whose messages were read.
    await auditThreadRead(
      request,
      'message.list',
      page.visited.map(({ context }) => ({ resourceType: 'referral', resourceId: context.referralId, patientId: context.patientId })),
    );
    const keep = commonFilter(search);
    const entries = page.items.map(({ item, segment }) => toCommunication(item, segment.context)).filter(keep).map((resource) => ({ resource, mode: 'match' as const }));
    const applied = search.applied.filter(([name]) => name !== '_cursor');
    const next = page.next ? searchUrl(base, 'Communication', [...applied, ['_cursor', page.next]]) : undefined;
    return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, 'Communication', search.applied), next }));
  });

  app.post('/Communication', {
    config: {
      policy: writePolicy,
      auditAction: 'message.create',
      ownProblems: { 404: { description: 'The Task or ServiceRequest named is not found, or its referral is not one whose care the caller takes part in' } },
    },
    schema: {
      tags: ['fhir'],
      operationId: 'fhirCreateCommunication',
      summary: "Post a message to a referral's thread, as POST /v1/referrals/{id}/messages does",
      description:
        'partOf the Task or basedOn the ServiceRequest (both: the same referral), status completed, exactly one payload.contentString (1–5,000 ' +
        'characters), priority routine (default) or urgent. sender and recipient are the server\'s (400 if given), as is subject. Only the ' +
        "referral's care team posts; anyone else gets 404. An urgent message also announces message.urgent.",
      body: fhirResource('Communication'),
      consumes: fhirBodyTypes,
      response: {
        201: {
          description: 'The message as a Communication',
          headers: { 'last-modified': { type: 'string', description: 'meta.lastUpdated as an HTTP date' } },
          content: { [fhirJson]: { schema: fhirResource('Communication') } },
        },
      },
    },
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const structural = validateInbound(request.body, 'Communication');
    if (structural.length > 0) throw validationFailed(structural.map(({ path, message }) => ({ field: path, message })));
    const { message: input, target, problems } = communicationOf(request.body as Record<string, unknown>, base);
    if (problems.length > 0) throw validationFailed(problems);
    // A Task is the referral's only through the referrals module: an outsider's Task is its 404.
    const referralId = target.taskId ? (await app.referrals.readByTask(principal, target.taskId)).referral.id : target.referralId!;
    if (target.taskId && target.referralId && target.referralId !== referralId) {
      throw validationFailed([{ field: 'Communication.basedOn', message: 'names another referral than partOf; give one, or both of the same referral' }]);
    }
    const posted = await app.messages.post(auditContextOf(request), principal, referralId, input);
    const { message, referral } = await app.messages.byId(principal, posted.id);
    reply.header('location', `${base}/Communication/${message.id}`);
    return sendResource(reply, toCommunication(message, contextOfRecord(principal, referral)), 201);
  });
};

export default communicationRoutes;
