// The referral workflow for routes and background jobs, and the sweep that expires referrals
// whose expiresOn has passed: at start (so a restart catches up) and then on a timer.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { systemAuditContext } from '../modules/audit/audit-log.js';
import { ReferralWorkflow } from '../modules/referrals/referral-workflow.js';

declare module 'fastify' {
  interface FastifyInstance {
    referralWorkflow: ReferralWorkflow;
    /** Runs the expiry sweep now; returns how many referrals expired. */
    expireReferrals(): Promise<number>;
  }
}

export default fp(
  async (app, options: { config: Config }) => {
    const workflow = new ReferralWorkflow(app.db, app.auditLog);
    app.decorate('referralWorkflow', workflow);
    // A replayed answer about a referral is shown only to whoever may still see it (SPEC §6 rules).
    app.visibilityChecks.register('referral', (principal, id) => workflow.read(principal, id));
    app.decorate('expireReferrals', () => workflow.expireDue(systemAuditContext('referral-expiry')));
    if (options.config.role === 'api') return;

    let timer: NodeJS.Timeout | undefined;
    let running: Promise<unknown> = Promise.resolve();
    const sweep = () => {
      running = app.expireReferrals().then(
        (count) => count > 0 && app.log.info({ count }, 'referrals expired'),
        (error: unknown) => app.log.error({ err: error }, 'referral expiry sweep failed'),
      );
      return running;
    };
    app.addHook('onReady', async () => {
      await sweep();
      const seconds = options.config.referralExpirySweepSeconds;
      if (seconds > 0) timer = setInterval(sweep, seconds * 1000).unref();
    });
    app.addHook('onClose', async () => {
      clearInterval(timer);
      await running;
    });
  },
  { name: 'referral-workflow', dependencies: ['database', 'audit-log', 'idempotency'] },
);
