// The webhooks module: partners' endpoints and their settings (routes), the outbox that turns the
// network's domain events into deliveries and feed entries, the events feed for apps that pull
// (GET /v1/events), and the delivery worker, which runs inside the service unless ROLE=api, and
// alone with ROLE=worker.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { DeliveryWorker } from './delivery-worker.js';
import { EventsFeed } from './events-feed.js';
import feedRoutes from './feed-routes.js';
import { FeedWaiters } from './feed-waiters.js';
import { deliveriesOf } from './event-deliveries.js';
import { WebhookOutbox } from './outbox.js';
import webhookRoutes from './routes.js';
import { resealSigningSecrets } from './signing-secrets.js';
import type { Resolver } from '../../lib/outbound/target-guard.js';
import { WebhooksRepository } from './webhooks-repository.js';
import { WebhookFormats } from './webhook-formats.js';
import { webhooksDocument } from './webhooks-document.js';

export type { WebhookEventFacts, WebhookRenderer } from './webhook-formats.js';

declare module 'fastify' {
  interface FastifyInstance {
    webhookWorker: DeliveryWorker;
    /** The events feed (GET /v1/events); its retention sweep runs in the worker. */
    eventsFeed: EventsFeed;
    /** Renderers of the formats other than the standard payload: `app.webhookFormats.register('fhir', render)`. */
    webhookFormats: WebhookFormats;
  }
}

export default fp(
  async (app, options: ModuleOptions & { resolver?: Resolver | undefined }) => {
    const box = app.dataEncryption;
    const resealed = await resealSigningSecrets(new WebhooksRepository(app.db), box);
    if (resealed > 0) app.log.info({ endpoints: resealed, keyId: box.currentKeyId }, 'webhook signing secrets sealed under the current data encryption key');

    app.documentWebhooks(webhooksDocument());
    const formats = new WebhookFormats();
    app.decorate('webhookFormats', formats);
    const outbox = new WebhookOutbox(app.database.wakeUps, formats, app.log);
    app.domainEvents.subscribe(deliveriesOf(outbox, apiPrefix));
    const feed = new EventsFeed(app.db, options.config.eventFeed.retentionDays);
    app.decorate('eventsFeed', feed);
    if (servesRoutes(options.config)) {
      await app.register(webhookRoutes, { prefix: apiPrefix, config: options.config });
      const waiters = new FeedWaiters(app.database);
      await app.register(feedRoutes, { prefix: apiPrefix, feed, waiters });
      app.addHook('onReady', () => waiters.start());
      // Long polls end at once with what they have, rather than holding the close for up to 30 s.
      app.addHook('preClose', () => waiters.close());
    }

    const worker = new DeliveryWorker(app.db, app.database, {
      config: options.config.webhooks,
      resolver: options.resolver,
      log: app.log,
      secretBox: app.dataEncryption,
      referralsTakenPartIn: (organization, referralIds) => app.referrals.referralsOrganizationTakesPartIn(organization, referralIds),
      units: app.unitOfWork,
      formats,
    });
    app.decorate('webhookWorker', worker);
    const queue = new WebhooksRepository(app.db);
    app.metrics.gauge({ name: 'webhook_outbox_depth', help: 'Webhook deliveries not yet finished (pending or being sent), all endpoints', read: () => queue.unfinishedDeliveries() });
    app.metrics.gauge({
      name: 'webhook_delivery_lag_seconds',
      help: 'How long the oldest delivery that is due has waited to be sent (0: none waits)',
      read: () => queue.oldestDueWaitSeconds(),
    });
    if (options.config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'event-feed-retention', everySeconds: options.config.eventFeed.sweepSeconds, run: () => feed.removeExpired() });
    app.addHook('onReady', () => worker.start());
    // Graceful shutdown: no new claims from the moment closing starts (onClose would wait for the
    // requests in flight to drain first); deliveries in flight finish, each within the timeout.
    app.addHook('preClose', () => worker.stop());
  },
  { name: 'webhooks', dependencies: ['database', 'openapi', 'audit-log', 'data-encryption', 'unit-of-work', 'referrals', 'metrics'] },
);
