// A visit recorded against a referral: numbered under the referral's row lock, refused when the
// referral cannot be treated, and moving it through the lifecycle (the first visit starts it, a
// final one completes it). The note itself belongs to the module that writes it.
import { isoDay, todayUtc } from '../../lib/dates.js';
import type { ReferralStatus } from '../../lib/vocabulary.js';
import { conflict, notFound, validationFailed } from '../../lib/errors.js';
import type { UnitOfWork } from '../../lib/unit-of-work.js';
import type { Principal } from '../auth/policy.js';
import { assertMoveAllowed, targetStatus, type ReferralMove } from './lifecycle.js';
import { actorOf } from './actors.js';
import { becameOverdue } from './report-cadence.js';
import type { ReferralRow, ReferralsRepository } from './referrals-repository.js';
import type { OutcomeScore } from './schemas.js';

export interface Visit {
  visitDate: string;
  painBefore: number;
  painAfter: number;
  outcomeMeasures?: Omit<OutcomeScore, 'visitNumber'>[] | undefined;
  final?: boolean | undefined;
}

export interface VisitNote<T> {
  /** Writes the note of visit `visitNumber`, in the visit's transaction. */
  write(referral: ReferralRow, visitNumber: number): Promise<T>;
  /** Announces the note once the referral is updated, before the referral announces its own move. */
  announce(referral: ReferralRow, note: T): void;
}

/** Why a visit cannot be recorded on this referral now, as a 409 that says which. */
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
  if (referral.holdSince) {
    return conflict(
      'referral-on-hold',
      `Treatment is on hold since ${referral.holdSince.toISOString()} after adverse event ${referral.holdAdverseEventId}; the prescriber resumes it (POST /v1/referrals/${referral.id}/resume)`,
      { currentStatus: referral.status },
    );
  }
  if (referral.expiresOn < todayUtc()) {
    return conflict('referral-expired', `The referral expired after ${referral.expiresOn}`, { currentStatus: referral.status });
  }
  if (referral.visitsUsed >= referral.visitsAuthorized) {
    return conflict('visits-exhausted', `All ${referral.visitsAuthorized} authorized visits are used; the prescriber can raise visitsAuthorized, or the therapist discharges the patient with a discharge report`, {
      currentStatus: referral.status,
    });
  }
  return undefined;
}

function mergeOutcomes(previous: OutcomeScore[], visit: Visit, visitNumber: number): OutcomeScore[] {
  const latest = new Map(previous.map((score) => [`${score.instrument}:${score.name ?? ''}`, score]));
  for (const measure of visit.outcomeMeasures ?? []) {
    latest.set(`${measure.instrument}:${measure.name ?? ''}`, { ...measure, visitNumber });
  }
  return [...latest.values()];
}

export class Visits {
  constructor(private readonly referrals: ReferralsRepository) {}

  /** Only the accepting therapist records visits (before acceptance, a therapist it was sent to). */
  private static treats(principal: Principal, referral: ReferralRow): boolean {
    return (
      principal.kind === 'user' &&
      principal.role === 'therapist' &&
      (referral.acceptedTherapistId === null || referral.acceptedTherapistId === principal.id)
    );
  }

  /**
   * Checked before anything about the visit is: a therapist it was sent to learns that it must be
   * accepted first; everyone else gets the outsider's 404, before any other check can tell them something.
   */
  async assertTreats(principal: Principal, referralId: string): Promise<void> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    if (!visible || !Visits.treats(principal, visible.referral)) {
      throw notFound('referral', referralId, 'Referral', visible?.referral.patientId ?? (await this.referrals.patientIdOf(referralId)));
    }
  }

  async record<T>(unit: UnitOfWork, principal: Principal, referralId: string, visit: Visit, note: VisitNote<T>): Promise<T> {
    const { tx } = unit;
    // The lock numbers visits one at a time and checks the limits against the latest state.
    const { referral } = await this.referrals.lock(referralId, tx);
    // Someone else may have accepted it since assertTreats.
    if (!Visits.treats(principal, referral)) throw notFound('referral', referralId, 'Referral', referral.patientId);
    const refused = refusal(referral);
    if (refused) throw refused;
    const acceptedOn = isoDay(referral.acceptedAt!);
    if (visit.visitDate < acceptedOn) {
      throw validationFailed([{ field: 'visitDate', message: `must not be before the referral was accepted (${acceptedOn})` }]);
    }

    const visitNumber = referral.visitsUsed + 1;
    const written = await note.write(referral, visitNumber);
    // The first visit starts the referral; a final one completes it: the moves of lifecycle.ts.
    const moves: ReferralMove[] = [];
    if (referral.status === 'accepted') moves.push('start');
    if (visit.final) moves.push('complete');
    let status = referral.status;
    const steps = moves.map((move) => {
      assertMoveAllowed(move, status);
      const step = { move, from: status, to: targetStatus(move, status) };
      status = step.to;
      return step;
    });
    const pain = { visitNumber, before: visit.painBefore, after: visit.painAfter };
    const updated = await this.referrals.update(
      referralId,
      {
        status,
        visitsUsed: visitNumber,
        firstPain: referral.firstPain ?? pain,
        latestPain: pain,
        latestOutcomes: mergeOutcomes(referral.latestOutcomes, visit, visitNumber),
      },
      tx,
    );
    note.announce(updated, written);
    if (visit.final) unit.emit({ type: 'referral.completed', referral: updated });
    if (becameOverdue(updated)) unit.emit({ type: 'report.overdue', referral: updated });
    if (steps.length > 0) {
      const actor = actorOf(principal);
      await this.referrals.appendEvents(
        steps.map(({ move, from, to }) => ({ referralId, action: move, fromStatus: from, toStatus: to, version: updated.version, actor, changes: { visitNumber } })),
        tx,
      );
    }
    return written;
  }
}
