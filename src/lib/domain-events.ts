// Domain events: what happened to a referral, told by the module that made it happen to whoever
// subscribed (webhooks turns them into deliveries). Handlers run inside the change's transaction,
// so an event exists exactly when its change commits.
import type { Executor } from '../db/database.js';
import type { DomainEventType } from './vocabulary.js';

export { domainEventTypes, type DomainEventType } from './vocabulary.js';

/** What a subscriber may know of the referral an event is about: ids and status, never clinical text. */
export interface ReferralFacts {
  id: string;
  status: string;
  organizationId: string;
  targetPracticeId: string | null;
  acceptedPracticeId: string | null;
  targetKind: string;
}

export interface DomainEvent {
  type: DomainEventType;
  referral: ReferralFacts;
  /** The record the event is about, when it is not the referral itself. */
  resource?: { type: 'progress_report' | 'message'; id: string; url: string };
}

export type DomainEventHandler = (event: DomainEvent, tx: Executor) => Promise<void>;

export class DomainEvents {
  private readonly handlers: DomainEventHandler[] = [];

  subscribe(handler: DomainEventHandler): void {
    this.handlers.push(handler);
  }

  async publish(event: DomainEvent, tx: Executor): Promise<void> {
    await Promise.all(this.handlers.map((handler) => handler(event, tx)));
  }
}
