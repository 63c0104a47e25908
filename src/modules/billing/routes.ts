// /v1/referrals/{id}/billing: the referral's visits so far as the fields of a CMS-1500 claim, for
// the office and the accepting practice, as JSON or as CSV.
import Negotiator from 'negotiator';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notAcceptable } from '../../lib/errors.js';
import { IdParams } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { identifiesPatient, referralReadPolicy } from '../referrals/index.js';
import { BillingRepository } from './billing-repository.js';
import { buildClaim } from './claim.js';
import { claimCsv, claimCsvHeader } from './csv.js';
import { Claim } from './schemas.js';

const referralResource = { type: 'referral', param: 'id' };
const claimFormats = ['application/json', 'text/csv'];

const billingRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const repository = new BillingRepository(app.db);

  app.get('/referrals/:id/billing', {
    config: { policy: referralReadPolicy, auditAction: 'billing.read', auditResource: referralResource },
    schema: {
      tags: ['billing'],
      operationId: 'getReferralBilling',
      summary: "The referral's visits so far as the fields of a CMS-1500 claim, as JSON or (Accept: text/csv) one row per service line",
      description:
        'For the office (its staff, and its API clients with referrals:read) and the accepting practice (the accepting therapist, the ' +
        "practice's admins and API clients); anyone else, also the practice side before it accepts, gets 404. Every read is audited as a " +
        `read of the patient's record. The CSV has a header row (${claimCsvHeader.join(', ')}) and one row per service line, the claim's ` +
        'own fields repeated on each; a claim with no service lines yet is the header alone.',
      params: IdParams,
      response: {
        200: {
          description: 'The claim',
          content: {
            'application/json': { schema: Claim },
            'text/csv': { schema: Type.String({ description: 'RFC 4180 CSV, CRLF line ends; a cell that would start a spreadsheet formula is prefixed with an apostrophe' }) },
          },
        },
      },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    // No Accept header means JSON, the first format; */* too.
    const format = new Negotiator(request).mediaType(claimFormats);
    const { referral, patient } = await app.referrals.readCare(principal, request.params.id);
    // A claim names the patient: only those who may know who the patient is (SPEC §14.8) read it;
    // to the rest of the practice side it does not exist.
    if (!identifiesPatient(principal, referral)) throw await app.referrals.notFound(referral.id);
    if (format === undefined) throw notAcceptable(claimFormats);

    const claim = buildClaim({ referral, patient, ...(await repository.claimFacts(referral)) });
    await app.auditLog.record(auditContextOf(request), {
      action: 'billing.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
    });
    if (format === 'application/json') return reply.type('application/json').send(claim);
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="claim-${referral.id}.csv"`)
      .send(claimCsv(claim));
  });
};

export default billingRoutes;
