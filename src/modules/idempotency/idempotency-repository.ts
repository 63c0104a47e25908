// SQL for idempotency records: claimed before a POST runs, completed with its response after.
import { and, eq, like, lt, or, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { idempotencyRecords } from '../../db/schema.js';

export type IdempotencyRecord = typeof idempotencyRecords.$inferSelect;

export class IdempotencyRepository {
  constructor(private readonly db: Executor) {}

  /** Claims the key for this caller; false when the key is already taken. */
  async claim({ callerKey, key, requestHash, requestId }: { callerKey: string; key: string; requestHash: string; requestId: string }): Promise<boolean> {
    const rows = await this.db
      .insert(idempotencyRecords)
      .values({ callerKey, key, requestHash, requestId, state: 'in_progress' })
      .onConflictDoNothing()
      .returning({ key: idempotencyRecords.key });
    return rows.length === 1;
  }

  async find({ callerKey, key }: { callerKey: string; key: string }): Promise<IdempotencyRecord | undefined> {
    const [row] = await this.db
      .select()
      .from(idempotencyRecords)
      .where(and(eq(idempotencyRecords.callerKey, callerKey), eq(idempotencyRecords.key, key)));
    return row;
  }

  async complete(
    { callerKey, key, statusCode, headers, body }: { callerKey: string; key: string; statusCode: number; headers: Record<string, string>; body: string },
  ): Promise<void> {
    await this.db
      .update(idempotencyRecords)
      .set({ state: 'completed', statusCode, responseHeaders: headers, responseBody: body })
      .where(and(eq(idempotencyRecords.callerKey, callerKey), eq(idempotencyRecords.key, key)));
  }

  /**
   * Takes these top-level fields out of every kept JSON response holding them: responses kept by a
   * version that still kept secrets. Safe to run from several processes at once.
   */
  async removeResponseFields(fields: readonly string[]): Promise<number> {
    if (fields.length === 0) return 0;
    const body = idempotencyRecords.responseBody;
    const stripped = fields.reduce((json, field) => sql`${json} - ${field}::text`, sql`${body}::jsonb`);
    const rows = await this.db
      .update(idempotencyRecords)
      .set({ responseBody: sql`(${stripped})::text` })
      .where(and(eq(idempotencyRecords.state, 'completed'), like(body, '{%'), or(...fields.map((field) => like(body, `%${JSON.stringify(field)}:%`)))))
      .returning({ key: idempotencyRecords.key });
    return rows.length;
  }

  /** Binds a claim made before its body could be read (a streamed upload) to that body's hash. */
  async bindRequestHash({ callerKey, key, requestHash }: { callerKey: string; key: string; requestHash: string }): Promise<void> {
    await this.db
      .update(idempotencyRecords)
      .set({ requestHash })
      .where(and(eq(idempotencyRecords.callerKey, callerKey), eq(idempotencyRecords.key, key), eq(idempotencyRecords.state, 'in_progress')));
  }

  /** Removes the claim this request made, and nothing a later request made under the key. */
  async release({ callerKey, key, requestId }: { callerKey: string; key: string; requestId: string }): Promise<void> {
    await this.db
      .delete(idempotencyRecords)
      .where(and(eq(idempotencyRecords.callerKey, callerKey), eq(idempotencyRecords.key, key), eq(idempotencyRecords.requestId, requestId)));
  }

  /** Removes a record older than the cutoff, so its key can be used afresh. */
  async releaseIfOlderThan({ callerKey, key, cutoff }: { callerKey: string; key: string; cutoff: Date }): Promise<boolean> {
    const rows = await this.db
      .delete(idempotencyRecords)
      .where(and(eq(idempotencyRecords.callerKey, callerKey), eq(idempotencyRecords.key, key), lt(idempotencyRecords.createdAt, cutoff)))
      .returning({ key: idempotencyRecords.key });
    return rows.length === 1;
  }

  async purgeOlderThan(cutoff: Date): Promise<number> {
    const rows = await this.db
      .delete(idempotencyRecords)
      .where(lt(idempotencyRecords.createdAt, cutoff))
      .returning({ key: idempotencyRecords.key });
    return rows.length;
  }
}
