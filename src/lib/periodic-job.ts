// Timed work of a worker process (expiring referrals, license notices): run once at start, so a
// restart catches up, then on a timer; a run never overlaps the last, and closing waits for it.
// Each job is safe on several workers at once (it locks or claims what it changes).
import type { FastifyInstance } from 'fastify';

export interface PeriodicJob {
  /** Names the job in logs. */
  name: string;
  /** 0: only at start. */
  everySeconds: number;
  /** Does the work; returns how many records it handled, for the log. */
  run: () => Promise<number>;
  /** Whether a run that handled records says so in the log (not for a job that runs many times a second). */
  logsRuns?: boolean;
}

export function schedulePeriodicJob(app: FastifyInstance, job: PeriodicJob): void {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const tick = () => {
    if (busy) return running;
    busy = true;
    running = job.run().then(
      (count) => count > 0 && job.logsRuns !== false && app.log.info({ job: job.name, count }, 'periodic job done'),
      (error: unknown) => app.log.error({ err: error, job: job.name }, 'periodic job failed'),
    ).finally(() => {
      busy = false;
    });
    return running;
  };
  app.addHook('onReady', async () => {
    await tick();
    if (job.everySeconds > 0) timer = setInterval(tick, job.everySeconds * 1000).unref();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await running;
  });
}
