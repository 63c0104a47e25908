// The documents module (SPEC §14.6): files shared on a referral by its care team, checked by their
// bytes, stored in the database with their SHA-256, never changed, retracted by hiding. The worker
// sweeps away the parts of uploads that never became a document (a process that died mid-upload).
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { notFound } from '../../lib/errors.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { careTeamReferral } from './care-team.js';
import { DocumentsRepository } from './documents-repository.js';
import documentRoutes from './routes.js';

export { careTeamReferral } from './care-team.js';
export { documentById, documentBytes, documentsOf } from './document-reads.js';
export type { Document } from './schemas.js';

/** Parts this old without a document belong to an upload that died; no upload runs this long. */
const abandonedUploadSeconds = 3600;

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs the sweep of abandoned upload parts now; returns how many uploads it cleared. */
    sweepAbandonedUploads(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const repository = new DocumentsRepository(app.db);
    // A replayed upload answer is shown only to whoever may still see the document.
    app.visibilityChecks.register('document', async (principal, id) => {
      const document = await repository.findById(id);
      if (!document) throw notFound('document', id, 'Document');
      await careTeamReferral(app.referrals, principal, document.referralId);
    });
    if (servesRoutes(options.config)) {
      await app.register(documentRoutes, { prefix: apiPrefix, repository, maxBytes: options.config.documents.maxBytes, uploadSeconds: options.config.documents.uploadSeconds });
    }
    app.decorate('sweepAbandonedUploads', () => repository.deleteAbandonedChunks(abandonedUploadSeconds));
    if (options.config.role === 'api') return;

    schedulePeriodicJob(app, { name: 'abandoned-upload-sweep', everySeconds: options.config.eventFeed.sweepSeconds, run: () => app.sweepAbandonedUploads() });
  },
  { name: 'documents', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
