// The webhook outbox: an event and its deliveries are written in the transaction of the change
// that caused them, so a committed change never loses its event and a rolled-back one sends none.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import { rowsOf, type Executor } from '../../db/database.js';
import { eventFeed, webhookDeliveries, webhookEndpoints, webhookEvents } from '../../db/schema.js';
import type { ReferralFacts } from '../../lib/domain-events.js';
import type { WebhookEventType } from '../../lib/vocabulary.js';
import type { WakeUps } from '../../db/wake-ups.js';
import type { WebhookEventFacts, WebhookFormats } from './webhook-formats.js';

export const deliveryChannel = 'webhook_deliveries';
/** Notified at the commit of every event: wakes long polls of the events feed (feed-waiters.ts). */
export const eventFeedChannel = 'event_feed';

/** The standard payload's data: it names the record the event is about (SPEC §8), and may say more. */
export type EventData = { resource: string; id: string; url: string } & Record<string, unknown>;

export class WebhookOutbox {
  constructor(
    private readonly wakeUps: WakeUps,
    private readonly formats: WebhookFormats,
    private readonly log: FastifyBaseLogger,
  ) {}

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
   * commits, the workers and the feed's long polls are woken (wake-ups.ts). The FHIR body is
   * kept only when an endpoint of that format is among the targets.
   */
  async insert(
    {
      type,
      referralId,
      referral = null,
      data,
      organizations,
      endpointId,
      toEverySubscriber = false,
    }: {
      type: WebhookEventType;
      referralId: string | null;
      /** The referral the event is about, for the formats that render more than the standard payload. */
      referral?: ReferralFacts | null;
      data: EventData;
      organizations: string[];
      endpointId?: string;
      /** Every endpoint subscribed to the type, whatever its organization (a network event); not fed to apps. */
      toEverySubscriber?: boolean;
    },
    tx: Executor,
  ): Promise<string> {
    const payload = { type, timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), data };
    // The id is made here rather than by the table's default: a FHIR Bundle carries it.
    const id = randomUUID();
    const fhirBody = this.render({ id, type, timestamp: payload.timestamp, resource: { type: data.resource, id: data.id, url: data.url }, referral, organizations });
    const endpoints = endpointId
      ? sql`${webhookEndpoints.id} = ${endpointId}::uuid`
      : toEverySubscriber
        ? sql`${webhookEndpoints.eventTypes} @> array[${type}]::text[]`
        : sql`${webhookEndpoints.organizationId} = any(${sql.param(organizations)}::uuid[]) and ${webhookEndpoints.eventTypes} @> array[${type}]::text[]`;
    const [event] = rowsOf<{ id: string; delivers: boolean; feeds: boolean }>(await tx.execute(sql`
      with targets as (
        select ${webhookEndpoints.id} as id, ${webhookEndpoints.format} as format from ${webhookEndpoints}
        where ${endpoints} and ${webhookEndpoints.status} = 'active' and ${webhookEndpoints.deletedAt} is null
      ), event as (
        insert into ${webhookEvents} (id, type, referral_id, payload, fhir_body)
        select ${id}::uuid, ${type}, ${referralId}::uuid, ${JSON.stringify(payload)}::jsonb,
               case when exists (select 1 from targets where format = 'fhir') then ${fhirBody}::text end
        returning id
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

  /**
   * The event as a FHIR Bundle, rendered while the event is written so every attempt sends the
   * same bytes; null when no module registered the format. Rendered before the targets are known
   * (a pure function of the event, cheaper than a second statement in every change), and a
   * failure is logged rather than thrown: a bug in one format must not roll back the network's
   * changes. Endpoints of that format then get the standard payload, as for an event written
   * before they chose it.
   */
  private render(event: WebhookEventFacts): string | null {
    const render = this.formats.rendererOf('fhir');
    if (!render) return null;
    try {
      return JSON.stringify(render(event));
    } catch (error) {
      this.log.error({ err: error, eventType: event.type, eventId: event.id }, 'rendering a FHIR webhook body failed; its fhir endpoints get the standard payload');
      return null;
    }
  }
}
