// Headers every answer of the API carries, set once for all routes rather than route by route.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/**
 * The API's answers hold patient data, tokens and secrets, and its errors tell who exists: no cache
 * (browser, proxy or CDN) may keep any of them. onSend, because it runs for every answer, also those
 * refused before routing, by the not-found handler, by the error handler and idempotency replays.
 * A route cannot weaken it: the value is set last, over whatever the route set.
 */
export const noStore = 'no-store';

/** The documentation is public and the same for everyone; it may be cached like any static page. */
const isDocumentation = (request: FastifyRequest) => {
  const route = request.routeOptions.url;
  return route !== undefined && (route === '/openapi.json' || route === '/docs' || route.startsWith('/docs/'));
};

export default fp(
  async (app) => {
    app.addHook('onSend', async (request, reply, payload) => {
      if (!isDocumentation(request)) reply.header('cache-control', noStore);
      return payload;
    });
  },
  { name: 'response-headers' },
);
