// The unit of work every change goes through: one transaction that collects the change's audit
// entries and domain events and writes them with it, so a change never commits unaudited and a
// rolled-back change announces nothing.
import type { Database, Executor } from '../db/database.js';
import type { AuditContext, AuditEntry, AuditLog, AuditOutcome } from '../modules/audit/audit-log.js';
import type { DomainEvent, DomainEvents } from './domain-events.js';

export type SuccessEntry = Omit<AuditEntry, 'outcome'>;

export class UnitOfWork {
  private readonly entries: AuditEntry[] = [];
  private readonly published: Promise<void>[] = [];

  constructor(
    readonly tx: Executor,
    readonly context: AuditContext,
    private readonly events: DomainEvents,
  ) {}

  /** An audit event of this change, written with it: a success unless it says otherwise (a refresh token's reuse refused and its family ended). */
  audit(entry: SuccessEntry & { outcome?: AuditOutcome }): void {
    this.entries.push({ outcome: 'success', ...entry });
  }

  /**
   * A domain event of this change. Its subscribers start at once, on the transaction's connection,
   * so their statements are pipelined with the rest of the change rather than queued behind it;
   * events of one change reach the outbox in the order they were emitted.
   */
  emit(event: DomainEvent): void {
    const previous = this.published.at(-1) ?? Promise.resolve();
    const publishing = previous.then(() => this.events.publish(event, this.tx));
    // Awaited by finish(); a failure before then rolls the change back, not the process.
    publishing.catch(() => undefined);
    this.published.push(publishing);
  }

  /** @internal Writes what was collected; run by UnitsOfWork at the end of the work. */
  async finish(auditLog: AuditLog): Promise<void> {
    await Promise.all([auditLog.recordMany(this.context, this.entries, this.tx), ...this.published]);
  }

  /** @internal Lets subscribers still in flight settle before the transaction rolls back. */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.published);
  }
}

export class UnitsOfWork {
  constructor(
    private readonly db: Database,
    private readonly auditLog: AuditLog,
    private readonly events: DomainEvents,
  ) {}

  /** Runs a change in one transaction with its audit entries and domain events. */
  async run<T>(context: AuditContext, work: (unit: UnitOfWork) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      const unit = new UnitOfWork(tx, context, this.events);
      let result: T;
      try {
        result = await work(unit);
      } catch (error) {
        await unit.abandon();
        throw error;
      }
      await unit.finish(this.auditLog);
      return result;
    });
  }

  /** The common case: a change whose audit entry is known once the work has returned. */
  async change<T>(context: AuditContext, work: (tx: Executor) => Promise<T>, entryOf: (result: T) => SuccessEntry): Promise<T> {
    return this.run(context, async (unit) => {
      const result = await work(unit.tx);
      unit.audit(entryOf(result));
      return result;
    });
  }
}
