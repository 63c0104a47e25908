// The messages module: one thread per referral between the prescribing office and the therapist side.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import messageRoutes from './routes.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(messageRoutes, { prefix: apiPrefix });
  },
  { name: 'messages', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
