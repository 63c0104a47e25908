// /v1/referrals/{id}/renewal-requests: the accepting therapist asks for more visits or time; the
// prescriber approves or denies (SPEC §14.4).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { apiPrefix } from '../../lib/api-prefix.js';
import { notFound } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page, PageQuery } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { IfMatchHeaders } from './schemas.js';
import { prescriberPolicy, referralReadPolicy } from './policies.js';
import { ApproveRenewal, CreateRenewalRequest, DenyRenewal, RenewalParams, RenewalRequest } from './renewal-schemas.js';
import { toRenewalRequest } from './renewals-repository.js';

const referralResource = { type: 'referral', param: 'id' };

const renewalRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const renewals = app.referrals.renewals;
  const requestUrl = (request: RenewalRequest) => `${apiPrefix}/referrals/${request.referralId}/renewal-requests/${request.id}`;

  app.post('/referrals/:id/renewal-requests', {
    config: { policy: { roles: everyone }, auditAction: 'renewal.request', auditResource: referralResource },
    schema: {
      tags: ['renewals'],
      operationId: 'requestRenewal',
      summary: 'Ask the prescriber for more visits or time (the accepting therapist)',
      description:
        'While the referral is accepted or in progress, or up to 30 days after it expired; one request pending at a time (409 renewal-pending). ' +
        'After the window, 409 renewal-window-closed: prescribe a new course with continuesReferralId instead.',
      params: IdParams,
      body: CreateRenewalRequest,
      response: { 201: RenewalRequest },
    },
  }, async (request, reply) => {
    const created = await renewals.request(auditContextOf(request), request.principal!, request.params.id, request.body);
    return reply.code(201).header('location', requestUrl(created)).send(created);
  });

  app.get('/referrals/:id/renewal-requests', {
    config: { policy: referralReadPolicy, auditAction: 'renewal.list', auditResource: referralResource },
    schema: {
      tags: ['renewals'],
      operationId: 'listRenewalRequests',
      summary: "A referral's renewal requests and their decisions, oldest first",
      params: IdParams,
      querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
      response: { 200: Page(RenewalRequest) },
    },
  }, async (request) => {
    const referral = await app.referrals.readParticipating(request.principal!, request.params.id);
    const rows = await renewals.requests.list({ referralId: referral.id, after: decodeTimeCursor(request.query.cursor), limit: request.query.limit });
    // Each request shown is a read of the patient's record, as for visit notes and reports.
    await app.auditLog.recordMany(
      auditContextOf(request),
      rows.slice(0, request.query.limit).map(({ row }) => ({
        action: 'renewal.read',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'renewal_request',
        resourceId: row.id,
        patientId: referral.patientId,
      })),
    );
    return toPage(rows, request.query.limit, (row) => [row.cursorTime, row.row.id], (row) => toRenewalRequest(row.row));
  });

  app.get('/referrals/:id/renewal-requests/:requestId', {
    config: { policy: referralReadPolicy, auditAction: 'renewal.read', auditResource: referralResource },
    schema: {
      tags: ['renewals'],
      operationId: 'getRenewalRequest',
      summary: 'One renewal request and its decision',
      params: RenewalParams,
      response: { 200: RenewalRequest },
    },
  }, async (request) => {
    const referral = await app.referrals.readParticipating(request.principal!, request.params.id);
    const found = await renewals.requests.find({ referralId: referral.id, requestId: request.params.requestId });
    if (!found) throw notFound('renewal_request', request.params.requestId, 'Renewal request', referral.patientId);
    await app.auditLog.record(auditContextOf(request), { action: 'renewal.read', outcome: 'success', httpStatus: 200, resourceType: 'renewal_request', resourceId: found.id, patientId: referral.patientId });
    return toRenewalRequest(found);
  });

  app.post('/referrals/:id/renewal-requests/:requestId/approve', {
    config: { policy: prescriberPolicy, auditAction: 'renewal.approve', auditResource: referralResource },
    schema: {
      tags: ['renewals'],
      operationId: 'approveRenewal',
      summary: 'The prescriber approves: visitsAuthorized rises, expiresOn moves, an expired referral reopens as in_progress',
      description: 'A request is decided once (409 renewal-decided); two approvals at once raise the visits once.',
      params: RenewalParams,
      headers: IfMatchHeaders,
      body: ApproveRenewal,
      response: { 200: RenewalRequest },
    },
  }, async (request) => (await renewals.approve(auditContextOf(request), request.principal!, request.params.id, request.params.requestId, request.body, request.headers['if-match'])).request);

  app.post('/referrals/:id/renewal-requests/:requestId/deny', {
    config: { policy: prescriberPolicy, auditAction: 'renewal.deny', auditResource: referralResource },
    schema: {
      tags: ['renewals'],
      operationId: 'denyRenewal',
      summary: 'The prescriber denies a renewal request, with a reason',
      params: RenewalParams,
      headers: IfMatchHeaders,
      body: DenyRenewal,
      response: { 200: RenewalRequest },
    },
  }, async (request) => (await renewals.deny(auditContextOf(request), request.principal!, request.params.id, request.params.requestId, request.body, request.headers['if-match'])).request);
};

export default renewalRoutes;
