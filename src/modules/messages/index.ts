// The messages module: one thread per referral between the prescribing office and the therapist
// side; urgent messages the other side acknowledges, escalated once by the worker when nobody does
// (SPEC §14.10): at start, so a restart catches up, then on a timer.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { systemAuditContext } from '../audit/audit-log.js';
import { UrgentEscalation } from '../referrals/index.js';
import { MessageThread } from './message-thread.js';
import { MessagesRepository } from './messages-repository.js';
import messageRoutes from './routes.js';

export type { MessageThread, ThreadReferral } from './message-thread.js';
export type { Message } from './schemas.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The messages module's service: posts to a referral's thread and reads it, as the caller may. */
    messages: MessageThread;
    /** Runs the escalation of overdue urgent messages now; returns how many it escalated. */
    escalateUrgentMessages(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const { afterMinutes, sweepSeconds } = options.config.urgentEscalation;
    const messages = new MessagesRepository(app.db);
    const thread = new MessageThread(messages, app.referrals, app.unitOfWork);
    app.decorate('messages', thread);
    // A replayed post (through /v1 or FHIR) is shown only to whoever still takes part in the thread.
    app.visibilityChecks.register('message', (principal, id) => thread.byId(principal, id));
    const urgentMessages = {
      resourceType: 'message' as const,
      overdue: (query: Parameters<MessagesRepository['overdueUrgent']>[0]) => messages.overdueUrgent(query),
      claim: ({ id, minutes }: { id: string; minutes: number }, tx: Parameters<MessagesRepository['claimEscalation']>[1]) => messages.claimEscalation({ messageId: id, minutes }, tx),
      url: (referralId: string) => `${apiPrefix}/referrals/${referralId}/messages`,
    };
    const escalation = new UrgentEscalation(urgentMessages, app.referrals, app.unitOfWork, afterMinutes);
    app.decorate('escalateUrgentMessages', () => escalation.escalateDue(systemAuditContext('urgent-escalation')));
    if (servesRoutes(options.config)) await app.register(messageRoutes, { prefix: apiPrefix, repository: messages });
    if (options.config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'urgent-message-escalation', everySeconds: sweepSeconds, run: () => app.escalateUrgentMessages() });
  },
  { name: 'messages', dependencies: ['unit-of-work', 'auth', 'idempotency', 'referrals'] },
);
