// Liveness and readiness for orchestrators; public and outside /v1.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { component } from '../../lib/components.js';
import { retryAfterSeconds } from '../../lib/errors.js';

const HealthStatus = component('HealthStatus', Type.Object({
  status: Type.Enum(['ok', 'unavailable']),
  checks: Type.Optional(Type.Object({ database: Type.Boolean(), migrations: Type.Boolean() })),
  details: Type.Optional(
    Type.Object(
      {
        auditSequencerLagSeconds: Type.Optional(
          Type.Number({ minimum: 0, description: 'How long the oldest audit event not yet in a signed checkpoint has waited (0: none waits)' }),
        ),
        rateLimits: Type.Optional(
          Type.Enum(['shared', 'per-process'], {
            description: 'Where rate-limit counts are kept: shared by every process through Redis, or per process (no REDIS_URL, or Redis unreachable)',
          }),
        ),
      },
      { description: 'Figures other modules report; informative, they never make the service unready' },
    ),
  ),
}));

/** Figures a module reports in readiness details, by name. */
export type ReadinessDetails = Map<string, () => Promise<number>>;

const healthRoutes: FastifyPluginAsyncTypebox<{ details: ReadinessDetails }> = async (app, { details: reporters }) => {
  app.get('/health/live', {
    config: { policy: 'public' },
    schema: {
      tags: ['operations'],
      operationId: 'live',
      summary: 'The process is up',
      response: { 200: HealthStatus },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/health/ready', {
    config: { policy: 'public' },
    schema: {
      tags: ['operations'],
      operationId: 'ready',
      summary: 'The database is reachable and every migration is applied',
      response: { 200: HealthStatus, 503: HealthStatus },
    },
  }, async (_request, reply) => {
    // The load-shedding probe already knows the database is not answering; don't queue behind it.
    if (app.hasDecorator('isUnderPressure') && app.isUnderPressure()) {
      return reply.code(503).header('retry-after', String(retryAfterSeconds)).send({ status: 'unavailable' });
    }
    let database = false;
    let migrations = false;
    try {
      migrations = await app.database.migrationsApplied();
      database = true;
    } catch (error) {
      app.log.warn({ err: error }, 'readiness check could not reach the database');
    }
    const ready = database && migrations;
    const details: Record<string, number | string> = {};
    if (ready) {
      for (const [name, report] of reporters) {
        try {
          details[name] = await report();
        } catch (error) {
          app.log.warn({ err: error, detail: name }, 'a readiness detail could not be read');
        }
      }
    }
    if (app.hasDecorator('rateLimitScope')) details.rateLimits = app.rateLimitScope();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: { database, migrations }, ...(ready ? { details } : {}) });
  });
};

export default healthRoutes;
