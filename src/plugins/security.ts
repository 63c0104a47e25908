// HTTP hardening: security headers, per-caller rate limits (shared through Redis when REDIS_URL is
// set), form bodies for the OAuth token endpoint.
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { RateLimitedError } from '../lib/errors.js';
import { RateLimitScopeWatch, sharedOrLocalStore, type RateLimitScope } from './shared-rate-limits.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Where rate-limit counts are kept right now: shared through Redis, or this process's own. */
    rateLimitScope: () => RateLimitScope;
  }
}

export default fp(
  async (app, options: { config: Config }) => {
    await app.register(fastifyHelmet, { global: true });
    await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
    // The API speaks JSON (and forms for the token endpoint); anything else is 415, not a confusing 400.
    app.removeContentTypeParser('text/plain');
    const store = await sharedStoreOf(app, options.config.rateLimit);
    await app.register(fastifyRateLimit, {
      ...(store ? { store } : {}),
      global: true,
      max: options.config.rateLimit.perCallerPerMinute,
      timeWindow: 60_000,
      // A route-level onRequest hook runs after the global one that authenticates (authentication.ts)
      // and before it authorizes: the limit follows the caller rather than a shared office IP, and
      // counts every request, the ones refused with 401, 403 or 400 too (unauthenticated ones by address).
      hook: 'onRequest',
      keyGenerator: (request) => request.principal?.id ?? request.ip,
      errorResponseBuilder: (_request, context) => new RateLimitedError(context.max, Math.ceil(context.ttl / 1000)),
    });
  },
  { name: 'security' },
);

/**
 * The Redis-backed store, or none without REDIS_URL. The service starts whether or not Redis
 * answers: a command never waits for a connection (no offline queue) and fails within a quarter
 * second, and the count falls back to this process meanwhile.
 */
async function sharedStoreOf(app: FastifyInstance, { redisUrl, redisKeyPrefix }: Config['rateLimit']) {
  if (!redisUrl) {
    app.decorate('rateLimitScope', () => 'per-process' as const);
    return undefined;
  }
  const { Redis } = await import('ioredis');
  const redis = new Redis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    commandTimeout: 250,
    // Reconnect soon after Redis is back, but never faster than every half second.
    retryStrategy: (attempts) => Math.min(100 * attempts, 500),
    connectionName: 'massage-referral-network',
  });
  const watch = new RateLimitScopeWatch(redis, app.log);
  app.decorate('rateLimitScope', () => watch.scope);
  app.addHook('onClose', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  return sharedOrLocalStore(redis, watch, redisKeyPrefix);
}
