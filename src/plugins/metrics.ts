// Prometheus metrics (prom-client) on a port of their own (METRICS_PORT), apart from the API: no
// token, rate limit or audit applies there, and the port is not published with the API's. Every
// process serves its own (API and worker alike); modules add the figures they own through
// app.metrics.gauge.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config.js';

export interface Metrics {
  registry: Registry;
  /** A gauge read when Prometheus scrapes: `read` answers its value then. */
  gauge(options: { name: string; help: string; read: () => Promise<number> }): void;
  /** Where the metrics server listens, once it does (tests listen on port 0). */
  address(): AddressInfo | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

// Latencies from a millisecond to ten seconds: the API's answers, and the pool's waits.
const secondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export default fp(
  async (app, options: { config: Config }) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    let server: Server | undefined;
    app.decorate('metrics', {
      registry,
      gauge: ({ name, help, read }) => {
        new Gauge({
          name,
          help,
          registers: [registry],
          async collect() {
            this.set(await read());
          },
        });
      },
      address: () => (server?.address() as AddressInfo | null) ?? undefined,
    } satisfies Metrics);

    const requests = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to answer a request, by method, route (its template: no ids) and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: secondsBuckets,
      registers: [registry],
    });
    const refusals = new Counter({
      name: 'rate_limit_refusals_total',
      help: 'Requests refused with 429 for being over a rate limit, by route',
      labelNames: ['route'],
      registers: [registry],
    });
    app.addHook('onResponse', async (request, reply) => {
      // Unmatched paths are one label, not one per path a scanner tries.
      const route = request.routeOptions.url ?? 'unmatched';
      requests.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
      if (reply.statusCode === 429) refusals.inc({ route });
    });

    const poolWaits = new Histogram({
      name: 'db_pool_wait_seconds',
      help: 'Time a statement or transaction waited for a free PostgreSQL connection',
      buckets: secondsBuckets,
      registers: [registry],
    });
    app.database.onPoolWait((seconds) => poolWaits.observe(seconds));

    const { port, host } = options.config.metrics;
    if (port === undefined) return;
    app.addHook('onReady', async () => {
      server = createServer((request, response) => {
        if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
          response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
          return;
        }
        registry.metrics().then(
          (body) => response.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(body),
          (error: unknown) => {
            app.log.error({ err: error }, 'collecting metrics failed');
            response.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      app.log.info({ port: (server.address() as AddressInfo).port, host }, 'metrics listening');
    });
    app.addHook('onClose', async () => {
      if (server) await new Promise((resolve) => server!.close(resolve));
    });
  },
  { name: 'metrics', dependencies: ['database'] },
);
