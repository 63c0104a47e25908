// The formats a webhook endpoint may receive its events in besides the standard payload (SPEC §8).
// Another module renders a format and registers it here (the FHIR module: `fhir`), so the webhooks
// module knows nothing of that format's internals and that module nothing of the outbox.
import type { ReferralFacts } from '../../lib/domain-events.js';
import type { WebhookEventType, WebhookFormat } from '../../lib/vocabulary.js';

/** What a format may render an event from: the standard payload's facts, and the referral's when the event is about one. */
export interface WebhookEventFacts {
  /** The webhook event's id, as in the webhook-id header. */
  id: string;
  type: WebhookEventType;
  /** The standard payload's timestamp (whole seconds, UTC). */
  timestamp: string;
  /** The record the event names (as the standard payload's data.resource, id and url). */
  resource: { type: string; id: string; url: string };
  referral: ReferralFacts | null;
  /** The organizations whose endpoints it goes to; empty for an event to every subscriber of the network. */
  organizations: readonly string[];
}

/** Renders an event as the body of a delivery; what it returns is serialized once and sent as is on every attempt. */
export type WebhookRenderer = (event: WebhookEventFacts) => unknown;

/** Content types of the bodies, by the endpoint's format. */
export const contentTypes: Record<WebhookFormat, string> = {
  standard: 'application/json',
  fhir: 'application/fhir+json',
};

export class WebhookFormats {
  private readonly renderers = new Map<Exclude<WebhookFormat, 'standard'>, WebhookRenderer>();

  register(format: Exclude<WebhookFormat, 'standard'>, render: WebhookRenderer): void {
    if (this.renderers.has(format)) throw new Error(`webhook format ${format} is registered twice`);
    this.renderers.set(format, render);
  }

  rendererOf(format: Exclude<WebhookFormat, 'standard'>): WebhookRenderer | undefined {
    return this.renderers.get(format);
  }
}
