// Idempotency-Key on every authenticated POST (SPEC §10): the first response for a caller's key is
// kept and replayed for a repeat with the same request; the same key with another request is 422.
// The token endpoints are left out: replaying a token response would hand out rotated refresh tokens.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import stringify from 'safe-stable-stringify';
import type { Config } from '../config.js';
import { conflict, UnprocessableError, validationFailed } from '../lib/errors.js';
import { auditContextOf, auditTargetOf } from '../modules/audit/audit-log.js';
import { IdempotencyRepository } from '../modules/idempotency/idempotency-repository.js';

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyClaim: { callerKey: string; key: string } | undefined;
  }
}

const headerName = 'idempotency-key';
const keyPattern = /^[\x21-\x7E]{1,255}$/;
const replayedHeaders = ['content-type', 'location', 'etag'];
// A claim this old without a response belongs to a request that died (e.g. a crashed process).
const abandonedClaimMs = 5 * 60_000;

const isIdempotentRoute = (method: string | string[], url: string) =>
  method === 'POST' && url.startsWith('/v1/') && !url.startsWith('/v1/auth/');

function requestHash(request: FastifyRequest): string {
  return createHash('sha256')
    .update(`${request.method} ${request.url}\n${stringify(request.body ?? null)}`)
    .digest('hex');
}

export default fp(
  async (app, options: { config: Config }) => {
    const repository = new IdempotencyRepository(app.db);
    const ttlMs = options.config.idempotencyKeyTtlHours * 3_600_000;
    app.decorateRequest('idempotencyClaim', undefined);

    // Expired records are skipped when met; this keeps the table from growing without end.
    if (options.config.role !== 'api') {
      const purge = () =>
        repository.purgeOlderThan(new Date(Date.now() - ttlMs)).catch((error: unknown) => app.log.error({ err: error }, 'idempotency purge failed'));
      let timer: NodeJS.Timeout | undefined;
      app.addHook('onReady', async () => {
        timer = setInterval(purge, 3_600_000).unref();
      });
      app.addHook('onClose', async () => clearInterval(timer));
    }

    // Documents the header on every POST it applies to.
    app.addHook('onRoute', (route) => {
      if (!isIdempotentRoute(route.method as string, route.url)) return;
      const headers = (route.schema?.headers ?? { type: 'object', properties: {} }) as { properties?: Record<string, unknown> };
      route.schema = {
        ...route.schema,
        headers: {
          ...headers,
          type: 'object',
          properties: {
            ...headers.properties,
            [headerName]: {
              type: 'string',
              maxLength: 255,
              description: `Makes the POST safe to retry: a repeat with the same key and body replays the first response (for ${options.config.idempotencyKeyTtlHours} h); the same key with another body is 422`,
            },
          },
        },
      };
    });

    app.addHook('preHandler', async (request, reply) => {
      const key = request.headers[headerName];
      if (key === undefined || !request.principal || !isIdempotentRoute(request.method, request.routeOptions.url ?? '')) return;
      if (typeof key !== 'string' || !keyPattern.test(key)) {
        throw validationFailed([{ field: `headers.${headerName}`, message: 'must be 1–255 visible ASCII characters' }]);
      }
      // Scoped to the caller, so one caller can never see another's replay.
      const claim = { callerKey: `${request.principal.kind}:${request.principal.id}`, key };
      const hash = requestHash(request);
      for (let attempt = 0; attempt < 2; attempt++) {
        if (await repository.claim({ ...claim, requestHash: hash, requestId: request.id })) {
          request.idempotencyClaim = claim;
          return;
        }
        const existing = await repository.find(claim);
        if (!existing) continue;
        const age = Date.now() - existing.createdAt.getTime();
        const stale = age > ttlMs || (existing.state === 'in_progress' && age > abandonedClaimMs);
        // The cutoff only matches this very record, never one a concurrent request has just made.
        if (stale && (await repository.releaseIfOlderThan({ ...claim, cutoff: new Date(existing.createdAt.getTime() + 1) }))) continue;
        if (existing.requestHash !== hash) {
          throw new UnprocessableError(`Idempotency-Key ${key} was used for a different request; use a new key for a new request`);
        }
        if (existing.state === 'in_progress') {
          const error = conflict('idempotency-in-progress', `A request with Idempotency-Key ${key} is still in progress; retry shortly`);
          error.extensions = { ...error.extensions, headers: { 'retry-after': '1' } };
          throw error;
        }
        // The replay shows the first response again (which may hold patient data): it is audited
        // against the same records as the request that made it.
        const targets = existing.requestId
          ? await app.auditLog.targetsOfRequest({ requestId: existing.requestId, actorId: request.principal.id, since: existing.createdAt })
          : [];
        const fallback = auditTargetOf(request);
        await app.auditLog.recordMany(
          auditContextOf(request),
          (targets.length > 0 ? targets : [fallback]).map((target) => ({
            action: 'idempotency.replay',
            outcome: 'success' as const,
            httpStatus: existing.statusCode!,
            resourceType: target.resourceType ?? undefined,
            resourceId: target.resourceId ?? undefined,
            patientId: target.patientId ?? undefined,
          })),
        );
        for (const [name, value] of Object.entries(existing.responseHeaders ?? {})) reply.header(name, value);
        return reply.code(existing.statusCode!).header('idempotent-replayed', 'true').send(existing.responseBody);
      }
    });

    app.addHook('onSend', async (request, reply, payload) => {
      const claim = request.idempotencyClaim;
      if (!claim) return payload;
      request.idempotencyClaim = undefined;
      // A failure of ours or a rate limit is not an answer to keep: the retry must run again.
      if (reply.statusCode >= 500 || reply.statusCode === 429) {
        await repository.release(claim);
        return payload;
      }
      const headers: Record<string, string> = {};
      for (const name of replayedHeaders) {
        const value = reply.getHeader(name);
        if (value !== undefined) headers[name] = String(value);
      }
      try {
        await repository.complete({ ...claim, statusCode: reply.statusCode, headers, body: typeof payload === 'string' ? payload : String(payload ?? '') });
      } catch (error) {
        // The change has committed: the client must hear that it succeeded. A repeat of the key
        // meets the unfinished claim and is told to retry later, rather than made a second time.
        request.log.warn({ code: (error as { code?: string }).code }, 'idempotent response could not be kept');
      }
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['database', 'audit-log', 'authentication'] },
);
