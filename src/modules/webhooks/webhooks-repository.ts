// SQL for webhook endpoints and their deliveries.
import { randomBytes } from 'node:crypto';
import { and, asc, desc, eq, gte, inArray, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import { deliveryChannel } from './outbox.js';
import type { WebhookDelivery, WebhookEndpoint } from './schemas.js';

type EndpointRow = typeof webhookEndpoints.$inferSelect;
interface SecretColumns {
  secret: string;
  previousSecret: string | null;
}

export const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

export function toWebhookEndpoint(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    organizationId: row.organizationId,
    url: row.url,
    description: row.description,
    eventTypes: row.eventTypes as WebhookEndpoint['eventTypes'],
    format: row.format,
    status: row.status,
    disabledReason: row.disabledReason,
    failingSince: row.failingSince?.toISOString() ?? null,
    lastSuccessAt: row.lastSuccessAt?.toISOString() ?? null,
    previousSecretExpiresAt: row.previousSecretExpiresAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export class WebhooksRepository {
  constructor(private readonly db: Executor) {}

  async create(values: typeof webhookEndpoints.$inferInsert, executor: Executor = this.db): Promise<EndpointRow> {
    const [row] = await executor.insert(webhookEndpoints).values(values).returning();
    return row!;
  }

  async find(id: string, executor: Executor = this.db): Promise<EndpointRow | undefined> {
    const [row] = await executor
      .select()
      .from(webhookEndpoints)
      .where(and(eq(webhookEndpoints.id, id), isNull(webhookEndpoints.deletedAt)));
    return row;
  }

  async list({ organizationId, after, limit }: { organizationId?: string | undefined; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ endpoint: webhookEndpoints, cursorTime: epochMicros(webhookEndpoints.createdAt) })
      .from(webhookEndpoints)
      .where(
        and(
          isNull(webhookEndpoints.deletedAt),
          organizationId ? eq(webhookEndpoints.organizationId, organizationId) : undefined,
          after ? afterKey(webhookEndpoints.createdAt, webhookEndpoints.id, after) : undefined,
        ),
      )
      .orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id))
      .limit(limit + 1);
  }

  async update(id: string, changes: Partial<EndpointRow>, executor: Executor = this.db): Promise<EndpointRow> {
    const [row] = await executor
      .update(webhookEndpoints)
      .set({ ...changes, updatedAt: new Date() })
      .where(eq(webhookEndpoints.id, id))
      .returning();
    return row!;
  }

  /** Endpoints, deleted ones too, holding a secret that is not sealed under this key: in clear, or under an older key. */
  async secretsNotSealedUnder(keyId: string): Promise<Pick<EndpointRow, 'id' | 'secret' | 'previousSecret'>[]> {
    const prefix = `v1.${keyId}.`;
    // left(), not LIKE: a key id may hold '_', which LIKE reads as a wildcard.
    const notUnderKey = (column: typeof webhookEndpoints.secret | typeof webhookEndpoints.previousSecret) => sql`left(${column}, ${prefix.length}) <> ${prefix}`;
    return this.db
      .select({ id: webhookEndpoints.id, secret: webhookEndpoints.secret, previousSecret: webhookEndpoints.previousSecret })
      .from(webhookEndpoints)
      .where(or(notUnderKey(webhookEndpoints.secret), and(isNotNull(webhookEndpoints.previousSecret), notUnderKey(webhookEndpoints.previousSecret))));
  }

  /** Replaces an endpoint's stored secrets if it still holds `from`; false when another process changed them first. */
  async replaceSecrets({ id, from, to }: { id: string; from: SecretColumns; to: SecretColumns }): Promise<boolean> {
    const rows = await this.db
      .update(webhookEndpoints)
      .set({ secret: to.secret, previousSecret: to.previousSecret })
      .where(
        and(
          eq(webhookEndpoints.id, id),
          eq(webhookEndpoints.secret, from.secret),
          from.previousSecret === null ? isNull(webhookEndpoints.previousSecret) : eq(webhookEndpoints.previousSecret, from.previousSecret),
        ),
      )
      .returning({ id: webhookEndpoints.id });
    return rows.length === 1;
  }

  async deliveries({ endpointId, status, afterSeq, limit }: { endpointId: string; status?: string | undefined; afterSeq?: number | undefined; limit: number }) {
    const rows = await this.db
      .select({ delivery: webhookDeliveries, eventType: webhookEvents.type })
      .from(webhookDeliveries)
      .innerJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
      .where(
        and(
          eq(webhookDeliveries.endpointId, endpointId),
          status ? eq(webhookDeliveries.status, status as 'pending') : undefined,
          afterSeq === undefined ? undefined : lt(webhookDeliveries.seq, afterSeq),
        ),
      )
      .orderBy(desc(webhookDeliveries.seq))
      .limit(limit + 1);
    const attempts = rows.length
      ? await this.db
          .select()
          .from(webhookAttempts)
          .where(inArray(webhookAttempts.deliveryId, rows.map((row) => row.delivery.id)))
          .orderBy(asc(webhookAttempts.id))
      : [];
    return rows.map(({ delivery, eventType }) => ({ delivery, eventType, attempts: attempts.filter((attempt) => attempt.deliveryId === delivery.id) }));
  }

  async findDelivery(id: string) {
    const [row] = await this.db
      .select({ delivery: webhookDeliveries, endpoint: webhookEndpoints })
      .from(webhookDeliveries)
      .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
      .where(and(eq(webhookDeliveries.id, id), isNull(webhookEndpoints.deletedAt)));
    return row;
  }

  /** New deliveries of the same events to the same endpoint: the old ones stay as they were, for the record. */
  async requeue(deliveries: { eventId: string; endpointId: string; referralId: string | null }[], executor: Executor): Promise<string[]> {
    if (deliveries.length === 0) return [];
    const rows = await executor.insert(webhookDeliveries).values(deliveries).returning({ id: webhookDeliveries.id });
    await executor.execute(sql`select pg_notify(${deliveryChannel}, '')`);
    return rows.map((row) => row.id);
  }

  /** Deliveries pending or being sent (metrics). */
  async unfinishedDeliveries(): Promise<number> {
    const [row] = rowsOf<{ count: number }>(
      await this.db.execute(sql`select count(*)::int as count from webhook_deliveries where status in ('pending', 'delivering')`),
    );
    return row?.count ?? 0;
  }

  /** How long the oldest due delivery has waited past its time, in seconds (metrics). */
  async oldestDueWaitSeconds(): Promise<number> {
    const [row] = rowsOf<{ seconds: number | null }>(
      await this.db.execute(sql`select extract(epoch from now() - min(next_attempt_at))::float8 as seconds
        from webhook_deliveries where status = 'pending' and next_attempt_at <= now()`),
    );
    return Math.max(0, row?.seconds ?? 0);
  }

  async deadBetween({ endpointId, from, to }: { endpointId: string; from: Date; to?: Date | undefined }) {
    return this.db
      .select({ eventId: webhookDeliveries.eventId, endpointId: webhookDeliveries.endpointId, referralId: webhookDeliveries.referralId })
      .from(webhookDeliveries)
      .where(
        and(
          eq(webhookDeliveries.endpointId, endpointId),
          eq(webhookDeliveries.status, 'dead'),
          gte(webhookDeliveries.createdAt, from),
          to ? lt(webhookDeliveries.createdAt, to) : undefined,
        ),
      )
      .orderBy(asc(webhookDeliveries.seq));
  }
}

export function toWebhookDelivery({ delivery, eventType, attempts }: Awaited<ReturnType<WebhooksRepository['deliveries']>>[number]): WebhookDelivery {
  return {
    id: delivery.id,
    endpointId: delivery.endpointId,
    eventId: delivery.eventId,
    eventType,
    referralId: delivery.referralId,
    status: delivery.status,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.nextAttemptAt.toISOString(),
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    createdAt: delivery.createdAt.toISOString(),
    attemptLog: attempts.map((attempt) => ({
      attemptedAt: attempt.attemptedAt.toISOString(),
      statusCode: attempt.statusCode,
      latencyMs: attempt.latencyMs,
      error: attempt.error,
      responseExcerpt: attempt.responseExcerpt,
    })),
  };
}
