// The events feed (SPEC §14.7): the outbox's events as an organization's members may see them, in
// commit order. Like the referral sync feed it orders by the writing transaction's id and shows an
// event only once every older transaction of this database has finished, so a reader following its
// cursor never skips an event that committed after a later-numbered one.
import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { eventFeed, referrals, webhookEvents } from '../../db/schema.js';
import type { WebhookEventType } from '../../lib/vocabulary.js';
import { organizationAdmins, type Principal } from '../auth/policy.js';
import { visibleTo } from '../referrals/index.js';
import type { FeedPosition } from './feed-cursor.js';

export interface FeedEvent {
  id: string;
  /** Never a ping: pings go to their endpoint only, not into any feed. */
  type: Exclude<WebhookEventType, 'ping'>;
  timestamp: string;
  data: Record<string, unknown>;
}

export interface FeedPage {
  events: (FeedEvent & { position: FeedPosition })[];
  /** Every event of a transaction older than this is committed and was considered. */
  horizon: bigint;
}

interface FeedRow extends Record<string, unknown> {
  horizon: string;
  sync_xid: string | null;
  event_id: string | null;
  payload: { type: FeedEvent['type']; timestamp: string; data: Record<string, unknown> } | null;
}

/**
 * Which of its organization's entries the caller may see, checked now rather than when the event
 * was written (as the webhook worker checks at delivery): a referral event if the caller may see
 * the referral today (SPEC §6: a therapist sees only their own referrals, not a colleague's); an
 * organization's own news (license.expiring, webhook_endpoint.disabled) if the caller manages the
 * organization or it is about the caller.
 */
function visibleEntries(principal: Principal): SQL {
  const manages = principal.kind === 'api_client' || organizationAdmins.includes(principal.role);
  return sql`(case when ${eventFeed.referralId} is null
    then ${manages ? sql`true` : sql`${webhookEvents.payload} -> 'data' ->> 'id' = ${principal.id}`}
    else ${visibleTo(principal)} end)`;
}

export class EventsFeed {
  constructor(
    private readonly db: Executor,
    private readonly retentionDays: number,
  ) {}

  async read({ principal, after, types, limit }: { principal: Principal; after: FeedPosition; types: readonly string[] | undefined; limit: number }): Promise<FeedPage> {
    // As in the referral sync feed (migration 0012): other databases' transactions are read by a
    // statement of their own, before the horizon's snapshot is taken.
    const [neighbours] = rowsOf<{ xids: string[] }>(await this.db.execute(sql`select sync_neighbour_xids() as xids`));
    const rows = rowsOf<FeedRow>(
      await this.db.execute(sql`
        with horizon as materialized (select sync_horizon(${sql.param(neighbours?.xids ?? [])}::text[]) as xid)
        select horizon.xid::text as horizon, page.sync_xid::text as sync_xid, page.event_id, page.payload
        from horizon left join lateral (
          select ${eventFeed.syncXid} as sync_xid, ${eventFeed.eventId} as event_id, ${webhookEvents.payload} as payload
          from ${eventFeed}
          join ${webhookEvents} on ${webhookEvents.id} = ${eventFeed.eventId}
          left join ${referrals} on ${referrals.id} = ${eventFeed.referralId}
          where ${eventFeed.organizationId} = ${principal.organizationId}::uuid
            and ${eventFeed.syncXid} < horizon.xid
            and (${eventFeed.syncXid}, ${eventFeed.eventId}) > (${after.syncXid.toString()}::bigint, ${after.eventId}::uuid)
            and ${eventFeed.occurredAt} >= now() - make_interval(days => ${this.retentionDays}::int)
            ${types ? sql`and ${eventFeed.type} = any(${sql.param([...types])}::text[])` : sql``}
            and ${visibleEntries(principal)}
          order by ${eventFeed.syncXid}, ${eventFeed.eventId}
          limit ${limit}::int
        ) page on true`),
    );
    const horizon = BigInt(rows[0]!.horizon);
    const events = rows
      .filter((row) => row.event_id !== null)
      .map((row) => ({
        id: row.event_id!,
        type: row.payload!.type,
        timestamp: row.payload!.timestamp,
        data: row.payload!.data,
        position: { syncXid: BigInt(row.sync_xid!), eventId: row.event_id! },
      }));
    return { events, horizon };
  }

  /** Removes entries older than the retention period, in batches; returns how many. */
  async removeExpired(batchSize = 5000): Promise<number> {
    let removed = 0;
    for (;;) {
      const rows = rowsOf<{ n: number }>(
        await this.db.execute(sql`
          with gone as (
            delete from ${eventFeed} where ctid = any(array(
              select ctid from ${eventFeed} where ${eventFeed.occurredAt} < now() - make_interval(days => ${this.retentionDays}::int) limit ${batchSize}::int))
            returning 1)
          select count(*)::int as n from gone`),
      );
      const count = Number(rows[0]?.n ?? 0);
      removed += count;
      if (count < batchSize) return removed;
    }
  }
}
