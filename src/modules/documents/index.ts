// The documents module (SPEC §14.6): files shared on a referral by either side, checked by their
// bytes, stored in the database with their SHA-256, never changed, retracted by hiding.
import fp from 'fastify-plugin';
import type { ModuleOptions } from '../../lib/module-options.js';

export default fp(
  async (_app, _options: ModuleOptions) => {},
  { name: 'documents', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
