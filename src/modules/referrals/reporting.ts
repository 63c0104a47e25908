// Reports to the prescriber as the referral sees them (SPEC §14.3): written by the accepting
// therapist under the referral's row lock, so a report's visit count and series match the visits
// recorded so far; a report restarts the cadence, and a discharge report completes the referral.
// The report itself belongs to the module that writes it (clinical-reports).
import { apiPrefix } from '../../lib/api-prefix.js';
import { conflict, notFound } from '../../lib/errors.js';
import { assertIfMatch } from '../../lib/etag.js';
import type { UnitOfWork } from '../../lib/unit-of-work.js';
import type { ReferralStatus, ReportKind } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';
import { actorOf } from './actors.js';
import { assertMoveAllowed, targetStatus } from './lifecycle.js';
import type { ReferralRow, ReferralsRepository } from './referrals-repository.js';
import { prescriberOnly, signingMethodOf } from './signatures.js';
import type { SignatureMethod } from '../../lib/vocabulary.js';

/** Statuses in which evaluation and progress reports are taken: while treated, and after expiry (to back a renewal). */
const reportableStatuses: readonly ReferralStatus[] = ['accepted', 'in_progress', 'expired'];

function refusal(referral: ReferralRow, kind: ReportKind) {
  if (kind === 'discharge') {
    assertMoveAllowed('discharge', referral.status);
    return undefined;
  }
  if (reportableStatuses.includes(referral.status)) return undefined;
  const refusals: Partial<Record<ReferralStatus, [string, string]>> = {
    completed: ['referral-completed', 'The referral is completed; its discharge ended the reports'],
    cancelled: ['referral-cancelled', 'The referral was cancelled'],
  };
  const [code, message] = refusals[referral.status] ?? ['not-accepted', 'The referral has not been accepted yet'];
  return conflict(code, message, { currentStatus: referral.status });
}

export interface ReportWriter<T extends { id: string }> {
  /** Writes the report, in the transaction that holds the referral's lock. */
  write(referral: ReferralRow): Promise<T>;
}

export class Reporting {
  constructor(private readonly referrals: ReferralsRepository) {}

  private static writes(principal: Principal, referral: ReferralRow): boolean {
    return principal.kind === 'user' && principal.role === 'therapist' && referral.acceptedTherapistId === principal.id;
  }

  /** Anyone but the accepting therapist gets the outsider's 404, before any other check can tell them something. */
  async assertTreating(principal: Principal, referralId: string): Promise<void> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    if (!visible || !(principal.kind === 'user' && principal.role === 'therapist')) {
      throw notFound('referral', referralId, 'Referral', visible?.referral.patientId ?? (await this.referrals.patientIdOf(referralId)));
    }
    // A therapist it was sent to, before anyone accepted it, learns that it must be accepted first.
    if (visible.referral.acceptedTherapistId === null) throw conflict('not-accepted', 'The referral has not been accepted yet', { currentStatus: visible.referral.status });
    if (!Reporting.writes(principal, visible.referral)) throw notFound('referral', referralId, 'Referral', visible.referral.patientId);
  }

  async submit<T extends { id: string }>(
    unit: UnitOfWork,
    principal: Principal,
    referralId: string,
    report: { kind: ReportKind; dischargeReason?: string | undefined; ifMatch?: string | undefined },
    writer: ReportWriter<T>,
  ): Promise<T> {
    const { tx } = unit;
    const { referral } = await this.referrals.lock(referralId, tx);
    if (!Reporting.writes(principal, referral)) throw notFound('referral', referralId, 'Referral', referral.patientId);
    // A report moves the referral (its cadence, or its status on discharge): If-Match names the version it was written against.
    assertIfMatch(report.ifMatch, referral.version);
    const refused = refusal(referral, report.kind);
    if (refused) throw refused;

    const written = await writer.write(referral);
    const discharge = report.kind === 'discharge';
    const status = discharge ? targetStatus('discharge', referral.status) : referral.status;
    const updated = await this.referrals.update(referralId, { status, lastReportedVisit: referral.visitsUsed }, tx);
    await this.referrals.appendEvent(
      {
        referralId,
        action: discharge ? 'discharge' : 'report',
        fromStatus: referral.status,
        toStatus: status,
        version: updated.version,
        actor: actorOf(principal),
        changes: { reportId: written.id, kind: report.kind, ...(discharge && { reason: report.dischargeReason }) },
      },
      tx,
    );
    unit.emit({ type: 'report.submitted', referral: updated, resource: { type: 'report', id: written.id, url: `${apiPrefix}/referrals/${referralId}/reports/${written.id}` } });
    if (discharge) unit.emit({ type: 'referral.completed', referral: updated });
    return written;
  }

  /**
   * The prescriber (or the office's EHR that vouches) signs a report: the office side sees the
   * referral, anyone else gets 404; a colleague who is not the prescriber gets 403.
   */
  async assertPrescriber(principal: Principal, referralId: string, what = 'sign reports of this referral'): Promise<{ referral: ReferralRow; method: SignatureMethod }> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    if (!visible || principal.organizationId !== visible.referral.organizationId) {
      throw notFound('referral', referralId, 'Referral', visible?.referral.patientId ?? (await this.referrals.patientIdOf(referralId)));
    }
    const method = signingMethodOf(principal, visible.referral.prescriberId);
    if (!method) throw prescriberOnly(what, visible.referral);
    return { referral: visible.referral, method };
  }

  /** Writes the signature under the referral's lock (so events keep their order) and records it in the history. */
  async sign(unit: UnitOfWork, principal: Principal, referralId: string, reportId: string, write: () => Promise<void>): Promise<void> {
    const { referral } = await this.referrals.lock(referralId, unit.tx);
    await write();
    await this.referrals.appendEvent(
      { referralId, action: 'sign_report', fromStatus: referral.status, toStatus: referral.status, version: referral.version, actor: actorOf(principal), changes: { reportId } },
      unit.tx,
    );
    unit.emit({ type: 'report.signed', referral, resource: { type: 'report', id: reportId, url: `${apiPrefix}/referrals/${referralId}/reports/${reportId}` } });
  }
}
