// The webhook outbox: an event and its deliveries are written in the transaction of the change
// that caused them, so a committed change never loses its event and a rolled-back one sends none.
import { and, arrayContains, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
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

  /** An event for given organizations' endpoints (or one endpoint, for a ping). */
  async insert(
    { type, referralId, data, organizations, endpointId }: { type: WebhookEventType; referralId: string | null; data: Record<string, unknown>; organizations: string[]; endpointId?: string },
    tx: Executor,
  ): Promise<string> {
    const [event] = await tx
      .insert(webhookEvents)
      .values({ type, referralId, payload: { type, timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), data } })
      .returning({ id: webhookEvents.id });
    const endpoints = await tx
      .select({ id: webhookEndpoints.id })
      .from(webhookEndpoints)
      .where(
        and(
          endpointId ? eq(webhookEndpoints.id, endpointId) : inArray(webhookEndpoints.organizationId, organizations),
          eq(webhookEndpoints.status, 'active'),
          isNull(webhookEndpoints.deletedAt),
          type === 'ping' ? undefined : arrayContains(webhookEndpoints.eventTypes, [type]),
        ),
      );
    if (endpoints.length > 0) {
      await tx.insert(webhookDeliveries).values(endpoints.map((endpoint) => ({ eventId: event!.id, endpointId: endpoint.id, referralId })));
      // Delivered at commit, and only then: wakes the workers without waiting for their poll.
      await tx.execute(sql`select pg_notify(${deliveryChannel}, '')`);
    }
    return event!.id;
  }
}
