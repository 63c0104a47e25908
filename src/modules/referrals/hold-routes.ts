// /v1/referrals/{id}/resume: the prescriber lifts the hold a severe adverse event put on treatment (SPEC §14.10).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { etagOf } from '../../lib/etag.js';
import { IdParams } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { prescriberPolicy } from './policies.js';
import { IfMatchHeaders, Referral, ResumeReferral } from './schemas.js';

const holdRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/referrals/:id/resume', {
    config: { policy: prescriberPolicy, auditAction: 'referral.resume', auditResource: { type: 'referral', param: 'id' } },
    schema: {
      tags: ['referrals'],
      operationId: 'resumeReferral',
      summary: 'The prescriber resumes treatment held after a severe adverse event',
      description:
        'Only the prescriber, or the office\'s EHR client with scope referrals:sign; another member of the office gets 403, anyone else 404. ' +
        'Clears hold, records resume in the history, bumps the version and announces referral.resumed. 409 not-on-hold when the referral is not held.',
      params: IdParams,
      headers: IfMatchHeaders,
      body: ResumeReferral,
      response: { 200: { ...Referral, headers: { ETag: Type.String({ description: 'The version of the referral, for If-Match' }) } } },
    },
  }, async (request, reply) => {
    const referral = await app.referrals.holds.resume(
      { context: auditContextOf(request), principal: request.principal!, referralId: request.params.id, ifMatch: request.headers['if-match'] },
      request.body,
    );
    return reply.header('etag', etagOf(referral.version)).send(referral);
  });
};

export default holdRoutes;
