// Group commit for audit events written outside any change (reads, lists, refusals): each audited
// request waits until its event is durable, but the events of concurrent requests share one
// INSERT, one turn on the hash chain's lock and one commit instead of taking turns one by one.
import type { Executor } from '../../db/database.js';
import { auditEvents } from '../../db/schema.js';

type AuditRow = typeof auditEvents.$inferInsert;

interface Waiting {
  rows: AuditRow[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class AuditWriteBatch {
  private waiting: Waiting[] = [];
  private writing = false;

  constructor(private readonly db: Executor) {}

  /** Resolves once the rows are committed; rejects if they could not be written. */
  write(rows: AuditRow[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ rows, resolve, reject });
      // While one batch is being written the next one gathers; one in flight is enough, because
      // every writer takes its turn on the chain's lock anyway.
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        await this.db.insert(auditEvents).values(batch.flatMap((entry) => entry.rows));
        for (const entry of batch) entry.resolve();
      } catch (error) {
        if (batch.length === 1) batch[0]!.reject(error);
        // One bad event must not fail the requests it happened to share a batch with.
        else await Promise.all(batch.map((entry) => this.writeAlone(entry)));
      }
    }
    this.writing = false;
  }

  private async writeAlone(entry: Waiting): Promise<void> {
    try {
      await this.db.insert(auditEvents).values(entry.rows);
      entry.resolve();
    } catch (error) {
      entry.reject(error);
    }
  }
}
