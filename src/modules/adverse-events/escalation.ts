// urgent.unacknowledged for adverse events (SPEC §14.10): an event the office has not acknowledged
// within URGENT_ESCALATION_MINUTES is announced once more, once, by the worker. Exactly once with
// any number of workers sweeping at once: each event is claimed under lock and its escalated_at,
// set only while unset, is written in the same transaction as the announcement.
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { AdverseEventWorkflow } from './adverse-event-workflow.js';
import type { AdverseEventsRepository } from './adverse-events-repository.js';

export class AdverseEventEscalation {
  constructor(
    private readonly events: AdverseEventsRepository,
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
    private readonly afterMinutes: number,
  ) {}

  /** Escalates every adverse event now overdue; returns how many this run escalated. */
  async escalateDue(context: AuditContext, batchSize = 100): Promise<number> {
    let escalated = 0;
    let after: [string, string] | undefined;
    for (;;) {
      // From where the last batch ended: an event this run could not claim (another worker
      // holds it) is not asked for again and again within one run; the next run looks at it again.
      const due = await this.events.overdue({ minutes: this.afterMinutes, after, limit: batchSize });
      for (const event of due) escalated += await this.escalate(context, event);
      if (due.length < batchSize) return escalated;
      const last = due.at(-1)!;
      after = [last.key, last.id];
    }
  }

  /** One event in a unit of work of its own: 1 if this run escalated it, 0 if it was not due (any more). */
  private escalate(context: AuditContext, event: { id: string; referralId: string }): Promise<number> {
    return this.units.run(context, async (unit) => {
      // The referral's lock first: writing the event's flag touches the referral (its activity), and
      // an acknowledgement takes the referral's lock before the event's; in the same order the two
      // queue instead of deadlocking.
      const referral = await this.referrals.lockForSweep(event.referralId, unit.tx);
      const claimed = await this.events.claimEscalation({ eventId: event.id, minutes: this.afterMinutes }, unit.tx);
      if (!claimed) return 0;
      unit.emit({ type: 'urgent.unacknowledged', referral, audience: 'office', resource: { type: 'adverse_event', id: claimed.id, url: AdverseEventWorkflow.url(referral.id, claimed.id) } });
      unit.audit({ action: 'adverse_event.escalate', resourceType: 'adverse_event', resourceId: claimed.id, patientId: referral.patientId });
      return 1;
    });
  }
}
