// The network module: organizations, their users and API clients, and the therapist directory.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import apiClientRoutes from './api-clients-routes.js';
import directoryRoutes from './directory-routes.js';
import organizationRoutes from './organizations-routes.js';
import userRoutes from './users-routes.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (!servesRoutes(options.config)) return;
    await app.register(organizationRoutes, { prefix: apiPrefix });
    await app.register(userRoutes, { prefix: apiPrefix });
    await app.register(apiClientRoutes, { prefix: apiPrefix });
    await app.register(directoryRoutes, { prefix: apiPrefix });
  },
  { name: 'network', dependencies: ['unit-of-work', 'auth', 'idempotency'] },
);
