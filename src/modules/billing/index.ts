// The billing module (SPEC §14.9): a referral's visits as the fields of a CMS-1500 claim, JSON or CSV.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import billingRoutes from './routes.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(billingRoutes, { prefix: apiPrefix });
  },
  { name: 'billing', dependencies: ['unit-of-work', 'auth', 'referrals'] },
);
