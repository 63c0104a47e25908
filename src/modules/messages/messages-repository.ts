// SQL for message threads: messages in order, and per-reader markers that only move forward.
import { and, asc, desc, eq, gt, ne, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { messageReadMarkers, messages } from '../../db/schema.js';
import type { Message } from './schemas.js';

type MessageRow = typeof messages.$inferSelect;

export function toMessage(row: MessageRow): Message {
  return {
    id: row.id,
    referralId: row.referralId,
    author: { type: row.authorType, id: row.authorId, organizationId: row.authorOrganizationId },
    body: row.body,
    createdAt: row.createdAt.toISOString(),
  };
}

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

  async find({ referralId, messageId }: { referralId: string; messageId: string }) {
    const [row] = await this.db
      .select()
      .from(messages)
      .where(and(eq(messages.referralId, referralId), eq(messages.id, messageId)));
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
