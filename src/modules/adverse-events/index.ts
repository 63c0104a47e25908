// The adverse-events module (SPEC §14.10): a therapist reports a bad reaction; the office is told at
// once and acknowledges it; unacknowledged, it is escalated once by the worker (at start, so a
// restart catches up, then on a timer); a severe one may hold treatment, which the referrals module
// records (app.referrals.holds) in the report's unit of work.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { systemAuditContext } from '../audit/audit-log.js';
import { AdverseEventWorkflow } from './adverse-event-workflow.js';
import { AdverseEventsRepository } from './adverse-events-repository.js';
import { UrgentEscalation } from '../referrals/index.js';
import adverseEventRoutes from './routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs the escalation of overdue adverse events now; returns how many it escalated. */
    escalateAdverseEvents(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const events = new AdverseEventsRepository(app.db);
    const { afterMinutes, sweepSeconds } = options.config.urgentEscalation;
    const overdueEvents = {
      resourceType: 'adverse_event' as const,
      overdue: (query: Parameters<AdverseEventsRepository['overdue']>[0]) => events.overdue(query),
      claim: ({ id, minutes }: { id: string; minutes: number }, tx: Parameters<AdverseEventsRepository['claimEscalation']>[1]) => events.claimEscalation({ eventId: id, minutes }, tx),
      url: AdverseEventWorkflow.url,
    };
    const escalation = new UrgentEscalation(overdueEvents, app.referrals, app.unitOfWork, afterMinutes);
    app.decorate('escalateAdverseEvents', () => escalation.escalateDue(systemAuditContext('urgent-escalation')));
    if (servesRoutes(options.config)) {
      await app.register(adverseEventRoutes, { prefix: apiPrefix, workflow: new AdverseEventWorkflow(app.referrals, app.unitOfWork, events) });
    }
    if (options.config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'adverse-event-escalation', everySeconds: sweepSeconds, run: () => app.escalateAdverseEvents() });
  },
  { name: 'adverse-events', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
