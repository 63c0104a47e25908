// /v1/referrals/{id}/adverse-events: reactions the therapist side reports, which the office
// acknowledges (SPEC §14.10); both sides of the care team read them.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { IdParams } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { referralReadPolicy } from '../referrals/index.js';
import { AdverseEventWorkflow } from './adverse-event-workflow.js';
import { AdverseEvent, AdverseEventListQuery, AdverseEventPage, AdverseEventParams, CreateAdverseEvent } from './schemas.js';

const referralResource = { type: 'referral', param: 'id' };
// Any signed-in role passes the policy: who reports and who acknowledges is decided per referral
// (its care team's two sides), and everyone else gets the 404 of a record out of reach.
const writePolicy = { roles: everyone, clientScope: 'referrals:write' } as const;

const adverseEventRoutes: FastifyPluginAsyncTypebox<{ workflow: AdverseEventWorkflow }> = async (app, { workflow }) => {
  app.post('/referrals/:id/adverse-events', {
    config: { policy: writePolicy, auditAction: 'adverse_event.report', auditResource: referralResource },
    schema: {
      tags: ['adverse events'],
      operationId: 'reportAdverseEvent',
      summary: 'Report an adverse event (the therapist side: the accepting therapist, the accepting practice\'s admins and API clients)',
      description:
        'While the referral is accepted or in progress; otherwise 409 with its currentStatus. Announces adverse_event.reported to the office at once; ' +
        'the event stays in the office\'s activity.unacknowledgedUrgent until acknowledged. A severe event with treatmentPaused puts the referral on hold: ' +
        'visit notes are refused (409 referral-on-hold) until the prescriber resumes it. Anyone else, the office included, gets 404.',
      params: IdParams,
      body: CreateAdverseEvent,
      response: { 201: AdverseEvent },
    },
  }, async (request, reply) => {
    const event = await workflow.report(auditContextOf(request), request.principal!, request.params.id, request.body);
    return reply.code(201).header('location', AdverseEventWorkflow.url(event.referralId, event.id)).send(event);
  });

  app.get('/referrals/:id/adverse-events', {
    config: { policy: referralReadPolicy, auditAction: 'adverse_event.list', auditResource: referralResource },
    schema: {
      tags: ['adverse events'],
      operationId: 'listAdverseEvents',
      summary: "The referral's adverse events, in the order they were reported",
      description: 'Both sides of the care team. Each event listed is audited as a read of the patient\'s record.',
      params: IdParams,
      querystring: AdverseEventListQuery,
      response: { 200: AdverseEventPage },
    },
  }, async (request) => {
    const { patientId, page } = await workflow.list(request.principal!, request.params.id, request.query);
    await app.auditLog.recordMany(
      auditContextOf(request),
      page.data.map((event) => ({ action: 'adverse_event.read', outcome: 'success' as const, httpStatus: 200, resourceType: 'adverse_event', resourceId: event.id, patientId })),
    );
    return page;
  });

  app.get('/referrals/:id/adverse-events/:eventId', {
    config: { policy: referralReadPolicy, auditAction: 'adverse_event.read', auditResource: referralResource },
    schema: {
      tags: ['adverse events'],
      operationId: 'getAdverseEvent',
      summary: 'One adverse event and whether the office has acknowledged it',
      params: AdverseEventParams,
      response: { 200: AdverseEvent },
    },
  }, async (request) => {
    const { patientId, event } = await workflow.read(request.principal!, request.params.id, request.params.eventId);
    await app.auditLog.record(auditContextOf(request), { action: 'adverse_event.read', outcome: 'success', httpStatus: 200, resourceType: 'adverse_event', resourceId: event.id, patientId });
    return event;
  });

  app.post('/referrals/:id/adverse-events/:eventId/acknowledge', {
    config: { policy: writePolicy, auditAction: 'adverse_event.acknowledge', auditResource: referralResource },
    schema: {
      tags: ['adverse events'],
      operationId: 'acknowledgeAdverseEvent',
      summary: 'The office acknowledges an adverse event (any office role, or an office API client with referrals:write)',
      description:
        'Acknowledging again answers 200 and keeps the first acknowledgement. The therapist side that reported it gets 409 own-side; ' +
        'anyone outside the care team 404. Acknowledging does not lift a hold: the prescriber resumes (POST /v1/referrals/{id}/resume).',
      params: AdverseEventParams,
      response: { 200: AdverseEvent },
    },
  }, async (request) => workflow.acknowledge(auditContextOf(request), request.principal!, request.params.id, request.params.eventId));
};

export default adverseEventRoutes;
