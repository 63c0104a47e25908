// The delivery queue in webhook_deliveries: a worker claims due deliveries under a lease with SKIP
// LOCKED (several workers side by side never take the same one; a crashed worker's claims come
// back when its lease runs out), and finishes them with their attempts.
import { eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Database, DatabaseHandle, Executor } from '../../db/database.js';
import { organizations, webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import type { Verdict } from './retry-policy.js';
import { maxResponseBytes, type SendResult } from './sender.js';

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

/** A claimed delivery with what sending it takes; null where the event or endpoint is gone. */
export interface ClaimedDelivery {
  delivery: DeliveryRow;
  event: typeof webhookEvents.$inferSelect | null;
  endpoint: typeof webhookEndpoints.$inferSelect | null;
  organizationKind: (typeof organizations.$inferSelect)['kind'] | null;
}

/** A delivery's verdict, and the attempt it was made on (none when it was given up unsent). */
export interface FinishedDelivery {
  delivery: DeliveryRow;
  verdict: Verdict;
  result: SendResult | undefined;
}

export class DeliveryQueue {
  constructor(
    private readonly db: Database,
    private readonly database: DatabaseHandle,
    private readonly leaseSeconds: number,
  ) {}

  /**
   * Due deliveries, or deliveries whose worker's lease ran out, with their event and endpoint. A
   * delivery waits while an earlier one of the same referral to the same endpoint is unfinished,
   * so partners get them in order. Expired leases first (rare, and looked for only when
   * `withExpiredLeases`), then due ones off their index.
   */
  async claim({ limit, withExpiredLeases = true }: { limit: number; withExpiredLeases?: boolean }): Promise<ClaimedDelivery[]> {
    if (limit <= 0) return [];
    const expired = withExpiredLeases ? await this.claimWhere(sql`c.status = 'delivering' and c.lease_expires_at < now()`, sql`c.lease_expires_at`, limit) : [];
    const due = expired.length < limit ? await this.claimWhere(sql`c.status = 'pending' and c.next_attempt_at <= now()`, sql`c.next_attempt_at, c.seq`, limit - expired.length) : [];
    const ids = [...expired, ...due];
    if (ids.length === 0) return [];
    return this.db
      .select({ delivery: webhookDeliveries, event: webhookEvents, endpoint: webhookEndpoints, organizationKind: organizations.kind })
      .from(webhookDeliveries)
      .leftJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
      .leftJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId))
      .leftJoin(organizations, eq(organizations.id, webhookEndpoints.organizationId))
      .where(inArray(webhookDeliveries.id, ids))
      .orderBy(webhookDeliveries.seq);
  }

  /** Takes the deliveries under a lease and counts the attempt; the count fences the finish. */
  private async claimWhere(condition: SQL, order: SQL, limit: number): Promise<string[]> {
    const rows = await this.database.rows<{ id: string }>(sql`
      update webhook_deliveries d
      set status = 'delivering', lease_expires_at = now() + make_interval(secs => ${this.leaseSeconds}),
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

  /**
   * Renews the leases of deliveries still in flight. A lease held by this claim only (the attempt
   * count fences it): one taken over by another worker after a stall stays the other's.
   */
  async renewLeases(claims: { id: string; attempts: number }[]): Promise<void> {
    if (claims.length === 0) return;
    await this.database.db.execute(sql`
      update webhook_deliveries d
      set lease_expires_at = now() + make_interval(secs => ${this.leaseSeconds})
      from unnest(${sql.param(claims.map(({ id }) => id))}::uuid[], ${sql.param(claims.map(({ attempts }) => attempts))}::int[]) as v(id, attempts)
      where d.id = v.id and d.attempts = v.attempts and d.status = 'delivering'`);
  }

  /** Records the attempts of deliveries that finished together and moves each to its new state, in two statements. */
  async finish({ finished }: { finished: FinishedDelivery[] }, tx: Executor): Promise<void> {
    const attempts = finished.filter(({ result }) => result);
    const recordingAttempts =
      attempts.length === 0
        ? undefined
        : tx.insert(webhookAttempts).values(
        attempts.map(({ delivery, verdict, result }) => ({
          deliveryId: delivery.id,
          statusCode: result!.statusCode,
          latencyMs: result!.latencyMs,
          error: result!.error ?? (verdict.status === 'succeeded' ? null : verdict.error),
          responseExcerpt: result!.excerpt.slice(0, maxResponseBytes) || null,
        })),
      );
    const column = <V,>(value: (entry: FinishedDelivery) => V) => sql.param(finished.map(value));
    // The claim count fences out a worker whose lease ran out and whose delivery another took.
    // Both statements are issued before either is awaited: pipelined on postgres.js.
    const movingOn = tx.execute(sql`
      update ${webhookDeliveries} d
      set status = v.status, lease_expires_at = null, last_status_code = v.status_code, last_error = v.error,
          updated_at = now(), next_attempt_at = coalesce(v.next_attempt_at::timestamptz, d.next_attempt_at)
      from unnest(${column(({ delivery }) => delivery.id)}::uuid[], ${column(({ delivery }) => delivery.attempts)}::int[],
                  ${column(({ verdict }) => verdict.status)}::text[], ${column(({ result }) => result?.statusCode ?? null)}::int[],
                  ${column(({ verdict }) => verdict.error)}::text[], ${column(({ verdict }) => verdict.nextAttemptAt?.toISOString() ?? null)}::text[])
        as v(id, attempts, status, status_code, error, next_attempt_at)
      where d.id = v.id and d.attempts = v.attempts`);
    await Promise.all([recordingAttempts, movingOn]);
  }
}
