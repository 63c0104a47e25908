// The webhook delivery worker: runs inside the service unless ROLE=api, alone with ROLE=worker.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { DeliveryWorker } from '../modules/webhooks/delivery-worker.js';
import type { Resolver } from '../modules/webhooks/target-guard.js';

declare module 'fastify' {
  interface FastifyInstance {
    webhookWorker: DeliveryWorker;
  }
}

export default fp(
  async (app, options: { config: Config; resolver?: Resolver | undefined }) => {
    const worker = new DeliveryWorker(app.db, app.database, app.auditLog, {
      config: options.config.webhooks,
      resolver: options.resolver,
      log: app.log,
      secretBox: app.dataEncryption,
    });
    app.decorate('webhookWorker', worker);
    if (options.config.role === 'api') return;
    app.addHook('onReady', () => worker.start());
    // Graceful shutdown: no new claims from the moment closing starts (onClose would wait for the
    // requests in flight to drain first); deliveries in flight finish, each within the timeout.
    app.addHook('preClose', () => worker.stop());
  },
  { name: 'webhook-worker', dependencies: ['database', 'audit-log', 'data-encryption'] },
);
