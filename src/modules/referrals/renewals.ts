// Renewal (recertification), SPEC §14.4: the accepting therapist asks for more visits or time, one
// request pending at a time, while the referral is treated or up to 30 days after it expired; the
// prescriber approves (raising visitsAuthorized, moving expiresOn, reopening an expired referral as
// in_progress) or denies. Decisions take the referral's row lock, so two approvals at once raise
// the visits once: the second finds the request decided.
import { apiPrefix } from '../../lib/api-prefix.js';
import { addDays, todayUtc } from '../../lib/dates.js';
import { conflict, notFound, validationFailed } from '../../lib/errors.js';
import { assertIfMatch } from '../../lib/etag.js';
import type { UnitOfWork, UnitsOfWork } from '../../lib/unit-of-work.js';
import type { ReferralStatus } from '../../lib/vocabulary.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import { actorOf } from './actors.js';
import type { ReferralRow, ReferralsRepository } from './referrals-repository.js';
import type { Reporting } from './reporting.js';
import type { ApproveRenewal, CreateRenewalRequest, DenyRenewal, RenewalRequest } from './renewal-schemas.js';
import { RenewalsRepository, toRenewalRequest } from './renewals-repository.js';

/** How long after expiry a referral may still be renewed. */
export const renewalWindowDays = 30;
const treatedStatuses: readonly ReferralStatus[] = ['accepted', 'in_progress'];

const attestations = {
  physician: 'I order the additional care approved here.',
  ehr_attested: "The office's EHR attests that the prescriber ordered the additional care approved here.",
} as const;

/** Why the referral cannot be renewed now, as a 409 that says which; undefined when it can. */
function renewalRefusal(referral: ReferralRow) {
  if (treatedStatuses.includes(referral.status)) return undefined;
  if (referral.status === 'expired') {
    const lastDay = addDays(referral.expiresOn, renewalWindowDays);
    if (todayUtc() <= lastDay) return undefined;
    return conflict('renewal-window-closed', `The referral expired after ${referral.expiresOn}; renewals are taken until ${lastDay}. Prescribe a new course (continuesReferralId) instead`, {
      currentStatus: referral.status,
    });
  }
  return conflict('not-renewable', `A ${referral.status} referral cannot be renewed`, { currentStatus: referral.status });
}

export class Renewals {
  readonly requests: RenewalsRepository;

  constructor(
    db: ConstructorParameters<typeof RenewalsRepository>[0],
    private readonly referrals: ReferralsRepository,
    private readonly reporting: Reporting,
    private readonly units: UnitsOfWork,
  ) {
    this.requests = new RenewalsRepository(db);
  }

  private url(referralId: string, requestId: string) {
    return `${apiPrefix}/referrals/${referralId}/renewal-requests/${requestId}`;
  }

  async request(context: AuditContext, principal: Principal, referralId: string, input: CreateRenewalRequest): Promise<RenewalRequest> {
    await this.reporting.assertTreating(principal, referralId);
    return this.units.run(context, async (unit) => {
      const { tx } = unit;
      const { referral } = await this.referrals.lock(referralId, tx);
      if (referral.acceptedTherapistId !== principal.id) throw notFound('referral', referralId, 'Referral', referral.patientId);
      const refused = renewalRefusal(referral);
      if (refused) throw refused;
      if (input.reportId && !(await this.requests.isReportOf({ referralId, reportId: input.reportId }, tx))) {
        throw validationFailed([{ field: 'reportId', message: 'is not a report of this referral' }]);
      }
      const pending = await this.requests.pendingOf(referralId, tx);
      if (pending) throw conflict('renewal-pending', `Renewal request ${pending.id} is still waiting for the prescriber; one is pending at a time`, { currentStatus: referral.status });
      const row = await this.requests.insert(
        { referralId, requestedBy: principal.id, additionalVisits: input.additionalVisits, extendWeeks: input.extendWeeks, justification: input.justification, reportId: input.reportId ?? null },
        tx,
      );
      await this.history(unit, principal, referral, referral, 'request_renewal', { requestId: row.id, additionalVisits: row.additionalVisits, extendWeeks: row.extendWeeks });
      unit.emit({ type: 'renewal.requested', referral, resource: { type: 'renewal_request', id: row.id, url: this.url(referralId, row.id) } });
      unit.audit({ action: 'renewal.request', httpStatus: 201, resourceType: 'renewal_request', resourceId: row.id, patientId: referral.patientId });
      return toRenewalRequest(row);
    });
  }

  async approve(context: AuditContext, principal: Principal, referralId: string, requestId: string, input: ApproveRenewal, ifMatch?: string): Promise<{ request: RenewalRequest; referral: ReferralRow }> {
    const { method } = await this.reporting.assertPrescriber(principal, referralId, 'approve renewals of this referral');
    return this.decide(context, principal, referralId, requestId, ifMatch, async (unit, referral, request) => {
      const refused = renewalRefusal(referral);
      if (refused) throw refused;
      const visits = input.additionalVisits ?? request.additionalVisits;
      const weeks = input.extendWeeks ?? request.extendWeeks;
      // An expired referral is extended from today, so approving it always reopens it.
      const from = referral.expiresOn < todayUtc() ? todayUtc() : referral.expiresOn;
      const expiresOn = addDays(from, weeks * 7);
      const status: ReferralStatus = referral.status === 'expired' ? 'in_progress' : referral.status;
      const updated = await this.referrals.update(referralId, { visitsAuthorized: referral.visitsAuthorized + visits, expiresOn, status }, unit.tx);
      await this.history(unit, principal, referral, updated, 'renew', {
        requestId,
        visitsAuthorized: { from: referral.visitsAuthorized, to: updated.visitsAuthorized },
        expiresOn: { from: referral.expiresOn, to: updated.expiresOn },
      });
      const decided = await this.requests.decide(
        requestId,
        { status: 'approved', decidedBy: referral.prescriberId, decidedAt: new Date(), approvedVisits: visits, approvedWeeks: weeks, attestation: attestations[method] },
        unit.tx,
      );
      return { decided, referral: updated };
    });
  }

  async deny(context: AuditContext, principal: Principal, referralId: string, requestId: string, input: DenyRenewal, ifMatch?: string): Promise<{ request: RenewalRequest; referral: ReferralRow }> {
    await this.reporting.assertPrescriber(principal, referralId, 'deny renewals of this referral');
    return this.decide(context, principal, referralId, requestId, ifMatch, async (unit, referral) => {
      await this.history(unit, principal, referral, referral, 'deny_renewal', { requestId }, input.reason);
      const decided = await this.requests.decide(requestId, { status: 'denied', decidedBy: referral.prescriberId, decidedAt: new Date(), decisionReason: input.reason }, unit.tx);
      return { decided, referral };
    });
  }

  private async decide(
    context: AuditContext,
    principal: Principal,
    referralId: string,
    requestId: string,
    ifMatch: string | undefined,
    apply: (unit: UnitOfWork, referral: ReferralRow, request: NonNullable<Awaited<ReturnType<RenewalsRepository['find']>>>) => Promise<{ decided: Parameters<typeof toRenewalRequest>[0]; referral: ReferralRow }>,
  ): Promise<{ request: RenewalRequest; referral: ReferralRow }> {
    return this.units.run(context, async (unit) => {
      const { referral } = await this.referrals.lock(referralId, unit.tx);
      const request = await this.requests.find({ referralId, requestId }, unit.tx);
      if (!request) throw notFound('renewal_request', requestId, 'Renewal request', referral.patientId);
      // The decision is made on the referral as the prescriber last saw it, when they say which version that was.
      assertIfMatch(ifMatch, referral.version);
      if (request.status !== 'pending') throw conflict('renewal-decided', `The renewal request was already ${request.status}`, { currentStatus: referral.status });
      const { decided, referral: after } = await apply(unit, referral, request);
      unit.emit({ type: 'renewal.decided', referral: after, resource: { type: 'renewal_request', id: requestId, url: this.url(referralId, requestId) } });
      unit.audit({ action: `renewal.${decided.status === 'approved' ? 'approve' : 'deny'}`, httpStatus: 200, resourceType: 'renewal_request', resourceId: requestId, patientId: referral.patientId });
      return { request: toRenewalRequest(decided), referral: after };
    });
  }

  private async history(
    unit: UnitOfWork,
    principal: Principal,
    before: ReferralRow,
    after: ReferralRow,
    action: 'request_renewal' | 'renew' | 'deny_renewal',
    changes: Record<string, unknown>,
    reason?: string,
  ): Promise<void> {
    await this.referrals.appendEvent(
      { referralId: before.id, action, fromStatus: before.status, toStatus: after.status, version: after.version, actor: actorOf(principal), changes, reason },
      unit.tx,
    );
  }
}
