// SQL for appointments: booked, their status changed, listed in the order they happen.
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { appointments } from '../../db/schema.js';
import type { AppointmentStatus } from '../../lib/vocabulary.js';
import type { Appointment } from './schemas.js';

export type AppointmentRow = typeof appointments.$inferSelect;

export function toAppointment(row: AppointmentRow): Appointment {
  return {
    id: row.id,
    referralId: row.referralId,
    startsAt: row.startsAt.toISOString(),
    minutes: row.minutes,
    status: row.status,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export class AppointmentsRepository {
  constructor(private readonly db: Executor) {}

  async insert(values: typeof appointments.$inferInsert, executor: Executor): Promise<AppointmentRow> {
    const [row] = await executor.insert(appointments).values(values).returning();
    return row!;
  }

  async find({ referralId, appointmentId }: { referralId: string; appointmentId: string }, executor: Executor = this.db): Promise<AppointmentRow | undefined> {
    const [row] = await executor
      .select()
      .from(appointments)
      .where(and(eq(appointments.id, appointmentId), eq(appointments.referralId, referralId)));
    return row;
  }

  async setStatus({ appointmentId, status }: { appointmentId: string; status: AppointmentStatus }, executor: Executor): Promise<AppointmentRow> {
    const [row] = await executor.update(appointments).set({ status, updatedAt: sql`now()` }).where(eq(appointments.id, appointmentId)).returning();
    return row!;
  }

  /** Up to limit + 1 appointments of the referral by start time (then id), after the cursor's [startsAt in µs, id]. */
  async list({ referralId, after, limit }: { referralId: string; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ row: appointments, cursorTime: epochMicros(appointments.startsAt) })
      .from(appointments)
      .where(and(eq(appointments.referralId, referralId), after ? afterKey(appointments.startsAt, appointments.id, after) : undefined))
      .orderBy(asc(appointments.startsAt), asc(appointments.id))
      .limit(limit + 1);
  }
}
