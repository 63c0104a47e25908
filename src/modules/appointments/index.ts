// The appointments module (SPEC §14.5): visits booked by the therapist side, what became of them,
// and referral.not_scheduled for accepted referrals nobody booked (a sweep of the worker, at start,
// so a restart catches up, then on a timer).
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { systemAuditContext } from '../audit/audit-log.js';
import appointmentRoutes from './routes.js';
import { SchedulingAlerts } from './scheduling-alerts.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs the referral.not_scheduled sweep now; returns how many alerts it sent. */
    sendSchedulingAlerts(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const { alertAfterDays, sweepSeconds } = options.config.scheduling;
    const alerts = new SchedulingAlerts(app.db, app.unitOfWork, alertAfterDays);
    app.decorate('sendSchedulingAlerts', () => alerts.sendDue(systemAuditContext('scheduling-alerts')));
    if (servesRoutes(options.config)) await app.register(appointmentRoutes, { prefix: apiPrefix });
    if (options.config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'scheduling-alerts', everySeconds: sweepSeconds, run: () => app.sendSchedulingAlerts() });
  },
  { name: 'appointments', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
