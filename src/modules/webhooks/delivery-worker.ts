// Delivers the outbox: claims due deliveries with SKIP LOCKED and a lease (a crashed worker's
// claims come back when the lease runs out), signs them per the Standard Webhooks spec, and
// records each attempt with its audit event. Several workers can run side by side.
import type { FastifyBaseLogger } from 'fastify';
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import type { Config } from '../../config.js';
import type { Database, DatabaseHandle, Executor } from '../../db/database.js';
import { organizations, webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import { systemAuditContext, type AuditLog } from '../audit/audit-log.js';
import { clientActingRole, type Principal } from '../auth/policy.js';
import { ReferralsRepository } from '../referrals/referrals-repository.js';
import { deliveryChannel, WebhookOutbox } from './outbox.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { sendWebhook, type SendResult } from './sender.js';
import type { SecretBox } from '../../lib/secret-box.js';
import { openSigningSecret } from './signing-secrets.js';
import { guardedLookup, systemResolver, type Resolver } from './target-guard.js';

type DeliveryRow = typeof webhookDeliveries.$inferSelect;
interface Outcome {
  status: 'succeeded' | 'pending' | 'dead';
  error: string | null;
  result: SendResult | undefined;
  nextAttemptAt?: Date;
  disableEndpoint?: string;
}
interface Finished {
  delivery: DeliveryRow;
  outcome: Outcome;
}
interface Claimed {
  delivery: DeliveryRow;
  event: typeof webhookEvents.$inferSelect | null;
  endpoint: typeof webhookEndpoints.$inferSelect | null;
  organizationKind: (typeof organizations.$inferSelect)['kind'] | null;
}

export interface DeliveryWorkerOptions {
  config: Config['webhooks'];
  /** Tests: answers DNS instead of the system resolver. */
  resolver?: Resolver | undefined;
  log: FastifyBaseLogger;
  /** Opens the stored (sealed) signing secrets. */
  secretBox: SecretBox;
}

const maxResponseBytes = 4096;
const maxRetryAfterSeconds = 24 * 3600;

/** Seconds to wait before the next try: the schedule's step with ±10% jitter, or the receiver's Retry-After. */
export function nextDelaySeconds(schedule: number[], attemptsMade: number, retryAfter: number | undefined): number | undefined {
  if (attemptsMade >= schedule.length) return undefined;
  const step = schedule[attemptsMade]!;
  const jittered = step * (0.9 + Math.random() * 0.2);
  return retryAfter !== undefined ? Math.min(Math.max(retryAfter, jittered), maxRetryAfterSeconds) : jittered;
}

/** Retry-After as seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

export class DeliveryWorker {
  private readonly outbox = new WebhookOutbox();
  private readonly referrals: ReferralsRepository;
  private readonly lookup;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private readonly finishes = new GroupCommit<Finished>((finished) => this.finishAll(finished));

  constructor(
    private readonly db: Database,
    private readonly database: DatabaseHandle,
    private readonly auditLog: AuditLog,
    private readonly options: DeliveryWorkerOptions,
  ) {
    this.referrals = new ReferralsRepository(db);
    this.lookup = guardedLookup(options.resolver ?? systemResolver, options.config.allowPrivateTargets);
  }

  async start(): Promise<void> {
    this.running = true;
    // NOTIFY from a committing change wakes the loop at once; the poll is the fallback.
    this.unlisten = await this.database.listen(deliveryChannel, () => this.wake?.());
    this.loopDone = this.loop();
  }

  /** Stops claiming, lets the deliveries in flight finish (each ends within the timeout), then returns. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loopDone;
    await this.unlisten?.().catch(() => {});
  }

  /**
   * Keeps up to `concurrency` deliveries in flight: claims more whenever a quarter of the slots
   * have come free (or all of them), so one slow receiver never holds up the rest.
   */
  private async loop(): Promise<void> {
    const { concurrency, pollMs } = this.options.config;
    const refillAt = Math.max(1, Math.ceil(concurrency / 4));
    const inFlight = new Set<Promise<void>>();
    while (this.running) {
      const free = concurrency - inFlight.size;
      let claimed: Claimed[] = [];
      if (free >= refillAt || inFlight.size === 0) {
        try {
          claimed = await this.claim(free);
        } catch (error) {
          this.options.log.error({ err: error }, 'claiming webhook deliveries failed');
        }
        for (const delivery of claimed) {
          const attempt: Promise<void> = this.deliver(delivery)
            .catch((error: unknown) => this.options.log.error({ err: error }, 'webhook delivery failed'))
            .finally(() => {
              inFlight.delete(attempt);
              this.wake?.();
            });
          inFlight.add(attempt);
        }
      }
      if (claimed.length === 0 && this.running) {
        // A finished delivery, a NOTIFY or the poll, whichever comes first.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
    await Promise.all(inFlight);
  }

  /** Claims up to `concurrency` due deliveries and sends them; returns how many it claimed. */
  async runOnce(): Promise<number> {
    const claimed = await this.claim(this.options.config.concurrency);
    await Promise.all(claimed.map((delivery) => this.deliver(delivery)));
    return claimed.length;
  }

  /**
   * Due deliveries, or deliveries whose worker's lease ran out, with their event and endpoint. A
   * delivery waits while an earlier one of the same referral to the same endpoint is unfinished,
   * so partners get them in order. Expired leases first (rare), then due ones off their index.
   */
  private async claim(limit: number): Promise<Claimed[]> {
    if (limit <= 0) return [];
    const expired = await this.claimWhere(sql`c.status = 'delivering' and c.lease_expires_at < now()`, sql`c.lease_expires_at`, limit);
    const due = expired.length < limit ? await this.claimWhere(sql`c.status = 'pending' and c.next_attempt_at <= now()`, sql`c.next_attempt_at, c.seq`, limit - expired.length) : [];
    const ids = [...expired, ...due];
    if (ids.length === 0) return [];
    const rows = await this.db
      .select({ delivery: webhookDeliveries, event: webhookEvents, endpoint: webhookEndpoints, organizationKind: organizations.kind })
      .from(webhookDeliveries)
      .leftJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
      .leftJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
      .leftJoin(organizations, eq(organizations.id, webhookEndpoints.organizationId))
      .where(inArray(webhookDeliveries.id, ids))
      .orderBy(webhookDeliveries.seq);
    return rows;
  }

  private async claimWhere(condition: SQL, order: SQL, limit: number): Promise<string[]> {
    const rows = await this.database.rows<{ id: string }>(sql`
      update webhook_deliveries d
      set status = 'delivering', lease_expires_at = now() + make_interval(secs => ${this.options.config.leaseSeconds}),
          attempts = d.attempts + 1, updated_at = now()
      where d.id in (
        select c.id from webhook_deliveries c
        where ${condition}
          and not exists (
            select 1 from webhook_deliveries e
            where e.endpoint_id = c.endpoint_id and e.referral_id = c.referral_id and e.seq < c.seq
              and e.status in ('pending', 'delivering'))
        order by ${order}
        limit ${limit}
        for update skip locked)
      returning d.id`);
    return rows.map((row) => row.id);
  }

  private async deliver({ delivery, event, endpoint, organizationKind }: Claimed): Promise<void> {
    if (!event || !endpoint || !organizationKind) {
      return this.finish(delivery, { status: 'dead', error: 'the event or its endpoint no longer exists', result: undefined });
    }
    if (endpoint.status !== 'active' || endpoint.deletedAt) {
      return this.finish(delivery, { status: 'dead', error: 'endpoint disabled or deleted', result: undefined });
    }
    // Access is checked when the attempt is made, not only when the event was written.
    if (event.referralId && event.type !== 'ping') {
      const organization: Principal = {
        kind: 'api_client',
        id: endpoint.id,
        organizationId: endpoint.organizationId,
        organizationKind,
        role: clientActingRole(organizationKind),
        scopes: [],
      };
      if (!(await this.referrals.findFor({ principal: organization, id: event.referralId }))) {
        return this.finish(delivery, { status: 'dead', error: 'the organization no longer takes part in this referral', result: undefined });
      }
    }

    const body = JSON.stringify(event.payload);
    const now = new Date();
    // Secrets are stored sealed; opened only here, to sign.
    const box = this.options.secretBox;
    const secrets = [openSigningSecret(box, endpoint.secret)];
    if (endpoint.previousSecret && endpoint.previousSecretExpiresAt && endpoint.previousSecretExpiresAt > now) secrets.push(openSigningSecret(box, endpoint.previousSecret));
    const signature = secrets.map((secret) => new Webhook(secret).sign(event.id, now, body)).join(' ');
    const result = await sendWebhook({
      url: endpoint.url,
      headers: {
        'webhook-id': event.id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body,
      timeoutMs: this.options.config.timeoutMs,
      maxResponseBytes,
      lookup: this.lookup,
    });

    if (result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300) {
      return this.finish(delivery, { status: 'succeeded', error: null, result });
    }
    if (result.statusCode === 410) {
      return this.finish(delivery, { status: 'dead', error: 'the receiver answered 410 Gone', result, disableEndpoint: 'the receiver answered 410 Gone' });
    }
    const retryAfter = result.statusCode === 429 || result.statusCode === 503 ? parseRetryAfter(result.headers['retry-after']) : undefined;
    const delay = nextDelaySeconds(this.options.config.retryScheduleSeconds, delivery.attempts, retryAfter);
    const error = result.error ?? `the receiver answered ${result.statusCode}`;
    if (delay === undefined) return this.finish(delivery, { status: 'dead', error, result });
    return this.finish(delivery, { status: 'pending', error, result, nextAttemptAt: new Date(Date.now() + delay * 1000) });
  }

  /** Records the attempt, moves the delivery on, and keeps the endpoint's health: durable when it resolves. */
  private finish(delivery: DeliveryRow, outcome: Outcome): Promise<void> {
    return this.finishes.add({ delivery, outcome });
  }

  /**
   * The outcomes of deliveries that finished together, in one transaction: their attempts, their
   * new state, the endpoints' health and the audit events in a handful of statements.
   */
  private async finishAll(finished: Finished[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const attempts = finished.filter(({ outcome }) => outcome.result);
      if (attempts.length > 0) {
        await tx.insert(webhookAttempts).values(
          attempts.map(({ delivery, outcome }) => ({
            deliveryId: delivery.id,
            statusCode: outcome.result!.statusCode,
            latencyMs: outcome.result!.latencyMs,
            error: outcome.result!.error ?? (outcome.status === 'succeeded' ? null : outcome.error),
            responseExcerpt: outcome.result!.excerpt.slice(0, maxResponseBytes) || null,
          })),
        );
      }
      const column = <V,>(value: (entry: Finished) => V) => sql.param(finished.map(value));
      // The claim count fences out a worker whose lease ran out and whose delivery another took.
      await tx.execute(sql`
        update ${webhookDeliveries} d
        set status = v.status, lease_expires_at = null, last_status_code = v.status_code, last_error = v.error,
            updated_at = now(), next_attempt_at = coalesce(v.next_attempt_at::timestamptz, d.next_attempt_at)
        from unnest(${column(({ delivery }) => delivery.id)}::uuid[], ${column(({ delivery }) => delivery.attempts)}::int[],
                    ${column(({ outcome }) => outcome.status)}::text[], ${column(({ outcome }) => outcome.result?.statusCode ?? null)}::int[],
                    ${column(({ outcome }) => outcome.error)}::text[], ${column(({ outcome }) => outcome.nextAttemptAt?.toISOString() ?? null)}::text[])
          as v(id, attempts, status, status_code, error, next_attempt_at)
        where d.id = v.id and d.attempts = v.attempts`);
      const succeededAt = new Set(attempts.filter(({ outcome }) => outcome.status === 'succeeded').map(({ delivery }) => delivery.endpointId));
      for (const endpointId of succeededAt) await this.keepEndpointHealth(endpointId, true, undefined, tx);
      for (const { delivery, outcome } of attempts.filter(({ outcome }) => outcome.status !== 'succeeded')) {
        await this.keepEndpointHealth(delivery.endpointId, false, outcome.disableEndpoint, tx);
      }
      await this.auditLog.recordMany(
        systemAuditContext('webhook-delivery'),
        finished.map(({ delivery, outcome }) => ({
          action: 'webhook.attempt',
          outcome: outcome.status === 'succeeded' ? ('success' as const) : ('error' as const),
          httpStatus: outcome.result?.statusCode ?? undefined,
          resourceType: 'webhook_delivery',
          resourceId: delivery.id,
        })),
        tx,
      );
    });
  }

  /** A success clears the failure clock; a failure starts it, and disables the endpoint once it has run too long. */
  private async keepEndpointHealth(endpointId: string, succeeded: boolean, disableNow: string | undefined, tx: Executor): Promise<void> {
    if (succeeded) {
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
      return;
    }
    const [endpoint] = await tx
      .update(webhookEndpoints)
      .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
      .where(eq(webhookEndpoints.id, endpointId))
      .returning();
    if (!endpoint || endpoint.status !== 'active') return;
    const failingForSeconds = (Date.now() - endpoint.failingSince!.getTime()) / 1000;
    const reason =
      disableNow ??
      (failingForSeconds >= this.options.config.disableAfterSeconds
        ? `no successful delivery for ${Math.round(failingForSeconds)} s`
        : undefined);
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
