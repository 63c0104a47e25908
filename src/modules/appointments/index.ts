// The appointments module (SPEC §14.5): visits booked by the therapist side, what became of them,
// and referral.not_scheduled for accepted referrals nobody booked.
import fp from 'fastify-plugin';
import type { ModuleOptions } from '../../lib/module-options.js';

export default fp(
  async (_app, _options: ModuleOptions) => {},
  { name: 'appointments', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
