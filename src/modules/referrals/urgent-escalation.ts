// urgent.unacknowledged (SPEC §14.10): what a referral's thread flagged urgent (an urgent message, an
// adverse event) and nobody acknowledged within URGENT_ESCALATION_MINUTES is announced to the office
// once more, once, by the worker. Exactly once with any number of workers sweeping at once: each
// record is claimed under lock and its escalated_at, set only while unset, is written in the same
// transaction as the event. The module owning the records says how to find and claim them.
import type { Executor } from '../../db/database.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { ReferralWorkflow } from './referral-workflow.js';

export interface EscalatedRecords {
  resourceType: 'message' | 'adverse_event';
  /** Records overdue and not yet escalated, in [key, id] order after `after`. */
  overdue(query: { minutes: number; after: [string, string] | undefined; limit: number }): Promise<{ id: string; referralId: string; key: string }[]>;
  /** Sets escalated_at if still unset and still overdue; the record if this call set it. */
  claim(query: { id: string; minutes: number }, tx: Executor): Promise<{ id: string } | undefined>;
  url(referralId: string, id: string): string;
}

export class UrgentEscalation {
  constructor(
    private readonly records: EscalatedRecords,
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
    private readonly afterMinutes: number,
  ) {}

  /** Escalates every record now overdue; returns how many this run escalated. */
  async escalateDue(context: AuditContext, batchSize = 100): Promise<number> {
    let escalated = 0;
    let after: [string, string] | undefined;
    for (;;) {
      // From where the last batch ended: a record this run could not claim (another worker holds
      // it) is not asked for again and again within one run; the next run looks at it again.
      const due = await this.records.overdue({ minutes: this.afterMinutes, after, limit: batchSize });
      for (const record of due) escalated += await this.escalate(context, record);
      if (due.length < batchSize) return escalated;
      const last = due.at(-1)!;
      after = [last.key, last.id];
    }
  }

  /** One record in a unit of work of its own: 1 if this run escalated it, 0 if it was not due (any more). */
  private escalate(context: AuditContext, record: { id: string; referralId: string }): Promise<number> {
    const { resourceType } = this.records;
    return this.units.run(context, async (unit) => {
      // The referral's lock first: writing the record's flag touches the referral (its activity),
      // and an acknowledgement takes the referral's lock before the record's; in the same order the
      // two queue instead of deadlocking, and the event is written in the thread's order.
      const referral = await this.referrals.lockForSweep(record.referralId, unit.tx);
      const claimed = await this.records.claim({ id: record.id, minutes: this.afterMinutes }, unit.tx);
      if (!claimed) return 0;
      unit.emit({ type: 'urgent.unacknowledged', referral, audience: 'office', resource: { type: resourceType, id: claimed.id, url: this.records.url(referral.id, claimed.id) } });
      unit.audit({ action: `${resourceType}.escalate`, resourceType, resourceId: claimed.id, patientId: referral.patientId });
      return 1;
    });
  }
}
