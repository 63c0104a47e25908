// Idempotency-Key on every authenticated POST (SPEC §10): the first response for a caller's key is
// kept and replayed for a repeat with the same request; the same key with another request is 422.
// The token endpoints are left out: replaying a token response would hand out rotated refresh tokens.
// A replay never shows a secret again (a route names its shown-once fields; they are not kept),
// and shows nothing the caller may no longer see (the records it is about are checked again).
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import stringify from 'safe-stable-stringify';
import type { Config } from '../../config.js';
import { conflict, UnprocessableError, validationFailed } from '../../lib/errors.js';
import { auditContextOf, auditTargetOf } from '../audit/audit-log.js';
import { apiPrefix, isApiRoute } from '../../lib/api-prefix.js';
import { IdempotencyRepository } from './idempotency-repository.js';
import { VisibilityChecks } from './visibility-checks.js';

type IdempotencyRecord = NonNullable<Awaited<ReturnType<IdempotencyRepository['find']>>>;

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyClaim: { callerKey: string; key: string } | undefined;
    /** A streamed route's key already used: compared (and replayed) once its body has been read. */
    idempotencyEarlier: { key: string; record: IdempotencyRecord } | undefined;
  }
  interface FastifyInstance {
    /** Modules register who may see their records; a replay consults them. */
    visibilityChecks: VisibilityChecks;
    /**
     * For a route whose body streams (config.streamedBody): once the body is read, its digest decides
     * what the Idempotency-Key means. Returns true when the answer was a replay (sent; do nothing
     * more); throws 422 for another body under the key and 409 while the first is still running.
     */
    settleStreamedIdempotency(request: FastifyRequest, reply: FastifyReply, bodyDigest: string, beforeReplay: () => Promise<void>): Promise<boolean>;
  }
  interface FastifyContextConfig {
    /** Top-level response fields shown only in the first answer (secrets): never kept, so never replayed. */
    shownOnce?: readonly string[];
    /**
     * The body streams to the handler unread (a multipart upload), so a repeat of the key cannot be
     * compared with the first request before the handler runs: the handler reads it, then calls
     * app.settleStreamedIdempotency with its digest.
     */
    streamedBody?: true;
  }
}

const headerName = 'idempotency-key';
const keyPattern = /^[\x21-\x7E]{1,255}$/;
// Cache-Control is not kept: every answer gets no-store anyway (response-headers.ts).
const replayedHeaders = ['content-type', 'location', 'etag'];
// A claim this old without a response belongs to a request that died (e.g. a crashed process).
const abandonedClaimMs = 5 * 60_000;

const isIdempotentRoute = (method: string | string[], url: string) =>
  method === 'POST' && isApiRoute(url) && !url.startsWith(`${apiPrefix}/auth/`);

/** The body to keep for a replay: without the shown-once fields; undefined when they cannot be taken out. */
function keptBody(body: string, shownOnce: readonly string[] | undefined): string | undefined {
  if (!shownOnce?.length) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const kept = { ...(parsed as Record<string, unknown>) };
  for (const field of shownOnce) delete kept[field];
  return JSON.stringify(kept);
}

function requestHash(request: FastifyRequest, bodyDigest?: string): string {
  return createHash('sha256')
    .update(`${request.method} ${request.url}\n${bodyDigest === undefined ? stringify(request.body ?? null) : `streamed ${bodyDigest}`}`)
    .digest('hex');
}

/** What a streamed request's key holds until its body has been read and hashed. */
const unreadBody = 'streamed body not yet read';

export default fp(
  async (app, options: { config: Config }) => {
    const repository = new IdempotencyRepository(app.db);
    const ttlMs = options.config.idempotencyKeyTtlHours * 3_600_000;
    app.decorateRequest('idempotencyClaim', undefined);
    app.decorateRequest('idempotencyEarlier', undefined);
    app.decorate('visibilityChecks', new VisibilityChecks());

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

    // A 503 usually means the database is away, and then the claim cannot be released either: kept,
    // every retry of the key would be told 409 "in progress" until the claim is abandoned (minutes),
    // long after the database is back (the scale-out test saw it across a PostgreSQL restart).
    // The release is tried again in the background until it succeeds or the claim would count as
    // abandoned anyway; a retry meanwhile is told 409 with Retry-After, as for a running request.
    const pendingReleases = new Set<NodeJS.Timeout>();
    const releaseRetryMs = 500;
    async function releaseOrRetryLater(request: FastifyRequest, claim: { callerKey: string; key: string }): Promise<void> {
      const ownClaim = { ...claim, requestId: request.id };
      try {
        await repository.release(ownClaim);
      } catch {
        request.log.warn('idempotency claim not released (database unavailable); retrying in the background');
        const giveUpAt = Date.now() + abandonedClaimMs;
        const retry = () => {
          const timer = setTimeout(() => {
            pendingReleases.delete(timer);
            repository.release(ownClaim).catch(() => (Date.now() < giveUpAt && !closing ? retry() : undefined));
          }, releaseRetryMs);
          pendingReleases.add(timer);
        };
        retry();
      }
    }
    let closing = false;
    app.addHook('onClose', async () => {
      closing = true;
      for (const timer of pendingReleases) clearTimeout(timer);
    });

    // Responses kept before shown-once fields were left out still hold them: taken out at start.
    const shownOnceFields = new Set<string>();
    app.addHook('onReady', async () => {
      const scrubbed = await repository.removeResponseFields([...shownOnceFields]);
      if (scrubbed > 0) app.log.info({ records: scrubbed }, 'secrets taken out of kept idempotent responses');
    });

    // Documents the header on every POST it applies to.
    app.addHook('onRoute', (route) => {
      for (const field of route.config?.shownOnce ?? []) shownOnceFields.add(field);
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

    /**
     * A repeat of a key: 422 for another request, 409 while the first is running, else the first
     * answer again — only to a caller who may still see the records it is about (a lost one answers
     * the 404 a fresh request would, audited as denied), and audited against the same records.
     */
    async function answerRepeat(request: FastifyRequest, reply: FastifyReply, key: string, existing: IdempotencyRecord, hash: string, beforeReplay?: () => Promise<void>) {
      if (existing.requestHash !== hash) {
        throw new UnprocessableError(`Idempotency-Key ${key} was used for a different request; use a new key for a new request`);
      }
      if (existing.state === 'in_progress') {
        throw conflict('idempotency-in-progress', `A request with Idempotency-Key ${key} is still in progress; retry shortly`, {
          headers: { 'retry-after': '1' },
        });
      }
      const principal = request.principal!;
      const targets = existing.requestId
        ? await app.auditLog.targetsOfRequest({ requestId: existing.requestId, actorId: principal.id, since: existing.createdAt })
        : [];
      const fallback = auditTargetOf(request);
      // A kept error answer shows no record, so it needs no check.
      if (existing.statusCode! < 400) await app.visibilityChecks.assertVisible(principal, [fallback, ...targets]);
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
      await beforeReplay?.();
      for (const [name, value] of Object.entries(existing.responseHeaders ?? {})) reply.header(name, value);
      // Taken out again here too: an instance of an older version may have kept it meanwhile.
      const body = keptBody(existing.responseBody ?? '', request.routeOptions.config.shownOnce) ?? existing.responseBody;
      return reply.code(existing.statusCode!).header('idempotent-replayed', 'true').send(body);
    }

    app.decorate('settleStreamedIdempotency', async (request: FastifyRequest, reply: FastifyReply, bodyDigest: string, beforeReplay: () => Promise<void>) => {
      const hash = requestHash(request, bodyDigest);
      if (request.idempotencyClaim) {
        await repository.bindRequestHash({ ...request.idempotencyClaim, requestHash: hash });
        return false;
      }
      const earlier = request.idempotencyEarlier;
      if (!earlier) return false;
      // The first request may have bound its body since the key was looked up.
      const record = (await repository.find({ callerKey: earlier.record.callerKey, key: earlier.key })) ?? earlier.record;
      // Not bound to a body: the first request is still reading it (in progress: 409), or was
      // refused before it had read it whole (that refusal is the answer to the key).
      await answerRepeat(request, reply, earlier.key, record, record.requestHash === unreadBody ? unreadBody : hash, beforeReplay);
      return true;
    });

    app.addHook('preHandler', async (request, reply) => {
      const key = request.headers[headerName];
      if (key === undefined || !request.principal || !isIdempotentRoute(request.method, request.routeOptions.url ?? '')) return;
      if (typeof key !== 'string' || !keyPattern.test(key)) {
        throw validationFailed([{ field: `headers.${headerName}`, message: 'must be 1–255 visible ASCII characters' }]);
      }
      // Scoped to the caller, so one caller can never see another's replay.
      const claim = { callerKey: `${request.principal.kind}:${request.principal.id}`, key };
      const hash = request.routeOptions.config.streamedBody ? unreadBody : requestHash(request);
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
        if (request.routeOptions.config.streamedBody) {
          request.idempotencyEarlier = { key, record: existing };
          return;
        }
        return answerRepeat(request, reply, key, existing, hash);
      }
    });

    app.addHook('onSend', async (request, reply, payload) => {
      const claim = request.idempotencyClaim;
      if (!claim) return payload;
      request.idempotencyClaim = undefined;
      // A failure of ours or a rate limit is not an answer to keep: the retry must run again.
      if (reply.statusCode >= 500 || reply.statusCode === 429) {
        await releaseOrRetryLater(request, claim);
        return payload;
      }
      const headers: Record<string, string> = {};
      for (const name of replayedHeaders) {
        const value = reply.getHeader(name);
        if (value !== undefined) headers[name] = String(value);
      }
      const body = keptBody(typeof payload === 'string' ? payload : String(payload ?? ''), request.routeOptions.config.shownOnce);
      if (body === undefined) {
        // Keeping it would keep the secret: the key is released instead, and a retry runs afresh.
        request.log.warn('a response with shown-once fields was not a JSON object; not kept for replay');
        await releaseOrRetryLater(request, claim);
        return payload;
      }
      try {
        await repository.complete({ ...claim, statusCode: reply.statusCode, headers, body });
      } catch (error) {
        // The change has committed: the client must hear that it succeeded. A repeat of the key
        // meets the unfinished claim and is told to retry later, rather than made a second time.
        request.log.warn({ code: (error as { code?: string }).code }, 'idempotent response could not be kept');
      }
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['database', 'audit-log', 'auth'] },
);
