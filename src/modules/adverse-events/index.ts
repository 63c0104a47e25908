// The adverse-events module (SPEC §14.10): a therapist reports a bad reaction; the office is told at
// once and acknowledges it; unacknowledged, it is escalated once; a severe one may hold treatment.
import fp from 'fastify-plugin';
import type { ModuleOptions } from '../../lib/module-options.js';

export default fp(
  async (_app, _options: ModuleOptions) => {},
  { name: 'adverse-events', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
