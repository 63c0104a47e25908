// The audit module's API: admins read, export and verify the trail. The log itself, which every
// module writes to, is audit-log-plugin.ts, registered with the infrastructure.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import auditRoutes from './routes.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(auditRoutes, { prefix: apiPrefix });
  },
  { name: 'audit', dependencies: ['audit-log', 'auth', 'idempotency'] },
);
