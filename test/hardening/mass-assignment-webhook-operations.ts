// The mass-assignment test's webhook cases (mass-assignment.test.ts): registering, changing and
// rotating an endpoint, pinging it, and resending or recovering its deliveries.
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { webhookDeliveries, webhookEndpoints } from '../../src/db/schema.js';
import type { Json } from '../helper.js';
import type { Op } from './mass-assignment-operations.js';
import { byId, type MassAssignmentWorld } from './mass-assignment-world.js';

export function webhookOperations(world: MassAssignmentWorld): Op[] {
  const { test, db, planted, mark, office, post, getJson, hookBody, foreign, deliveryRows } = world;
  return [

    {
      method: 'POST',
      path: '/v1/webhook-endpoints',
      creates: true,
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'organizationId', value: foreign.org, legit: true, statuses: [404] },
        { field: 'secret', value: 'whsec_YXR0YWNrZXItY2hvc2VuLXNlY3JldA==' },
        { field: 'status', value: 'disabled' },
        { field: 'disabledReason', value: 'planted' },
        { field: 'previousSecret', value: 'whsec_cHJldmlvdXMtYXR0YWNrZXI=' },
        { field: 'previousSecretExpiresAt', value: planted },
        { field: 'failingSince', value: planted },
        { field: 'lastSuccessAt', value: planted },
        { field: 'createdBy', value: foreign.user },
        { field: 'createdAt', value: planted },
        { field: 'updatedAt', value: planted },
        { field: 'deletedAt', value: planted },
      ],
      async setup() {
        return {
          url: '/v1/webhook-endpoints',
          token: office.admin.token,
          valid: () => hookBody(mark('hook')),
          rows: async () => byId('webhook_endpoints')(await db.select().from(webhookEndpoints)),
          async api(response, injected) {
            const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
            return (await Promise.all(ids.map((id) => getJson(`/v1/webhook-endpoints/${id}`, office.admin.token)))).filter((row): row is Json => row !== undefined);
          },
        };
      },
    },
    ...(['PATCH', 'POST'] as const).map(
      (method): Op => ({
        method,
        path: method === 'PATCH' ? '/v1/webhook-endpoints/{id}' : '/v1/webhook-endpoints/{id}/rotate-secret',
        owned: [
          { field: 'id', value: randomUUID() },
          { field: 'organizationId', value: foreign.org },
          { field: 'secret', value: 'whsec_YXR0YWNrZXItY2hvc2VuLXNlY3JldA==' },
          { field: 'previousSecret', value: 'whsec_cHJldmlvdXMtYXR0YWNrZXI=' },
          { field: 'previousSecretExpiresAt', value: planted },
          { field: 'disabledReason', value: 'planted' },
          { field: 'failingSince', value: planted },
          { field: 'lastSuccessAt', value: planted },
          { field: 'createdBy', value: foreign.user },
          { field: 'createdAt', value: planted },
          { field: 'updatedAt', value: planted },
          { field: 'deletedAt', value: planted },
          // Status is the caller's to set on PATCH (active/disabled); rotating must not change it.
          ...(method === 'POST' ? [{ field: 'status', value: 'disabled' }] : []),
        ],
        async setup() {
          const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, hookBody(mark('hook')));
          return {
            url: method === 'PATCH' ? `/v1/webhook-endpoints/${endpoint.id}` : `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`,
            token: office.admin.token,
            valid: () => (method === 'PATCH' ? { description: mark('described') } : undefined),
            rows: async () => byId('webhook_endpoints')(await db.select().from(webhookEndpoints)),
            async api(response) {
              const shown = await getJson(`/v1/webhook-endpoints/${endpoint.id}`, office.admin.token);
              // The rotated secret is shown once, in the answer.
              return [...(shown ? [shown] : []), ...(response.statusCode === 200 && response.json().secret ? [{ secret: response.json().secret }] : [])];
            },
          };
        },
      }),
    ),
    ...(['test', 'resend', 'recover'] as const).map(
      (action): Op => ({
        method: 'POST',
        path: action === 'resend' ? '/v1/webhook-deliveries/{id}/resend' : `/v1/webhook-endpoints/{id}/${action}`,
        owned: [
          { field: 'id', value: randomUUID() },
          { field: 'eventId', value: foreign.event },
          { field: 'endpointId', value: foreign.endpoint },
          { field: 'type', value: 'referral.accepted' },
          { field: 'referralId', value: foreign.referral },
          { field: 'status', value: 'succeeded' },
          { field: 'attempts', value: 99 },
          { field: 'nextAttemptAt', value: planted },
          { field: 'leaseExpiresAt', value: planted },
          { field: 'occurredAt', value: planted },
          { field: 'createdAt', value: planted },
        ],
        async setup() {
          const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, hookBody(mark('hook')));
          const { eventId } = await post(`/v1/webhook-endpoints/${endpoint.id}/test`, office.admin.token, undefined, 202);
          const [delivery] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId));
          // Recovery only picks up dead deliveries.
          if (action === 'recover') await db.update(webhookDeliveries).set({ status: 'dead' }).where(eq(webhookDeliveries.id, delivery!.id));
          const url =
            action === 'resend' ? `/v1/webhook-deliveries/${delivery!.id}/resend` : `/v1/webhook-endpoints/${endpoint.id}/${action}`;
          return {
            url,
            token: office.admin.token,
            valid: () => (action === 'recover' ? { from: '2000-01-01T00:00:00Z' } : undefined),
            rows: deliveryRows,
            async api() {
              const listed = (await getJson(`/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=200`, office.admin.token))?.data ?? [];
              return listed.map((delivery: Json) => ({ ...delivery, type: delivery.eventType }));
            },
          };
        },
      }),
    ),
  ];
}
