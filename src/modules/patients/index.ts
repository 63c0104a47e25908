// The patients module: patients belong to the physician office that registered them.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import patientRoutes from './routes.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(patientRoutes, { prefix: apiPrefix });
  },
  { name: 'patients', dependencies: ['unit-of-work', 'auth', 'idempotency'] },
);
