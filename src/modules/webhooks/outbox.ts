// The webhook outbox: an event and its deliveries are written in the transaction of the change
// that caused them, so a committed change never loses its event and a rolled-back one sends none.
import { sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { eventFeed, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import type { WebhookEventType } from '../../lib/vocabulary.js';
import type { WakeUps } from '../../db/wake-ups.js';

export const deliveryChannel = 'webhook_deliveries';
/** Notified at the commit of every event: wakes long polls of the events feed (feed-waiters.ts). */
export const eventFeedChannel = 'event_feed';

export class WebhookOutbox {
  constructor(private readonly wakeUps: WakeUps) {}

  /** Whether any active endpoint, of any organization, subscribes to this type. */
  async hasSubscribers(type: WebhookEventType, tx: Executor): Promise<boolean> {
    const rows = rowsOf(await tx.execute(sql`
      select 1 from ${webhookEndpoints}
      where ${webhookEndpoints.eventTypes} @> array[${type}]::text[] and ${webhookEndpoints.status} = 'active' and ${webhookEndpoints.deletedAt} is null
      limit 1`));
    return rows.length > 0;
  }

  /**
   * An event for given organizations' endpoints (or one endpoint, for a ping): the event, its
   * deliveries, its entries in those organizations' events feeds (not for a ping, which is for its
   * endpoint only) in one statement, as it runs inside every change; once the change
   * commits, the workers and the feed's long polls are woken (wake-ups.ts).
   */
  async insert(
    {
      type,
      referralId,
      data,
      organizations,
      endpointId,
      toEverySubscriber = false,
    }: {
      type: WebhookEventType;
      referralId: string | null;
      data: Record<string, unknown>;
      organizations: string[];
      endpointId?: string;
      /** Every endpoint subscribed to the type, whatever its organization (a network event); not fed to apps. */
      toEverySubscriber?: boolean;
    },
    tx: Executor,
  ): Promise<string> {
    const payload = { type, timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), data };
    const endpoints = endpointId
      ? sql`${webhookEndpoints.id} = ${endpointId}::uuid`
      : toEverySubscriber
        ? sql`${webhookEndpoints.eventTypes} @> array[${type}]::text[]`
        : sql`${webhookEndpoints.organizationId} = any(${sql.param(organizations)}::uuid[]) and ${webhookEndpoints.eventTypes} @> array[${type}]::text[]`;
    const [event] = rowsOf<{ id: string; delivers: boolean; feeds: boolean }>(await tx.execute(sql`
      with event as (
        insert into ${webhookEvents} (type, referral_id, payload) values (${type}, ${referralId}::uuid, ${JSON.stringify(payload)}::jsonb)
        returning id
      ), targets as (
        select ${webhookEndpoints.id} as id from ${webhookEndpoints}
        where ${endpoints} and ${webhookEndpoints.status} = 'active' and ${webhookEndpoints.deletedAt} is null
      ), deliveries as (
        insert into ${webhookDeliveries} (event_id, endpoint_id, referral_id)
        select event.id, targets.id, ${referralId}::uuid from event, targets
        returning 1
      ), feed as (
        insert into ${eventFeed} (organization_id, event_id, referral_id, type)
        select organization_id, event.id, ${referralId}::uuid, ${type}
        from event, unnest(${sql.param(endpointId ? [] : organizations)}::uuid[]) as organization_id
        returning 1
      )
      select event.id, exists (select 1 from deliveries) as delivers, exists (select 1 from feed) as feeds
      from event`));
    // Not NOTIFY in the change's own transaction: PostgreSQL commits notifying transactions one at
    // a time, WAL flush included, which capped every change of the network at one commit at a time.
    if (event!.delivers) this.wakeUps.afterCommit(tx, deliveryChannel);
    if (event!.feeds) this.wakeUps.afterCommit(tx, eventFeedChannel);
    return event!.id;
  }
}
