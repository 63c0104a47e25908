// The progress-reports module: visit notes (SOAP) by the accepting therapist and their addenda.
// The visit itself is recorded by the referrals module, which moves the referral along.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import type { Executor } from '../../db/database.js';
import { ProgressReportsRepository } from './progress-reports-repository.js';
import progressReportRoutes from './routes.js';

export { visitNoteById, visitNotesOf } from './visit-note-reads.js';
export type { ProgressReport } from './schemas.js';

/** What each visit of a referral measured (pain, outcome scores), by visit number: for other modules' reports. */
export function visitMeasurements(executor: Executor, referralId: string) {
  return new ProgressReportsRepository(executor).measurements(referralId);
}
export type VisitMeasurement = Awaited<ReturnType<typeof visitMeasurements>>[number];

export default fp(
  async (app, options: ModuleOptions) => {
    if (servesRoutes(options.config)) await app.register(progressReportRoutes, { prefix: apiPrefix });
  },
  { name: 'progress-reports', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
