// The audit log as a service of the whole app: every change, refusal and read of patient data is
// written to it, so it is registered with the infrastructure, before any module.
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { AuditLog } from './audit-log.js';

declare module 'fastify' {
  interface FastifyInstance {
    auditLog: AuditLog;
  }
}

export default fp(
  async (app, options: { config: Config }) => {
    const denialWindowMs = options.config.auditDenialWindowSeconds * 1000;
    const auditLog = new AuditLog(app.db, { denialWindowMs });
    app.decorate('auditLog', auditLog);

    // The counts of repeated refusals are written when their window ends, and before the
    // database closes: a count the log was about to hold is never dropped on shutdown.
    const flushEnded = () =>
      auditLog.flushDenials().catch((error: unknown) => app.log.error({ code: (error as { code?: string }).code }, 'writing refusal counts failed'));
    let timer: NodeJS.Timeout | undefined;
    app.addHook('onReady', async () => {
      timer = setInterval(flushEnded, Math.max(250, Math.min(denialWindowMs / 2, 10_000))).unref();
    });
    app.addHook('preClose', async () => {
      clearInterval(timer);
      await auditLog.flushDenials({ all: true });
    });
  },
  { name: 'audit-log', dependencies: ['database'] },
);
