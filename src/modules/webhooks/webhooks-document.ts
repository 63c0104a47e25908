// The OpenAPI 3.1 webhooks section: one entry per event type, what the receiver gets (the Standard
// Webhooks headers and the payload, or for a FHIR endpoint the Bundle) and how its answer is taken.
// Written from the event catalog, so a type cannot be delivered without being described.
import { eventCatalog } from './event-catalog.js';
import { webhookEventSchemas } from './event-schemas.js';

type Json = Record<string, unknown>;

/** The FHIR module's Bundle; an endpoint of format fhir gets it for the referral's events (the Task and its ServiceRequest). */
const fhirBundle = { $ref: '#/components/schemas/FhirBundle' };

const headerParameters = {
  WebhookId: {
    in: 'header',
    name: 'webhook-id',
    required: true,
    description: 'The event id, the same on every retry and in the events feed: drop a delivery whose id you have seen',
    schema: { type: 'string', format: 'uuid' },
  },
  WebhookTimestamp: {
    in: 'header',
    name: 'webhook-timestamp',
    required: true,
    description: 'When this attempt was signed, in seconds since the epoch; refuse one too far from your clock (standardwebhooks allows 5 minutes)',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  WebhookSignature: {
    in: 'header',
    name: 'webhook-signature',
    required: true,
    description: 'v1,<base64 HMAC-SHA256 of "id.timestamp.body"> with the endpoint secret; two, space-separated, for 24 hours after a rotation',
    schema: { type: 'string', pattern: '^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$' },
  },
};

/** webhook.sent → onWebhookSent; progress_report.created → onProgressReportCreated. */
const operationIdOf = (type: string) => `on${type.split(/[._]/).map((word) => word[0]!.toUpperCase() + word.slice(1)).join('')}`;

const responses = {
  '2XX': { description: 'Received: any 2xx within WEBHOOK_TIMEOUT_MS. The body is not read beyond 4 KB' },
  '410': { description: 'Gone: the endpoint is disabled at once and nothing more is sent to it' },
  '429': { description: 'Retried, no sooner than Retry-After', headers: { 'retry-after': { $ref: '#/components/headers/RetryAfter' } } },
  '503': { description: 'Retried, no sooner than Retry-After', headers: { 'retry-after': { $ref: '#/components/headers/RetryAfter' } } },
  default: {
    description: 'Any other answer, a redirect (never followed), or none in time: retried on WEBHOOK_RETRY_SCHEDULE, then the delivery is dead; ' +
      'WEBHOOK_DISABLE_AFTER_SECONDS of failures without a success disables the endpoint',
  },
};

export function webhooksDocument(): { webhooks: Record<string, Json>; parameters: Record<string, Json> } {
  const webhooks = Object.fromEntries(
    Object.entries(eventCatalog).map(([type, entry]) => [
      type,
      {
        post: {
          operationId: operationIdOf(type),
          summary: entry.when,
          description:
            `${type}, to ${entry.audience}; data.resource is ${entry.resource}. Thin: it names the record and who takes part, never clinical text; ` +
            'read the record at data.url. Sent at least once, in order per referral and endpoint: drop duplicates by webhook-id.',
          tags: ['webhook events'],
          'x-audience': entry.audience,
          'x-data-resource': entry.resource,
          security: [],
          parameters: Object.keys(headerParameters).map((name) => ({ $ref: `#/components/parameters/${name}` })),
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: webhookEventSchemas[entry.kind] },
              ...(entry.kind === 'ReferralWebhookEvent' ? { 'application/fhir+json': { schema: fhirBundle } } : {}),
            },
          },
          responses,
        },
      },
    ]),
  );
  return { webhooks, parameters: headerParameters };
}
