// The webhook outbox: an event and its deliveries are written in the transaction of the change
// that caused them, so a committed change never loses its event and a rolled-back one sends none.
import { and, eq, isNull, sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { referralOffers, users, webhookDeliveries, webhookEndpoints, webhookEvents, type WebhookEventType } from '../../db/schema.js';

export const deliveryChannel = 'webhook_deliveries';

export interface ReferralFacts {
  id: string;
  status: string;
  organizationId: string;
  targetPracticeId: string | null;
  acceptedPracticeId: string | null;
  targetKind: string;
}

export interface OutboxEvent {
  type: WebhookEventType;
  referral: ReferralFacts;
  /** The resource the event is about, when it is not the referral itself. */
  resource?: { type: 'progress_report' | 'message'; id: string; url: string };
}

export class WebhookOutbox {
  /** The organizations taking part in a referral: the office, the practice side, and practices holding an open offer. */
  private async participants(referral: ReferralFacts, tx: Executor): Promise<string[]> {
    const organizations = new Set([referral.organizationId]);
    if (referral.targetPracticeId) organizations.add(referral.targetPracticeId);
    if (referral.acceptedPracticeId) organizations.add(referral.acceptedPracticeId);
    if (referral.targetKind === 'network' && referral.status === 'sent') {
      const offered = await tx
        .selectDistinct({ practiceId: users.organizationId })
        .from(referralOffers)
        .innerJoin(users, eq(users.id, referralOffers.therapistId))
        .where(and(eq(referralOffers.referralId, referral.id), isNull(referralOffers.declinedAt)));
      for (const row of offered) if (row.practiceId) organizations.add(row.practiceId);
    }
    return [...organizations];
  }

  /** Thin payloads: names the resource and who takes part, never clinical text. */
  async publish(event: OutboxEvent, tx: Executor): Promise<void> {
    const organizations = await this.participants(event.referral, tx);
    const referralUrl = `/v1/referrals/${event.referral.id}`;
    const data = {
      resource: event.resource?.type ?? 'referral',
      id: event.resource?.id ?? event.referral.id,
      referralId: event.referral.id,
      status: event.referral.status,
      organizations,
      url: event.resource?.url ?? referralUrl,
    };
    await this.insert({ type: event.type, referralId: event.referral.id, data, organizations }, tx);
  }

  /**
   * An event for given organizations' endpoints (or one endpoint, for a ping): the event, its
   * deliveries and the wake-up of the workers in one statement, as it runs inside every change.
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
      )
      -- Delivered at commit, and only then: wakes the workers without waiting for their poll.
      select event.id, (select count(*) from deliveries) as deliveries,
             case when exists (select 1 from deliveries) then pg_notify(${deliveryChannel}, '') end as notified
      from event`));
    return event!.id;
  }
}
