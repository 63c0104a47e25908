// An endpoint's health, kept from its deliveries' attempts: a success clears the failure clock; a
// failure starts it, and disables the endpoint once the retry policy says so, telling its owners.
import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { webhookEndpoints } from '../../db/schema.js';
import type { FinishedDelivery } from './delivery-queue.js';
import type { WebhookOutbox } from './outbox.js';
import { disableReason } from './retry-policy.js';

export class EndpointHealth {
  constructor(
    private readonly disableAfterSeconds: number,
    private readonly outbox: WebhookOutbox,
  ) {}

  /** Keeps the health of the endpoints of deliveries that finished together; those given up unsent made no attempt and count for nothing. */
  async record({ finished }: { finished: FinishedDelivery[] }, tx: Executor): Promise<void> {
    const attempts = finished.filter(({ result }) => result);
    const succeededAt = new Set(attempts.filter(({ verdict }) => verdict.status === 'succeeded').map(({ delivery }) => delivery.endpointId));
    for (const endpointId of succeededAt) await this.succeeded(endpointId, tx);
    for (const { delivery, verdict } of attempts.filter(({ verdict }) => verdict.status !== 'succeeded')) {
      await this.failed(delivery.endpointId, verdict.disableEndpoint, tx);
    }
  }

  private async succeeded(endpointId: string, tx: Executor): Promise<void> {
    // At most once a second per endpoint: a busy endpoint's deliveries must not queue on its row.
    await tx
      .update(webhookEndpoints)
      .set({ lastSuccessAt: sql`now()`, failingSince: null })
      .where(
        and(
          eq(webhookEndpoints.id, endpointId),
          sql`(${webhookEndpoints.failingSince} is not null or ${webhookEndpoints.lastSuccessAt} is null or ${webhookEndpoints.lastSuccessAt} < now() - interval '1 second')`,
        ),
      );
  }

  private async failed(endpointId: string, disableNow: string | undefined, tx: Executor): Promise<void> {
    const [endpoint] = await tx
      .update(webhookEndpoints)
      .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
      .where(eq(webhookEndpoints.id, endpointId))
      .returning();
    if (!endpoint || endpoint.status !== 'active') return;
    const reason = disableReason({ failingSince: endpoint.failingSince!, now: Date.now(), disableAfterSeconds: this.disableAfterSeconds, disableNow });
    if (!reason) return;
    await tx
      .update(webhookEndpoints)
      .set({ status: 'disabled', disabledReason: reason, updatedAt: new Date() })
      .where(and(eq(webhookEndpoints.id, endpointId), eq(webhookEndpoints.status, 'active')));
    // Its owners hear of it on their other endpoints (this one no longer receives anything).
    await this.outbox.insert(
      {
        type: 'webhook_endpoint.disabled',
        referralId: null,
        data: { resource: 'webhook_endpoint', id: endpointId, status: 'disabled', reason, organizations: [endpoint.organizationId], url: `/v1/webhook-endpoints/${endpointId}` },
        organizations: [endpoint.organizationId],
      },
      tx,
    );
  }
}
