// Posting a visit note: numbered by the server under the referral's row lock, refused when the
// referral cannot be treated, and moving the referral along (first note starts it, final completes it).
import type { Database } from '../../db/database.js';
import type { OutcomeScore, ReferralStatus } from '../../db/schema.js';
import { conflict, notFound, validationFailed, type FieldProblem } from '../../lib/errors.js';
import type { AuditContext, AuditLog } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import { actorOf } from '../referrals/referral-workflow.js';
import { ReferralsRepository, type ReferralRow } from '../referrals/referrals-repository.js';
import { WebhookOutbox } from '../webhooks/outbox.js';
import { ProgressReportsRepository, toProgressReport } from './progress-reports-repository.js';
import type { CreateProgressReport, ProgressReport } from './schemas.js';

const todayUtc = () => new Date().toISOString().slice(0, 10);

/** Why a note cannot be posted on this referral now, as a 409 that says which. */
function refusal(referral: ReferralRow) {
  const refusals: Partial<Record<ReferralStatus, [string, string]>> = {
    draft: ['not-accepted', 'The referral has not been sent and accepted yet'],
    sent: ['not-accepted', 'The referral has not been accepted yet'],
    declined: ['not-accepted', 'The referral was declined'],
    completed: ['referral-completed', 'The referral is completed; post an addendum to an existing note instead'],
    cancelled: ['referral-cancelled', 'The referral was cancelled'],
    expired: ['referral-expired', `The referral expired after ${referral.expiresOn}`],
  };
  const reason = refusals[referral.status];
  if (reason) return conflict(reason[0], reason[1], { currentStatus: referral.status });
  if (referral.expiresOn < todayUtc()) {
    return conflict('referral-expired', `The referral expired after ${referral.expiresOn}`, { currentStatus: referral.status });
  }
  if (referral.visitsUsed >= referral.visitsAuthorized) {
    return conflict('visits-exhausted', `All ${referral.visitsAuthorized} authorized visits are used; the prescriber can raise visitsAuthorized`, {
      currentStatus: referral.status,
    });
  }
  return undefined;
}

function mergeOutcomes(previous: OutcomeScore[], input: CreateProgressReport, visitNumber: number): OutcomeScore[] {
  const latest = new Map(previous.map((score) => [`${score.instrument}:${score.name ?? ''}`, score]));
  for (const measure of input.outcomeMeasures ?? []) {
    latest.set(`${measure.instrument}:${measure.name ?? ''}`, { ...measure, visitNumber });
  }
  return [...latest.values()];
}

export class VisitNotes {
  private readonly referrals: ReferralsRepository;
  readonly reports: ProgressReportsRepository;
  private readonly outbox = new WebhookOutbox();

  constructor(
    private readonly db: Database,
    private readonly auditLog: AuditLog,
  ) {
    this.referrals = new ReferralsRepository(db);
    this.reports = new ProgressReportsRepository(db);
  }

  async post(context: AuditContext, principal: Principal, referralId: string, input: CreateProgressReport): Promise<ProgressReport> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    // Only the accepting therapist writes notes (before acceptance, a therapist it was sent to
    // learns that it must be accepted first); everyone else gets the outsider's 404, before any
    // other check can tell them something.
    const author = (referral: ReferralRow) =>
      principal.kind === 'user' &&
      principal.role === 'therapist' &&
      (referral.acceptedTherapistId === null || referral.acceptedTherapistId === principal.id);
    if (!visible || !author(visible.referral)) {
      throw notFound('referral', referralId, 'Referral', visible?.referral.patientId ?? (await this.referrals.patientIdOf(referralId)));
    }
    const problems: FieldProblem[] = [];
    if (input.visitDate > todayUtc()) problems.push({ field: 'visitDate', message: 'must not be in the future' });
    (input.outcomeMeasures ?? []).forEach((measure, index) => {
      if (measure.instrument === 'other' && !measure.name) problems.push({ field: `outcomeMeasures[${index}].name`, message: 'is required when instrument is other' });
    });
    if (problems.length > 0) throw validationFailed(problems);

    return this.db.transaction(async (tx) => {
      // The lock numbers visits one at a time and checks the limits against the latest state.
      const { referral } = await this.referrals.lock(referralId, tx);
      // Someone else may have accepted it since the check above.
      if (!author(referral)) throw notFound('referral', referralId, 'Referral', referral.patientId);
      const refused = refusal(referral);
      if (refused) throw refused;
      const acceptedOn = referral.acceptedAt!.toISOString().slice(0, 10);
      if (input.visitDate < acceptedOn) {
        throw validationFailed([{ field: 'visitDate', message: `must not be before the referral was accepted (${acceptedOn})` }]);
      }

      const visitNumber = referral.visitsUsed + 1;
      const report = await this.reports.insert({ referralId, visitNumber, authorId: principal.id, input }, tx);
      const pain = { visitNumber, before: input.painBefore, after: input.painAfter };
      const steps: ('start' | 'complete')[] = [];
      if (referral.status === 'accepted') steps.push('start');
      if (input.final) steps.push('complete');
      const status: ReferralStatus = input.final ? 'completed' : 'in_progress';
      const updated = await this.referrals.update(
        referralId,
        {
          status,
          visitsUsed: visitNumber,
          firstPain: referral.firstPain ?? pain,
          latestPain: pain,
          latestOutcomes: mergeOutcomes(referral.latestOutcomes, input, visitNumber),
        },
        tx,
      );
      let from: ReferralStatus = referral.status;
      const events = steps.map((step) => {
        const to: ReferralStatus = step === 'start' ? 'in_progress' : 'completed';
        const event = { referralId, action: step, fromStatus: from, toStatus: to, version: updated.version, actor: actorOf(principal), changes: { visitNumber } };
        from = to;
        return event;
      });
      // Independent statements, sent together: postgres.js pipelines them on the transaction's connection.
      await Promise.all([
        events.length > 0 ? this.referrals.appendEvents(events, tx) : undefined,
        this.outbox.publish(
          { type: 'progress_report.created', referral: updated, resource: { type: 'progress_report', id: report.id, url: `/v1/referrals/${referralId}/progress-reports` } },
          tx,
        ),
        input.final ? this.outbox.publish({ type: 'referral.completed', referral: updated }, tx) : undefined,
        this.auditLog.record(
          context,
          { action: 'progress_report.create', outcome: 'success', httpStatus: 201, resourceType: 'progress_report', resourceId: report.id, patientId: referral.patientId },
          tx,
        ),
      ]);
      return toProgressReport(report);
    });
  }
}
