// Domain events: what happened to a referral (or, rarely, in one organization), told by the module
// that made it happen to whoever subscribed (webhooks turns them into deliveries). Handlers run
// inside the change's transaction, so an event exists exactly when its change commits.
import type { Executor } from '../db/database.js';
import type { referrals } from '../db/schema.js';
import type { NetworkEventType, OrganizationEventType, ReferralEventType } from './vocabulary.js';

export { domainEventTypes, type DomainEventType } from './vocabulary.js';

/**
 * What a subscriber may know of the referral an event is about: ids, status and workflow
 * position, never clinical text. Enough to say who takes part and to render the referral's FHIR
 * Task (the FHIR webhook format), so no subscriber reads the referral again inside the change.
 */
export type ReferralFacts = Pick<
  typeof referrals.$inferSelect,
  | 'id'
  | 'status'
  | 'organizationId'
  | 'targetPracticeId'
  | 'acceptedPracticeId'
  | 'targetKind'
  | 'taskId'
  | 'version'
  | 'updatedAt'
  | 'prescriberId'
  | 'targetTherapistId'
  | 'acceptedTherapistId'
  | 'acceptedAt'
  | 'holdSince'
  | 'holdAdverseEventId'
>;

export interface ReferralDomainEvent {
  type: ReferralEventType;
  referral: ReferralFacts;
  /** The record the event is about, when it is not the referral itself. */
  resource?: { type: 'progress_report' | 'message' | 'report' | 'renewal_request' | 'document' | 'appointment' | 'adverse_event'; id: string; url: string };
  /** Told to the prescribing office alone (an escalation is the office's to act on), not to every participant. */
  audience?: 'office';
}

/** News for one organization about one of its records (e.g. a therapist's license about to expire). */
export interface OrganizationDomainEvent {
  type: OrganizationEventType;
  organizationId: string;
  resource: { type: 'user'; id: string; url: string };
  /** Facts a receiver acts on without a call back; never clinical text. */
  facts: Record<string, string>;
}

/** News for every subscriber of the network, e.g. a signed checkpoint of the audit log: public facts only. */
export interface NetworkDomainEvent {
  type: NetworkEventType;
  resource: { type: 'audit_checkpoint'; id: string; url: string };
  facts: Record<string, string | number>;
}

export type DomainEvent = ReferralDomainEvent | OrganizationDomainEvent | NetworkDomainEvent;

export const isReferralEvent = (event: DomainEvent): event is ReferralDomainEvent => 'referral' in event;
export const isNetworkEvent = (event: DomainEvent): event is NetworkDomainEvent => !('referral' in event) && !('organizationId' in event);

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
