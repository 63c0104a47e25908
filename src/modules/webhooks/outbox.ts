// The webhook outbox: an event and its deliveries are written in the transaction of the change
// that caused them, so a committed change never loses its event and a rolled-back one sends none.
import { sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { eventFeed, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import type { WebhookEventType } from '../../lib/vocabulary.js';

export const deliveryChannel = 'webhook_deliveries';
/** Notified at the commit of every event: wakes long polls of the events feed (feed-waiters.ts). */
export const eventFeedChannel = 'event_feed';

export class WebhookOutbox {
  /**
   * An event for given organizations' endpoints (or one endpoint, for a ping): the event, its
   * deliveries, its entries in those organizations' events feeds (not for a ping, which is for its
   * endpoint only) and the wake-ups of workers and long polls, in one statement, as it runs inside
   * every change.
   */
  async insert(
    { type, referralId, data, organizations, endpointId }: { type: WebhookEventType; referralId: string | null; data: Record<string, unknown>; organizations: string[]; endpointId?: string },
    tx: Executor,
  ): Promise<string> {
    const payload = { type, timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), data };
    const endpoints = endpointId
      ? sql`${webhookEndpoints.id} = ${endpointId}::uuid`
      : sql`${webhookEndpoints.organizationId} = any(${sql.param(organizations)}::uuid[]) and ${webhookEndpoints.eventTypes} @> array[${type}]::text[]`;
    const [event] = rowsOf<{ id: string }>(await tx.execute(sql`
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
      -- Delivered at commit, and only then: wakes the workers and the feed's long polls without
      -- waiting for their poll.
      select event.id, (select count(*) from deliveries) as deliveries,
             case when exists (select 1 from deliveries) then pg_notify(${deliveryChannel}, '') end as notified,
             case when exists (select 1 from feed) then pg_notify(${eventFeedChannel}, '') end as fed
      from event`));
    return event!.id;
  }
}
