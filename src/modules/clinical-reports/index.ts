// The clinical-reports module: reports to the prescriber (SPEC §14.3). The referral side of a
// report (its lock, the cadence, the discharge that completes it) is the referrals module's.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import clinicalReportRoutes from './routes.js';

export { reportById, reportPdf, reportsByReferral, reportsOf } from './report-reads.js';
export type { Report } from './schemas.js';

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(clinicalReportRoutes, { prefix: apiPrefix });
  },
  { name: 'clinical-reports', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals', 'progress-reports', 'network'] },
);
