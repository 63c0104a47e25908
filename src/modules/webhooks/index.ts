// The webhooks module: partners' endpoints and their settings (routes), the outbox that turns the
// network's domain events into deliveries, and the delivery worker, which runs inside the service
// unless ROLE=api, and alone with ROLE=worker.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { DeliveryWorker } from './delivery-worker.js';
import { deliveriesOf } from './event-deliveries.js';
import { WebhookOutbox } from './outbox.js';
import webhookRoutes from './routes.js';
import { resealSigningSecrets } from './signing-secrets.js';
import type { Resolver } from './target-guard.js';
import { WebhooksRepository } from './webhooks-repository.js';

declare module 'fastify' {
  interface FastifyInstance {
    webhookWorker: DeliveryWorker;
  }
}

export default fp(
  async (app, options: ModuleOptions & { resolver?: Resolver | undefined }) => {
    const box = app.dataEncryption;
    const resealed = await resealSigningSecrets(new WebhooksRepository(app.db), box);
    if (resealed > 0) app.log.info({ endpoints: resealed, keyId: box.currentKeyId }, 'webhook signing secrets sealed under the current data encryption key');

    const outbox = new WebhookOutbox();
    app.domainEvents.subscribe(deliveriesOf(outbox, apiPrefix));
    if (servesRoutes(options.config)) await app.register(webhookRoutes, { prefix: apiPrefix, config: options.config });

    const worker = new DeliveryWorker(app.db, app.database, {
      config: options.config.webhooks,
      resolver: options.resolver,
      log: app.log,
      secretBox: app.dataEncryption,
      takesPart: (organization, referralId) => app.referrals.organizationTakesPart(organization, referralId),
      units: app.unitOfWork,
    });
    app.decorate('webhookWorker', worker);
    if (options.config.role === 'api') return;
    app.addHook('onReady', () => worker.start());
    // Graceful shutdown: no new claims from the moment closing starts (onClose would wait for the
    // requests in flight to drain first); deliveries in flight finish, each within the timeout.
    app.addHook('preClose', () => worker.stop());
  },
  { name: 'webhooks', dependencies: ['database', 'audit-log', 'data-encryption', 'unit-of-work', 'referrals'] },
);
