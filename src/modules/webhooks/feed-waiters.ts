// Long polls of the events feed wait here for the next event: one LISTEN per process on the channel
// the outbox notifies at every commit that wrote an event, fanned out to every waiting request.
// Closing the app wakes them all, so a poll held open ends at once with what it has.
import type { DatabaseHandle } from '../../db/database.js';
import { eventFeedChannel } from './outbox.js';

export class FeedWaiters {
  private readonly waiting = new Set<() => void>();
  private unlisten: (() => Promise<void>) | undefined;
  private closing = false;

  constructor(private readonly database: DatabaseHandle) {}

  get isClosing(): boolean {
    return this.closing;
  }

  async start(): Promise<void> {
    this.unlisten = await this.database.listen(eventFeedChannel, () => this.wakeAll());
  }

  /** Resolves true when an event was committed (or the app closes), false after `ms`. */
  wait(ms: number): Promise<boolean> {
    if (this.closing || ms <= 0) return Promise.resolve(this.closing);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiting.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiting.delete(wake);
        resolve(false);
      }, ms);
      this.waiting.add(wake);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.wakeAll();
    await this.unlisten?.().catch(() => {});
  }

  private wakeAll(): void {
    for (const wake of [...this.waiting]) wake();
  }
}
