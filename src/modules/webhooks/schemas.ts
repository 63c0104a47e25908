// Shapes of webhook endpoints, deliveries and their attempts (SPEC §8).
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { deliveryStatuses, enumOf, webhookEndpointStatuses, webhookEventTypes, webhookFormats, type WebhookEventType } from '../../lib/vocabulary.js';

export const subscribableEventTypes = webhookEventTypes.filter((type): type is Exclude<WebhookEventType, 'ping'> => type !== 'ping');
const EventType = enumOf(subscribableEventTypes);
const formatDescription =
  "standard: the thin {type, timestamp, data} JSON payload (application/json). fhir: a FHIR R4 Bundle of type collection (application/fhir+json) holding the referral's Task, signed the same way. A change applies to events written after it.";
const Format = enumOf(webhookFormats, { description: formatDescription });

export const CreateWebhookEndpoint = component('CreateWebhookEndpoint', Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2000, description: 'https URL of the receiver' }),
    eventTypes: Type.Array(EventType, { minItems: 1, uniqueItems: true }),
    format: Type.Optional(enumOf(webhookFormats, { description: `${formatDescription} Default: standard.` })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    organizationId: Type.Optional(Type.String({ format: 'uuid', description: 'Network admins name the organization; others register for their own' })),
  },
  {
    additionalProperties: false,
  },
));
export type CreateWebhookEndpoint = Static<typeof CreateWebhookEndpoint>;

export const UpdateWebhookEndpoint = component('UpdateWebhookEndpoint', Type.Object(
  {
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    eventTypes: Type.Optional(Type.Array(EventType, { minItems: 1, uniqueItems: true })),
    format: Type.Optional(Format),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    status: Type.Optional(enumOf(webhookEndpointStatuses, { description: 'Set active to re-enable a disabled endpoint' })),
  },
  { additionalProperties: false, minProperties: 1 },
));
export type UpdateWebhookEndpoint = Static<typeof UpdateWebhookEndpoint>;

export const WebhookEndpoint = component('WebhookEndpoint', Type.Object({
  id: Uuid,
  organizationId: Uuid,
  url: Type.String(),
  description: Type.String(),
  eventTypes: Type.Array(EventType),
  format: Format,
  status: enumOf(webhookEndpointStatuses),
  disabledReason: Type.Union([Type.String(), Type.Null()]),
  failingSince: Type.Union([Timestamp, Type.Null()]),
  lastSuccessAt: Type.Union([Timestamp, Type.Null()]),
  previousSecretExpiresAt: Type.Union([Timestamp, Type.Null()], { description: 'While set and in the future, the old secret signs too' }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}));
export type WebhookEndpoint = Static<typeof WebhookEndpoint>;

export const WebhookEndpointWithSecret = component('WebhookEndpointWithSecret', Type.Intersect([
  WebhookEndpoint,
  Type.Object({
    secret: Type.Optional(
      Type.String({ description: 'whsec_… signing secret, shown only in the answer that makes it; absent from a replay of that answer (same Idempotency-Key)' }),
    ),
  }),
]));

export const WebhookEndpointListQuery = Type.Object(
  { organizationId: Type.Optional(Type.String({ format: 'uuid' })), ...PageQuery },
  { additionalProperties: false },
);

export const WebhookAttempt = component('WebhookAttempt', Type.Object({
  attemptedAt: Timestamp,
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  latencyMs: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  responseExcerpt: Type.Union([Type.String(), Type.Null()]),
}));

export const WebhookDelivery = component('WebhookDelivery', Type.Object({
  id: Uuid,
  endpointId: Uuid,
  eventId: Uuid,
  eventType: Type.String(),
  referralId: Type.Union([Uuid, Type.Null()]),
  status: enumOf(deliveryStatuses),
  attempts: Type.Integer(),
  nextAttemptAt: Timestamp,
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  attemptLog: Type.Array(WebhookAttempt),
}));
export type WebhookDelivery = Static<typeof WebhookDelivery>;

export const DeliveryListQuery = Type.Object(
  { status: Type.Optional(enumOf(deliveryStatuses)), ...PageQuery },
  { additionalProperties: false },
);

export const RecoverDeliveries = component('RecoverWebhookDeliveries', Type.Object(
  { from: Timestamp, to: Type.Optional(Timestamp) },
  { additionalProperties: false, description: 'Sends again every dead delivery of the endpoint created in [from, to)' },
));

export const Queued = component('QueuedDeliveries', Type.Object({ queued: Type.Integer(), deliveryIds: Type.Array(Uuid) }));
