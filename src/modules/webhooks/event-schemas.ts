// What a webhook event carries (SPEC §8): the thin {type, timestamp, data} payload, one shape of data
// per kind of event. The same shapes describe the events feed's items and the document's webhooks
// section, and tests hold every delivery and feed answer to them.
import { Type, type TSchema } from 'typebox';
import { component } from '../../lib/components.js';
import { IsoDate, Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, ReferralStatus, referralEventTypes, type WebhookEventType } from '../../lib/vocabulary.js';

interface FeedItem {
  id: string;
  type: Exclude<WebhookEventType, 'ping'>;
  timestamp: string;
  data: Record<string, unknown>;
}

// Single values are one-member enums, not const: the document writes every const as an enum, and a
// named schema must read the same in the webhooks section as where a route uses it.

/** The records a referral's events may be about (lib/domain-events.ts ReferralDomainEvent). */
export const referralEventResources = ['referral', 'progress_report', 'message', 'report', 'renewal_request', 'document', 'appointment', 'adverse_event'] as const;

const Organizations = Type.Array(Uuid, { description: 'The organizations the event is told to: the office and the practice side taking part (the office alone for an escalation)' });
const ResourceUrl = Type.String({ description: 'Where to read the record through the API, where access is checked and audited' });

export const ReferralEventData = component(
  'ReferralEventData',
  Type.Object(
    {
      resource: enumOf(referralEventResources, { description: 'What the event is about: the referral, or a record of it' }),
      id: Uuid,
      referralId: Uuid,
      status: { ...ReferralStatus, description: "The referral's status once the change committed" },
      organizations: Organizations,
      url: ResourceUrl,
    },
    { additionalProperties: false },
  ),
);

export const LicenseExpiringData = component(
  'LicenseExpiringData',
  Type.Object(
    { resource: enumOf(['user']), id: Uuid, licenseExpiresOn: IsoDate, organizations: Organizations, url: ResourceUrl },
    { additionalProperties: false },
  ),
);

export const WebhookEndpointDisabledData = component(
  'WebhookEndpointDisabledData',
  Type.Object(
    {
      resource: enumOf(['webhook_endpoint']),
      id: Uuid,
      status: enumOf(['disabled']),
      reason: Type.String({ description: 'Why, e.g. the receiver answered 410 Gone' }),
      organizations: Organizations,
      url: ResourceUrl,
    },
    { additionalProperties: false },
  ),
);

export const PingData = component(
  'PingData',
  Type.Object({ resource: enumOf(['webhook_endpoint']), id: Uuid, organizations: Organizations, url: ResourceUrl }, { additionalProperties: false }),
);

export const AuditCheckpointData = component(
  'AuditCheckpointData',
  Type.Object(
    {
      resource: enumOf(['audit_checkpoint']),
      id: Type.String({ description: 'The tree size, as the checkpoint is named' }),
      origin: Type.String(),
      treeSize: Type.Integer({ minimum: 0 }),
      rootHash: Type.String({ description: 'Base64 SHA-256 Merkle root (RFC 9162)' }),
      keyId: Type.String(),
      signature: Type.String({ description: 'Base64 Ed25519 signature' }),
      note: Type.String({ description: 'The signed note (C2SP signed-note format), to keep and verify offline' }),
      url: ResourceUrl,
    },
    { additionalProperties: false },
  ),
);

/** One kind of event: its types and the shape of its data. */
const envelope = <Data extends TSchema>(types: readonly [string, ...string[]], data: Data) => ({
  type: enumOf(types),
  timestamp: Timestamp,
  data,
});

const eventKinds = {
  ReferralWebhookEvent: envelope(referralEventTypes, ReferralEventData),
  LicenseExpiringEvent: envelope(['license.expiring'], LicenseExpiringData),
  WebhookEndpointDisabledEvent: envelope(['webhook_endpoint.disabled'], WebhookEndpointDisabledData),
  PingEvent: envelope(['ping'], PingData),
  AuditCheckpointEvent: envelope(['audit.checkpoint'], AuditCheckpointData),
};
export type WebhookEventKind = keyof typeof eventKinds;

/** The payload a receiver verifies, by kind (the webhooks section refers to them). */
export const webhookEventSchemas = Object.fromEntries(
  Object.entries(eventKinds).map(([name, properties]) => [name, component(name, Type.Object(properties, { additionalProperties: false }))]),
) as unknown as Record<WebhookEventKind, TSchema>;

/** The events feed's items: the same events with the id the feed and webhook-id give them, of the kinds the feed carries. */
const feedKinds: Record<string, WebhookEventKind> = {
  ReferralFeedEvent: 'ReferralWebhookEvent',
  LicenseExpiringFeedEvent: 'LicenseExpiringEvent',
  WebhookEndpointDisabledFeedEvent: 'WebhookEndpointDisabledEvent',
};
export const FeedEvent = component(
  'FeedEvent',
  // Typed as the feed's rows are read (data as stored); the schema is what serializes and documents them.
  Type.Unsafe<FeedItem>(
    Type.Union(Object.entries(feedKinds).map(([name, kind]) => component(name, Type.Object({ id: Uuid, ...eventKinds[kind] }, { additionalProperties: false })))),
  ),
);
