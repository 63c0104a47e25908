// The OpenAPI 3.1 document, generated from the route schemas, at /openapi.json and browsable at /docs.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { Problem } from '../lib/schemas.js';
import { problemContentType } from './problem-details.js';

const problemResponse = (description: string) => ({
  description,
  content: { [problemContentType]: { schema: { $ref: '#/components/schemas/Problem' } } },
});

export default fp(
  async (app) => {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Massage referral network API',
          version: '1.0.0',
          description:
            'Physicians prescribe medical massage; licensed massage therapists accept, treat and report progress. ' +
            'Every error is application/problem+json (RFC 9457). Every /v1 route but the token endpoint needs a bearer access token.',
        },
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          },
          schemas: { Problem: { ...Problem, $id: undefined } as never },
        },
        tags: [
          { name: 'auth', description: 'Tokens and the current caller' },
          { name: 'network', description: 'Organizations, users, API clients and the therapist directory' },
          { name: 'patients', description: 'Patients of physician offices' },
          { name: 'referrals', description: 'Massage prescriptions: lifecycle, history and the sync feed' },
          { name: 'visit notes', description: 'Progress reports (SOAP visit notes) and their addenda' },
          { name: 'messages', description: 'One thread per referral between office and therapist side' },
          { name: 'audit', description: 'The tamper-evident audit trail' },
          { name: 'webhooks', description: 'Signed event delivery to partner EHRs: endpoints, deliveries, attempts' },
          { name: 'operations', description: 'Health and documentation' },
        ],
      },
      // Every route answers errors the same way; declaring them here keeps each route's schema about its own shapes.
      transform: ({ schema, url, route }) => {
        const isPublic = route.config?.policy === 'public';
        const isChange = url.startsWith('/v1') && (route.method === 'POST' || route.method === 'PATCH');
        const takesIfMatch = Boolean((schema?.headers as { properties?: Record<string, unknown> } | undefined)?.properties?.['if-match']);
        const takesIdempotencyKey = Boolean((schema?.headers as { properties?: Record<string, unknown> } | undefined)?.properties?.['idempotency-key']);
        const responses = {
          ...(schema?.response as Record<string, unknown> | undefined),
          ...(url.startsWith('/v1') ? { 400: problemResponse('Invalid request: the errors list names each offending field') } : {}),
          ...(isPublic ? {} : { 401: problemResponse('Missing, invalid or expired access token') }),
          ...(isPublic ? {} : { 403: problemResponse('The caller\'s role or scopes do not allow this operation') }),
          ...(url.includes(':') ? { 404: problemResponse('Not found, or not visible to the caller') } : {}),
          ...(isChange && !isPublic ? { 409: problemResponse('Conflicts with the current state (the code member says which), or the same Idempotency-Key is still in progress') } : {}),
          ...(takesIfMatch ? { 412: problemResponse('If-Match names a version that is no longer current') } : {}),
          ...(takesIdempotencyKey ? { 422: problemResponse('The Idempotency-Key was already used with a different request') } : {}),
          429: problemResponse('Rate limit exceeded; see Retry-After'),
          500: problemResponse('Unexpected error; the cause is logged, never returned'),
        };
        return { schema: { ...schema, response: responses }, url };
      },
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true });
    app.get('/openapi.json', { config: { policy: 'public' }, schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'openapi' },
);
