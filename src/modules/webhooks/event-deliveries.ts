// Turns the network's domain events into webhook events for the endpoints of the organizations
// taking part, in the transaction of the change that caused them.
import { isNetworkEvent, isReferralEvent, type DomainEventHandler } from '../../lib/domain-events.js';
import { participantsOf } from '../referrals/participants.js';
import type { WebhookOutbox } from './outbox.js';

export function deliveriesOf(outbox: WebhookOutbox, apiPrefix: string): DomainEventHandler {
  return async (event, tx) => {
    if (isNetworkEvent(event)) {
      // Frequent (a checkpoint every second or so) and fed to no app: no row unless someone listens.
      if (!(await outbox.hasSubscribers(event.type, tx))) return;
      const data = { resource: event.resource.type, id: event.resource.id, ...event.facts, url: event.resource.url };
      await outbox.insert({ type: event.type, referralId: null, data, organizations: [], toEverySubscriber: true }, tx);
      return;
    }
    if (!isReferralEvent(event)) {
      const organizations = [event.organizationId];
      const data = { resource: event.resource.type, id: event.resource.id, ...event.facts, organizations, url: event.resource.url };
      await outbox.insert({ type: event.type, referralId: null, data, organizations }, tx);
      return;
    }
    const organizations = event.audience === 'office' ? [event.referral.organizationId] : await participantsOf(event.referral, tx);
    // Thin payloads: names the resource and who takes part, never clinical text.
    const data = {
      resource: event.resource?.type ?? 'referral',
      id: event.resource?.id ?? event.referral.id,
      referralId: event.referral.id,
      status: event.referral.status,
      organizations,
      url: event.resource?.url ?? `${apiPrefix}/referrals/${event.referral.id}`,
    };
    await outbox.insert({ type: event.type, referralId: event.referral.id, referral: event.referral, data, organizations }, tx);
  };
}
