// Refuses requests while the service shuts down, and sheds load while PostgreSQL cannot serve it: a trivial query probes the database through the
// pool, and while it gets no answer in time (the server is down, or every connection is busy)
// requests are answered 503 with Retry-After at once instead of queueing for a connection.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import underPressure from '@fastify/under-pressure';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { retryAfterSeconds, serviceUnavailable } from '../lib/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Resolves once connections accepted before the service stopped listening have had time to send their request. */
    acceptedConnectionsSettled(): Promise<unknown>;
  }
}

/** Long enough for a client that has just connected to send its request, on any network. */
const acceptedConnectionGraceMs = 250;

export default fp(
  async (app, options: { config: Config }) => {
    // While the service closes, requests that still arrive on open connections are refused in the
    // API's own shape (Fastify's return503OnClosing answers plain JSON without Retry-After).
    let closing = false;
    let acceptedConnectionsSettled: Promise<unknown> = Promise.resolve();
    app.addHook('preClose', async () => {
      closing = true;
      if (!app.server.listening) return;
      // Stop accepting connections without closing the idle ones, which http.Server#close also
      // does: a connection accepted a moment ago has not sent its request yet, and closing it
      // resets a request nobody read (CI saw one). Given a moment, its request is read and
      // answered 503; Fastify's own close then ends what is still idle and waits for the rest.
      net.Server.prototype.close.call(app.server);
      acceptedConnectionsSettled = sleep(acceptedConnectionGraceMs);
    });
    // Awaited by the last preClose hook (app.ts), so that the other hooks (the webhook worker
    // stopping its claims) run at once rather than after this moment.
    app.decorate('acceptedConnectionsSettled', () => acceptedConnectionsSettled);
    app.addHook('onRequest', async () => {
      if (closing) throw serviceUnavailable('The service is shutting down; retry shortly');
    });
    // Also the answers to requests in flight when closing began: a keep-alive connection left
    // open would hold the shutdown until the client or the grace period gives up.
    app.addHook('onSend', async (_request, reply) => {
      if (closing) reply.header('connection', 'close');
    });

    const intervalMs = options.config.databaseTimeouts.probeIntervalMs;
    // The embedded database has no pool to run dry and no server to lose.
    if (app.database.driver !== 'postgres' || intervalMs === 0) return;

    // Each probe stands alone: one parked behind a dead connection must not keep the service
    // shedding after the database is back. While the pool is full they queue, one per interval.
    const databaseAnswers = async (): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<false>((resolve) => {
        timer = setTimeout(resolve, intervalMs, false);
      });
      try {
        // Past the connection gate: the probe asks the database itself, so that it sees the
        // database back even while the gate still fails calls fast.
        return await Promise.race([app.database.ping().then(() => true), deadline]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    };

    await app.register(underPressure, {
      healthCheck: databaseAnswers,
      healthCheckInterval: intervalMs,
      retryAfter: retryAfterSeconds,
      // Health routes answer for themselves: liveness is about the process, and readiness
      // reports the failed probe in its own shape.
      pressureHandler: async (request) => {
        if (request.url.startsWith('/health/')) return;
        throw serviceUnavailable('The database is not answering in time; nothing was changed, retry shortly');
      },
    });
  },
  { name: 'availability', dependencies: ['database', 'problem-details'] },
);
