// urgent.unacknowledged for messages (SPEC §14.10): an urgent message nobody acknowledged within
// URGENT_ESCALATION_MINUTES is announced once more, once, by the worker. Exactly once with any
// number of workers sweeping at once: each message is claimed under lock and its escalated_at, set
// only while unset, is written in the same transaction as the event.
import { apiPrefix } from '../../lib/api-prefix.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import type { MessagesRepository } from './messages-repository.js';

export class UrgentMessageEscalation {
  constructor(
    private readonly messages: MessagesRepository,
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
    private readonly afterMinutes: number,
  ) {}

  /** Escalates every urgent message now overdue; returns how many this run escalated. */
  async escalateDue(context: AuditContext, batchSize = 100): Promise<number> {
    let escalated = 0;
    let after: [string, string] | undefined;
    for (;;) {
      // From where the last batch ended: a message this run could not claim (another worker
      // holds it) is not asked for again and again within one run; the next run looks at it again.
      const due = await this.messages.overdueUrgent({ minutes: this.afterMinutes, after, limit: batchSize });
      for (const message of due) escalated += await this.escalate(context, message);
      if (due.length < batchSize) return escalated;
      const last = due.at(-1)!;
      after = [last.key, last.id];
    }
  }

  /** One message in a unit of work of its own: 1 if this run escalated it, 0 if it was not due (any more). */
  private escalate(context: AuditContext, message: { id: string; referralId: string }): Promise<number> {
    return this.units.run(context, async (unit) => {
      // The referral's lock first, as an acknowledgement takes it before the message's: the two
      // queue instead of deadlocking, and the event is written in the thread's order.
      const referral = await this.referrals.lockForSweep(message.referralId, unit.tx);
      const claimed = await this.messages.claimEscalation({ messageId: message.id, minutes: this.afterMinutes }, unit.tx);
      if (!claimed) return 0;
      unit.emit({ type: 'urgent.unacknowledged', referral, audience: 'office', resource: { type: 'message', id: claimed.id, url: `${apiPrefix}/referrals/${referral.id}/messages` } });
      unit.audit({ action: 'message.escalate', resourceType: 'message', resourceId: claimed.id, patientId: referral.patientId });
      return 1;
    });
  }
}
