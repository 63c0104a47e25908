// The referrals module: prescriptions from physician offices to therapists, their lifecycle
// (referral-workflow.ts), who sees them (access.ts) and who takes part (participants.ts), the visits
// recorded against them, the hold a severe adverse event puts on treatment (holds.ts), the sweep
// that expires referrals whose expiresOn has passed (at start, so a restart catches up, then on a
// timer), and the /referrals routes. Other modules use it through `app.referrals` and
// participants.ts, never its repository.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { systemAuditContext } from '../audit/audit-log.js';
import { ReferralWorkflow } from './referral-workflow.js';
import referralRoutes from './routes.js';
import renewalRoutes from './renewal-routes.js';
import holdRoutes from './hold-routes.js';

export { participantsOf } from './participants.js';
export { visibleTo } from './access.js';
export { UrgentEscalation } from './urgent-escalation.js';
export { IfMatchHeaders } from './schemas.js';
export { ageInYears, identifiesPatient } from './minimum-necessary.js';
export { prescriberPolicy, referralReadPolicy } from './policies.js';
export type { ReferralWorkflow } from './referral-workflow.js';
export type { Referral } from './schemas.js';
export { CreateReferral as CreateReferralSchema } from './schemas.js';
export type { ReferralListFilter, ReferralState } from './referrals-repository.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The referrals module's service: reads as the caller may see them, moves, visits. */
    referrals: ReferralWorkflow;
    /** Runs the expiry sweep now; returns how many referrals expired. */
    expireReferrals(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const workflow = new ReferralWorkflow(app.db, app.unitOfWork);
    app.decorate('referrals', workflow);
    // A replayed answer about a referral is shown only to whoever may still see it (SPEC §6 rules).
    app.visibilityChecks.register('referral', (principal, id) => workflow.read(principal, id));
    app.decorate('expireReferrals', () => workflow.expireDue(systemAuditContext('referral-expiry')));
    if (servesRoutes(options.config)) {
      await app.register(referralRoutes, { prefix: apiPrefix });
      await app.register(renewalRoutes, { prefix: apiPrefix });
      await app.register(holdRoutes, { prefix: apiPrefix });
    }
    if (options.config.role === 'api') return;

    schedulePeriodicJob(app, { name: 'referral-expiry', everySeconds: options.config.referralExpirySweepSeconds, run: () => app.expireReferrals() });
  },
  { name: 'referrals', dependencies: ['database', 'unit-of-work', 'authentication', 'idempotency'] },
);
