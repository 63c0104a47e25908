// referral.not_scheduled (SPEC §14.5): the office hears, once, that a referral accepted
// SCHEDULE_ALERT_DAYS ago still has no visit and nothing on the books, while there is time to call
// the patient. Run by the worker. Exactly once per referral, with any number of workers sweeping at
// once: the alert row's key decides, written in the same transaction as the event.
import { and, asc, eq, gt, lte, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { appointments, referrals, schedulingAlerts } from '../../db/schema.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';

/**
 * Referrals due an alert. It reads the referrals table, which that module owns: the referrals module
 * offers no query of its own for this, and one of its own would have to read the appointments
 * table, ours, instead. Nothing here writes a referral.
 *
 * A cancelled appointment does not count as booked: what the office needs to hear is that nothing
 * is on the books. A no-show does count: the patient was booked, and the no-show is its own event.
 */
const dueForAlert = (alertAfterDays: number) =>
  and(
    eq(referrals.status, 'accepted'),
    eq(referrals.visitsUsed, 0),
    lte(referrals.acceptedAt, sql`now() - make_interval(days => ${alertAfterDays}::int)`),
    sql`not exists (select 1 from ${appointments} where ${appointments.referralId} = ${referrals.id}
      and ${appointments.status} not in ('cancelled_by_patient', 'cancelled_by_practice'))`,
    sql`not exists (select 1 from ${schedulingAlerts} where ${schedulingAlerts.referralId} = ${referrals.id})`,
  );

export class SchedulingAlerts {
  constructor(
    private readonly db: Executor,
    private readonly units: UnitsOfWork,
    private readonly alertAfterDays: number,
  ) {}

  /** Sends the alerts now due; returns how many this run sent. */
  async sendDue(context: AuditContext, batchSize = 200): Promise<number> {
    let sent = 0;
    let after: string | undefined;
    for (;;) {
      // By id from where the last batch ended, so a referral another worker holds right now is not
      // asked for again and again within one run; the next run looks at it again.
      const due = await this.db
        .select({ id: referrals.id })
        .from(referrals)
        .where(and(dueForAlert(this.alertAfterDays), after === undefined ? undefined : gt(referrals.id, after)))
        .orderBy(asc(referrals.id))
        .limit(batchSize);
      for (const { id } of due) sent += await this.alert(context, id);
      if (due.length < batchSize) return sent;
      after = due.at(-1)!.id;
    }
  }

  /** One referral's alert, in a unit of work of its own: 1 if this run sent it, 0 if it was not due (any more). */
  private alert(context: AuditContext, referralId: string): Promise<number> {
    return this.units.run(context, async (unit) => {
      // The referral's row lock, which a booking takes too, and its conditions checked again under
      // it: an appointment booked meanwhile is seen, and a booking waits for the alert. A referral
      // locked by a change under way right now is left to the next run rather than waited for.
      const [referral] = await unit.tx
        .select({
          id: referrals.id,
          status: referrals.status,
          organizationId: referrals.organizationId,
          targetPracticeId: referrals.targetPracticeId,
          acceptedPracticeId: referrals.acceptedPracticeId,
          targetKind: referrals.targetKind,
          patientId: referrals.patientId,
          // The rest of ReferralFacts: the FHIR webhook format renders the referral's Task from them.
          taskId: referrals.taskId,
          version: referrals.version,
          updatedAt: referrals.updatedAt,
          prescriberId: referrals.prescriberId,
          targetTherapistId: referrals.targetTherapistId,
          acceptedTherapistId: referrals.acceptedTherapistId,
          acceptedAt: referrals.acceptedAt,
          holdSince: referrals.holdSince,
          holdAdverseEventId: referrals.holdAdverseEventId,
        })
        .from(referrals)
        .where(and(eq(referrals.id, referralId), dueForAlert(this.alertAfterDays)))
        .for('update', { of: referrals, skipLocked: true });
      if (!referral) return 0;
      // What makes it once, whatever the lock saw: a sweep that read the referral before another
      // committed its alert finds the key taken, and announces nothing.
      const inserted = await unit.tx.insert(schedulingAlerts).values({ referralId }).onConflictDoNothing().returning({ referralId: schedulingAlerts.referralId });
      if (inserted.length === 0) return 0;
      unit.emit({ type: 'referral.not_scheduled', referral });
      unit.audit({ action: 'referral.not_scheduled', resourceType: 'referral', resourceId: referralId, patientId: referral.patientId });
      return 1;
    });
  }
}
