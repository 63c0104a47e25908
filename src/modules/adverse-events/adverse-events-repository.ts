// SQL for adverse events: reported, listed in the order they were reported, and the two flags each
// gains (acknowledged, escalated), each set once.
import { and, asc, eq, isNull, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { adverseEvents } from '../../db/schema.js';
import type { AdverseEvent } from './schemas.js';

export type AdverseEventRow = typeof adverseEvents.$inferSelect;

export function toAdverseEvent(row: AdverseEventRow): AdverseEvent {
  return {
    id: row.id,
    referralId: row.referralId,
    occurredOn: row.occurredOn,
    description: row.description,
    severity: row.severity,
    actionTaken: row.actionTaken,
    treatmentPaused: row.treatmentPaused,
    reportedBy: { type: row.reporterType, id: row.reportedBy, organizationId: row.reporterOrganizationId },
    createdAt: row.createdAt.toISOString(),
    acknowledgedAt: row.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: row.acknowledgedBy,
    escalatedAt: row.escalatedAt?.toISOString() ?? null,
  };
}

/** Events nobody acknowledged or escalated yet, reported more than `minutes` ago. */
const overdue = (minutes: number) =>
  and(isNull(adverseEvents.acknowledgedAt), isNull(adverseEvents.escalatedAt), lt(adverseEvents.createdAt, sql`now() - make_interval(mins => ${minutes}::int)`));

export class AdverseEventsRepository {
  constructor(private readonly db: Executor) {}

  async insert(values: typeof adverseEvents.$inferInsert, executor: Executor): Promise<AdverseEventRow> {
    const [row] = await executor.insert(adverseEvents).values(values).returning();
    return row!;
  }

  async find({ referralId, eventId }: { referralId: string; eventId: string }, executor: Executor = this.db): Promise<AdverseEventRow | undefined> {
    const [row] = await executor
      .select()
      .from(adverseEvents)
      .where(and(eq(adverseEvents.id, eventId), eq(adverseEvents.referralId, referralId)));
    return row;
  }

  /** Up to limit + 1 events of the referral in the order they were reported, after the cursor's [createdAt in µs, id]. */
  async list({ referralId, after, limit }: { referralId: string; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ row: adverseEvents, cursorTime: epochMicros(adverseEvents.createdAt) })
      .from(adverseEvents)
      .where(and(eq(adverseEvents.referralId, referralId), after ? afterKey(adverseEvents.createdAt, adverseEvents.id, after) : undefined))
      .orderBy(asc(adverseEvents.createdAt), asc(adverseEvents.id))
      .limit(limit + 1);
  }

  /** Records the first acknowledgement; undefined when the event was already acknowledged. */
  async acknowledge({ eventId, by }: { eventId: string; by: string }, executor: Executor): Promise<AdverseEventRow | undefined> {
    const [row] = await executor
      .update(adverseEvents)
      .set({ acknowledgedAt: sql`now()`, acknowledgedBy: by })
      .where(and(eq(adverseEvents.id, eventId), isNull(adverseEvents.acknowledgedAt)))
      .returning();
    return row;
  }

  /** Up to `limit` events overdue for escalation, oldest first, after the [createdAt µs, id] key. */
  async overdue({ minutes, after, limit }: { minutes: number; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ id: adverseEvents.id, referralId: adverseEvents.referralId, key: epochMicros(adverseEvents.createdAt) })
      .from(adverseEvents)
      .where(and(overdue(minutes), after ? afterKey(adverseEvents.createdAt, adverseEvents.id, after) : undefined))
      .orderBy(asc(adverseEvents.createdAt), asc(adverseEvents.id))
      .limit(limit);
  }

  /**
   * Marks an overdue event escalated, once: the row is claimed (skipped if another sweeper holds it)
   * and its conditions checked again under the lock; the update only sets a flag still unset.
   * Undefined when the event is no longer due (acknowledged, escalated, or being escalated).
   */
  async claimEscalation({ eventId, minutes }: { eventId: string; minutes: number }, executor: Executor): Promise<AdverseEventRow | undefined> {
    const [claimed] = await executor
      .select({ id: adverseEvents.id })
      .from(adverseEvents)
      .where(and(eq(adverseEvents.id, eventId), overdue(minutes)))
      .for('update', { skipLocked: true });
    if (!claimed) return undefined;
    const [row] = await executor
      .update(adverseEvents)
      .set({ escalatedAt: sql`now()` })
      .where(and(eq(adverseEvents.id, eventId), isNull(adverseEvents.escalatedAt)))
      .returning();
    return row;
  }
}
