// A transaction that loses a serialization conflict or is picked as a deadlock victim has changed
// nothing, so it is run again from the start, a bounded number of times with a jittered pause.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from './database.js';
import { isRetryableConflict } from './transient-errors.js';
import type { WakeUps } from './wake-ups.js';

export const maxTransactionAttempts = 3;

/**
 * Makes every top-level `db.transaction(...)` retry on 40001/40P01, and send the wake-ups a
 * committed attempt asked for (wake-ups.ts). Nested transactions are
 * savepoints of the outer one and are left alone: only the whole transaction can be re-run.
 * The work passed in must only touch the database (it may run more than once).
 */
export function retryingTransactions(db: Database, wakeUps: WakeUps): Database {
  const transaction = db.transaction.bind(db);
  db.transaction = (async (work, config) => {
    for (let attempt = 1; ; attempt++) {
      try {
        let committed: object | undefined;
        const result = await transaction((tx) => ((committed = tx), work(tx)), config);
        // The wake-ups this attempt asked for; those of an attempt that rolled back are dropped with it.
        if (committed) wakeUps.committed(committed);
        return result;
      } catch (error) {
        if (attempt >= maxTransactionAttempts || !isRetryableConflict(error)) throw error;
        await sleep(attempt * 5 + Math.random() * 20 * attempt);
      }
    }
  }) as Database['transaction'];
  return db;
}
