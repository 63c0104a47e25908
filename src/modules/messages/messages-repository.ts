// SQL for message threads: messages in order, per-reader markers that only move forward, and the
// two flags an urgent message gains (acknowledged, escalated), each set once.
import { and, asc, desc, eq, gt, isNull, lt, ne, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { messageReadMarkers, messages } from '../../db/schema.js';
import type { Message } from './schemas.js';

export type MessageRow = typeof messages.$inferSelect;

export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    referralId: row.referralId,
    author: { type: row.authorType, id: row.authorId, organizationId: row.authorOrganizationId },
    body: row.body,
    priority: row.priority,
    acknowledgedAt: row.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: row.acknowledgedBy,
    escalatedAt: row.escalatedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}

/** Urgent messages nobody acknowledged or escalated yet, written more than `minutes` ago. */
const overdue = (minutes: number) =>
  and(
    eq(messages.priority, 'urgent'),
    isNull(messages.acknowledgedAt),
    isNull(messages.escalatedAt),
    lt(messages.createdAt, sql`now() - make_interval(mins => ${minutes}::int)`),
  );

export class MessagesRepository {
  constructor(private readonly db: Executor) {}

  async insert(values: typeof messages.$inferInsert, executor: Executor = this.db): Promise<MessageRow> {
    const [row] = await executor.insert(messages).values(values).returning();
    return row!;
  }

  async list({ referralId, afterSeq, limit }: { referralId: string; afterSeq?: number | undefined; limit: number }) {
    return this.db
      .select()
      .from(messages)
      .where(and(eq(messages.referralId, referralId), afterSeq === undefined ? undefined : gt(messages.seq, afterSeq)))
      .orderBy(asc(messages.seq))
      .limit(limit + 1);
  }

  async find({ referralId, messageId }: { referralId: string; messageId: string }, executor: Executor = this.db) {
    const [row] = await executor
      .select()
      .from(messages)
      .where(and(eq(messages.referralId, referralId), eq(messages.id, messageId)));
    return row;
  }

  /** A message by its id alone, whichever referral's thread it is in. */
  async findById(messageId: string, executor: Executor = this.db) {
    const [row] = await executor.select().from(messages).where(eq(messages.id, messageId));
    return row;
  }

  async lastSeq(referralId: string): Promise<number | undefined> {
    const [row] = await this.db
      .select({ seq: messages.seq })
      .from(messages)
      .where(eq(messages.referralId, referralId))
      .orderBy(desc(messages.seq))
      .limit(1);
    return row?.seq;
  }

  /** Records the first acknowledgement of a message; undefined when it was already acknowledged. */
  async acknowledge({ messageId, by }: { messageId: string; by: string }, executor: Executor): Promise<MessageRow | undefined> {
    const [row] = await executor
      .update(messages)
      .set({ acknowledgedAt: sql`now()`, acknowledgedBy: by })
      .where(and(eq(messages.id, messageId), isNull(messages.acknowledgedAt)))
      .returning();
    return row;
  }

  /** Up to `limit` urgent messages overdue for escalation, oldest first, after the [createdAt µs, id] key. */
  async overdueUrgent({ minutes, after, limit }: { minutes: number; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ id: messages.id, referralId: messages.referralId, key: epochMicros(messages.createdAt) })
      .from(messages)
      .where(and(overdue(minutes), after ? afterKey(messages.createdAt, messages.id, after) : undefined))
      .orderBy(asc(messages.createdAt), asc(messages.id))
      .limit(limit);
  }

  /**
   * Marks an overdue message escalated, once: the row is claimed (skipped if another sweeper holds
   * it) and its conditions checked again under the lock; the update only sets a flag still unset.
   * Undefined when the message is no longer due (acknowledged, escalated, or being escalated).
   */
  async claimEscalation({ messageId, minutes }: { messageId: string; minutes: number }, executor: Executor): Promise<MessageRow | undefined> {
    const [claimed] = await executor
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.id, messageId), overdue(minutes)))
      .for('update', { skipLocked: true });
    if (!claimed) return undefined;
    const [row] = await executor
      .update(messages)
      .set({ escalatedAt: sql`now()` })
      .where(and(eq(messages.id, messageId), isNull(messages.escalatedAt)))
      .returning();
    return row;
  }

  /** Moves a reader's marker forward to seq (never back) and returns their read state. */
  async markRead({ referralId, readerId, seq }: { referralId: string; readerId: string; seq: number }, executor: Executor = this.db) {
    await executor
      .insert(messageReadMarkers)
      .values({ referralId, readerId, lastReadSeq: seq })
      .onConflictDoUpdate({
        target: [messageReadMarkers.referralId, messageReadMarkers.readerId],
        set: { lastReadSeq: sql`greatest(${messageReadMarkers.lastReadSeq}, excluded.last_read_seq)`, updatedAt: sql`now()` },
      });
  }

  /** Messages by others after the reader's marker, and the last message the reader has read. */
  async readState({ referralId, readerId }: { referralId: string; readerId: string }, executor: Executor = this.db) {
    const marker = sql`coalesce((select ${messageReadMarkers.lastReadSeq} from ${messageReadMarkers}
      where ${messageReadMarkers.referralId} = ${referralId} and ${messageReadMarkers.readerId} = ${readerId}), 0)`;
    const [counts] = await executor
      .select({ unread: sql<number>`count(*)::int` })
      .from(messages)
      .where(and(eq(messages.referralId, referralId), ne(messages.authorId, readerId), sql`${messages.seq} > ${marker}`));
    const [lastRead] = await executor
      .select({ id: messages.id })
      .from(messages)
      .where(and(eq(messages.referralId, referralId), sql`${messages.seq} <= ${marker}`))
      .orderBy(desc(messages.seq))
      .limit(1);
    return { unread: counts?.unread ?? 0, lastReadMessageId: lastRead?.id ?? null };
  }
}
