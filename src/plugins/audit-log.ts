// Makes the audit log available to every route and to the error handler.
import fp from 'fastify-plugin';
import { AuditLog } from '../modules/audit/audit-log.js';

declare module 'fastify' {
  interface FastifyInstance {
    auditLog: AuditLog;
  }
}

export default fp(
  async (app) => {
    app.decorate('auditLog', new AuditLog(app.db));
  },
  { name: 'audit-log', dependencies: ['database'] },
);
