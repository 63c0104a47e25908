// Wake-ups of the processes that LISTEN (webhook workers, the events feed's long polls), sent after
// the change that calls for them commits, and coalesced: while one NOTIFY of a channel is on its
// way, any number of further calls make one more, not one each. A NOTIFY inside the change would
// make PostgreSQL commit the change under its cluster-wide notify lock, one change at a time, WAL
// flush included; a NOTIFY of its own holds that lock for a moment, once per batch of changes.
import type { Executor } from './database.js';

type Send = (channel: string) => Promise<void>;

/** Channels to notify once a transaction commits, by transaction (see retryingTransactions). */
const pendingByTransaction = new WeakMap<object, Set<string>>();

export class WakeUps {
  private readonly sending = new Map<string, 'sending' | 'again'>();

  constructor(
    private readonly send: Send,
    private readonly onError: (error: unknown, channel: string) => void,
  ) {}

  /** Notifies the channel once `tx` commits; never if it rolls back. */
  afterCommit(tx: Executor, channel: string): void {
    const pending = pendingByTransaction.get(tx) ?? new Set<string>();
    pending.add(channel);
    pendingByTransaction.set(tx, pending);
  }

  /** @internal Run by the transaction wrapper once `tx` has committed. */
  committed(tx: object): void {
    const pending = pendingByTransaction.get(tx);
    if (!pending) return;
    pendingByTransaction.delete(tx);
    for (const channel of pending) this.notify(channel);
  }

  notify(channel: string): void {
    if (this.sending.has(channel)) {
      this.sending.set(channel, 'again');
      return;
    }
    this.sending.set(channel, 'sending');
    void this.drain(channel);
  }

  private async drain(channel: string): Promise<void> {
    do {
      this.sending.set(channel, 'sending');
      try {
        await this.send(channel);
      } catch (error) {
        // The listeners' poll still finds the work; a lost wake-up only delays it.
        this.onError(error, channel);
      }
    } while (this.sending.get(channel) === 'again');
    this.sending.delete(channel);
  }
}
