// Repeated identical refusals (same caller, action, record, status and address) are written one by
// one only up to a few per window and then counted: a client hammering what it may not do costs the
// audit log a handful of events a window and one carrying the count of the rest, not one a request,
// while a person probing a few times still leaves a full event for every attempt.
import type { AuditContext, AuditEntry } from './audit-log.js';

interface OpenWindow {
  context: AuditContext;
  entry: AuditEntry;
  written: number;
  repeats: number;
  endsAt: number;
}

/** Identical refusals written as events of their own in each window before the rest are counted. */
export const refusalsWrittenPerWindow = 5;

export type DenialWriter = (context: AuditContext, entry: AuditEntry) => Promise<void>;

// Beyond this many distinct refusals in one window, each is written as it comes: memory stays bounded
// and nothing goes unaudited.
const maxOpenWindows = 10_000;

export class DenialAggregator {
  private readonly open = new Map<string, OpenWindow>();

  constructor(
    private readonly write: DenialWriter,
    private readonly windowMs: number,
  ) {}

  async record(context: AuditContext, entry: AuditEntry): Promise<void> {
    const key = keyOf(context, entry);
    const now = Date.now();
    const window = this.open.get(key);
    if (window && now < window.endsAt) {
      if (window.written < refusalsWrittenPerWindow) {
        window.written++;
        await this.write(context, entry);
        return;
      }
      window.repeats++;
      // The summary names the last repeat's request, so it can be found beside that request's logs.
      window.context = context;
      return;
    }
    if (window) await this.close(key, window);
    if (this.open.size < maxOpenWindows) this.open.set(key, { context, entry, written: 1, repeats: 0, endsAt: now + this.windowMs });
    await this.write(context, entry);
  }

  /** Writes the counts of every window that has ended (all of them when closing). */
  async flush({ all = false }: { all?: boolean } = {}): Promise<void> {
    const now = Date.now();
    const ended = [...this.open].filter(([, window]) => all || window.endsAt <= now);
    await Promise.all(ended.map(([key, window]) => this.close(key, window)));
  }

  private async close(key: string, window: OpenWindow): Promise<void> {
    this.open.delete(key);
    if (window.repeats > 0) await this.write(window.context, { ...window.entry, repeatCount: window.repeats });
  }
}

function keyOf(context: AuditContext, entry: AuditEntry): string {
  const principal = context.principal;
  return JSON.stringify([
    principal?.kind,
    principal?.id,
    entry.actor?.id,
    context.clientAddress,
    entry.action,
    entry.outcome,
    entry.httpStatus,
    entry.resourceType,
    entry.resourceId,
    entry.patientId,
  ]);
}
