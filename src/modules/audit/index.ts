// The audit module's API: admins read, export and verify the trail, and anyone holding a
// checkpoint asks for proofs. The sequencer, which moves written events into the Merkle tree and
// signs checkpoints, runs in the worker. The log itself, which every module writes to, is
// audit-log-plugin.ts, registered with the infrastructure.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { resolveGeneratedKey } from '../../lib/generated-key.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { AuditRepository } from './audit-repository.js';
import { AuditSequencer } from './audit-sequencer.js';
import { AuditTreeRepository } from './audit-tree-repository.js';
import { CheckpointSigner } from './checkpoint-signer.js';
import auditRoutes from './routes.js';
import { TransparencyLog } from './transparency-log.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Moves written audit events into the Merkle tree; tests run it to see events sequenced at once. */
    auditSequencer: AuditSequencer;
    transparencyLog: TransparencyLog;
    /**
     * The audit trail as its readers see it (network admins all of it, an organization admin their
     * people's events and every access to their patients): filtered pages and one event.
     */
    auditTrail: Pick<AuditRepository, 'list' | 'get'>;
  }
}

export { toAuditEvent } from './audit-repository.js';
export type { AuditEvent } from './schemas.js';

export const auditSigningKeyFile = 'audit-signing-key';

export default fp(
  async (app, options: ModuleOptions) => {
    const { config } = options;
    const seed = await resolveGeneratedKey({
      given: config.audit.signingKey,
      setting: 'AUDIT_SIGNING_KEY',
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      file: auditSigningKeyFile,
    });
    const signer = new CheckpointSigner(seed, config.audit.origin);
    const tree = new AuditTreeRepository();
    const log = new TransparencyLog(app.db, tree, signer);
    const sequencer = new AuditSequencer(app.db, tree, signer, app.domainEvents, {
      batchSize: 5000,
      checkpointIntervalMs: config.audit.checkpointIntervalMs,
      checkpointWebhookMs: config.audit.checkpointWebhookSeconds * 1000,
      apiPrefix,
    });
    app.decorate('auditSequencer', sequencer);
    app.readinessDetails.set('auditSequencerLagSeconds', () => log.sequencerLagSeconds());
    app.metrics.gauge({
      name: 'audit_sequencer_lag_seconds',
      help: 'How long the oldest audit event not yet in a signed checkpoint has waited (0: none waits)',
      read: () => log.sequencerLagSeconds(),
    });
    app.decorate('transparencyLog', log);
    const trail = new AuditRepository(app.db, app.database);
    app.decorate('auditTrail', trail);
    if (servesRoutes(config)) await app.register(auditRoutes, { prefix: apiPrefix, log, trail });
    if (config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'audit-sequencer', everySeconds: config.audit.sequencerPollMs / 1000, run: () => sequencer.run(), logsRuns: false });
  },
  { name: 'audit', dependencies: ['audit-log', 'auth', 'idempotency', 'health', 'metrics'] },
);
