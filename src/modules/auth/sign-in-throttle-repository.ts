// SQL for the sign-in throttle: failures counted per key within a fixed window (table sign_in_throttle).
import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { signInThrottle } from '../../db/schema.js';

export interface CountedAttempt {
  /** Attempts under this key in the current window, this one included. */
  failures: number;
  /** Whole seconds until the window ends (at least 1), by the database's clock. */
  secondsLeft: number;
}

export class SignInThrottleRepository {
  constructor(private readonly db: Executor) {}

  /**
   * Counts one attempt under the key in a single statement, starting a new window when the last
   * one has passed. One statement, so concurrent attempts each get their own count and none can
   * slip under the limit between a read and a write.
   */
  async countAttempt({ key, windowSeconds }: { key: string; windowSeconds: number }, executor: Executor = this.db): Promise<CountedAttempt> {
    const windowPassed = sql`${signInThrottle.windowStartedAt} <= now() - make_interval(secs => ${windowSeconds})`;
    const [row] = await executor
      .insert(signInThrottle)
      .values({ key, failures: 1 })
      .onConflictDoUpdate({
        target: signInThrottle.key,
        set: {
          failures: sql`case when ${windowPassed} then 1 else ${signInThrottle.failures} + 1 end`,
          windowStartedAt: sql`case when ${windowPassed} then now() else ${signInThrottle.windowStartedAt} end`,
        },
      })
      .returning({
        failures: signInThrottle.failures,
        secondsLeft: sql<number>`greatest(1, ceil(extract(epoch from
          ${signInThrottle.windowStartedAt} + make_interval(secs => ${windowSeconds}) - now())))::int`.mapWith(Number),
      });
    return row!;
  }

  /** Forgets the key's failures altogether. */
  async clear({ key }: { key: string }, executor: Executor = this.db): Promise<void> {
    await executor.delete(signInThrottle).where(eq(signInThrottle.key, key));
  }

  /** Takes one attempt back from the key's count (never below zero). */
  async withdrawOne({ key }: { key: string }, executor: Executor = this.db): Promise<void> {
    await executor
      .update(signInThrottle)
      .set({ failures: sql`greatest(${signInThrottle.failures} - 1, 0)` })
      .where(eq(signInThrottle.key, key));
  }

  /** Deletes up to `limit` rows whose window has passed; returns how many went. */
  async purgePassedWindows({ windowSeconds, limit }: { windowSeconds: number; limit: number }): Promise<number> {
    const passed = lt(signInThrottle.windowStartedAt, sql`now() - make_interval(secs => ${windowSeconds})`);
    const batch = this.db.select({ key: signInThrottle.key }).from(signInThrottle).where(passed).limit(limit);
    // The window condition is repeated outside the batch so a row that a concurrent attempt has just
    // restarted is re-checked on its new version and kept.
    const rows = await this.db
      .delete(signInThrottle)
      .where(and(passed, inArray(signInThrottle.key, batch)))
      .returning({ key: signInThrottle.key });
    return rows.length;
  }
}
