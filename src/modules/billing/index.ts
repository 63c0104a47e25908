// The billing module (SPEC §14.9): a referral's visits as the fields of a CMS-1500 claim, JSON or CSV.
import fp from 'fastify-plugin';
import type { ModuleOptions } from '../../lib/module-options.js';

export default fp(
  async (_app, _options: ModuleOptions) => {},
  { name: 'billing', dependencies: ['unit-of-work', 'auth', 'referrals'] },
);
