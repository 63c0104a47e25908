// HTTP hardening: security headers, per-caller rate limits, form bodies for the OAuth token endpoint.
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { RateLimitedError } from '../lib/errors.js';

export default fp(
  async (app, options: { config: Config }) => {
    await app.register(fastifyHelmet, { global: true });
    await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
    // The API speaks JSON (and forms for the token endpoint); anything else is 415, not a confusing 400.
    app.removeContentTypeParser('text/plain');
    await app.register(fastifyRateLimit, {
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
