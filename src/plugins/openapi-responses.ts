// What every operation of the OpenAPI document declares besides its own shapes: the statuses and
// headers the shared machinery (authentication, rate limits, idempotency, load shedding, body
// parsing) answers with on every route, generated from the route's features rather than written per
// route, and the shared headers as components.
import { apiPrefix, isApiRoute, isFhirRoute } from '../lib/api-prefix.js';
import { ResponseHeaders, type ResponseHeaderName } from '../lib/schemas.js';
import { operationsOf } from './openapi-operations.js';
import { problemContentType } from './problem-details.js';

export type Json = Record<string, any>;
type HeaderSet = Set<ResponseHeaderName>;

/** Methods Fastify reads a body for: any of them can be too large (413) or of a type the API does not take (415). */
const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** The OAuth token endpoint: public, and answering by RFC 6749's rules (no-store with pragma, invalid_client as 401). */
const tokenEndpoint = `${apiPrefix}/auth/token`;

const problemOf = (description: string) => ({
  description,
  content: { [problemContentType]: { schema: { $ref: '#/components/schemas/Problem' } } },
});
/** The FHIR façade refuses with OperationOutcomes, of the same statuses and meaning. */
const outcomeOf = (description: string) => ({
  description,
  content: { 'application/fhir+json': { schema: { $ref: '#/components/schemas/OperationOutcome' } } },
});

/** The headers declared inline, as @fastify/swagger reads them from a response schema; transformObject turns each into a $ref. */
const headerSchemas = (names: HeaderSet) =>
  Object.fromEntries([...names].sort().map((name) => [name, { ...ResponseHeaders[name].schema, description: ResponseHeaders[name].description }]));

/** A response schema (TypeBox, or an OpenAPI response object for problems) with the headers it may carry, besides any the route declares itself. */
function withHeaders(response: unknown, names: HeaderSet): Json {
  const own = Object.fromEntries(Object.entries(((response as Json).headers ?? {}) as Json).map(([name, header]) => [name.toLowerCase(), header]));
  return { ...(response as Json), headers: { ...own, ...headerSchemas(names) } };
}

/** A 2xx body of a versioned resource: the route sends the version as its ETag (lib/etag.ts). */
const carriesVersion = (schema: unknown) => Boolean((schema as Json | undefined)?.properties?.version);
/** Whether a request schema names a record by its id (a uuid), which may be missing or not visible to the caller. */
function namesRecord(schema: unknown, depth = 0): boolean {
  if (depth > 16 || typeof schema !== 'object' || schema === null) return false;
  if ((schema as Json).format === 'uuid') return true;
  return Object.values(schema as Json).some((value) => namesRecord(value, depth + 1));
}
/** A resource served in more than one format (JSON or PDF) by the Accept header: any other is refused with 406. */
const servedInFormats = (schema: Json | undefined) => Object.keys(((schema?.response as Json | undefined)?.[200]?.content ?? {}) as Json).length > 1;
/** A body that is not JSON (the NDJSON audit export) is a download, sent as an attachment. */
const isDownload = (response: unknown) => Object.keys(((response as Json).content ?? {}) as Json).some((mediaType) => !/[/+]json$/.test(mediaType));

/**
 * Every response the route can give and every header each may carry, from the route's features:
 * the shared machinery (authentication, rate limits, idempotency, load shedding, body parsing)
 * answers the same way on every route, so the declarations are generated here, not written per route.
 */
export function declaredResponses(route: { method: string | string[]; url: string; config?: Json }, schema: Json | undefined): Record<string, Json> {
  const { url } = route;
  const method = String(route.method);
  const problemResponse = isFhirRoute(url) ? outcomeOf : problemOf;
  const isApi = isApiRoute(url);
  const isPublic = route.config?.policy === 'public';
  const isTokenEndpoint = url === tokenEndpoint;
  const isChange = isApi && (method === 'POST' || method === 'PATCH' || method === 'PUT');
  const requestHeaders = (schema?.headers as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
  const takesIfMatch = Boolean(requestHeaders['if-match']);
  const takesIdempotencyKey = Boolean(requestHeaders['idempotency-key']);

  const responses: Record<string, unknown> = {
    ...(schema?.response as Record<string, unknown> | undefined),
    ...(isApi ? { 400: problemResponse('Invalid request: the errors list names each offending field') } : {}),
    ...(isTokenEndpoint
      ? { 400: problemResponse('RFC 6749 §5.2 error (the error member): invalid_request, invalid_grant (with Retry-After while sign-in is throttled), invalid_scope, or an invalid body') }
      : {}),
    ...(isTokenEndpoint ? { 401: problemResponse('invalid_client: the API client\'s secret or client assertion is wrong, used before, or of a revoked client (WWW-Authenticate: Basic when a secret came as HTTP Basic)') } : {}),
    ...(isPublic ? {} : { 401: problemResponse('Missing, invalid or expired access token') }),
    ...(isPublic ? {} : { 403: problemResponse('The caller\'s role or scopes do not allow this operation') }),
    ...(url.includes(':') || namesRecord(schema?.body) || namesRecord(schema?.querystring)
      ? { 404: problemResponse('Not found, or not visible to the caller (a record the path, query or body names)') }
      : {}),
    ...(isChange && !isPublic ? { 409: problemResponse('Conflicts with the current state (the code member says which), or the same Idempotency-Key is still in progress (with Retry-After)') } : {}),
    ...(takesIfMatch ? { 412: problemResponse('If-Match names a version that is no longer current') } : {}),
    // A refusal of the route's own, e.g. a proof asked for before its event is in a checkpoint.
    ...Object.fromEntries(Object.entries((route.config?.ownProblems ?? {}) as Json).map(([status, { description }]) => [status, problemResponse(description)])),
    ...(route.config?.streamedBody ? { 408: problemResponse('The upload did not arrive whole in time (upload-too-slow); nothing was kept') } : {}),
    ...(url.includes(':') ? { 414: problemResponse('A path segment is longer than the service takes') } : {}),
    ...(bodyMethods.has(method) ? { 413: problemResponse('The request body is larger than the service takes') } : {}),
    ...(bodyMethods.has(method) ? { 415: problemResponse('The request body is of a media type this operation does not take') } : {}),
    ...(takesIdempotencyKey ? { 422: problemResponse('The Idempotency-Key was already used with a different request') } : {}),
    ...(servedInFormats(schema) || isFhirRoute(url) ? { 406: problemResponse('The Accept header (or _format) asks for none of the formats the resource is served in') } : {}),
    429: problemResponse('Rate limit exceeded; see Retry-After'),
    500: problemResponse('Unexpected error; the cause is logged, never returned'),
    503: problemResponse('The database is not answering in time, or the service is shutting down; nothing was changed, retry after Retry-After'),
  };
  // A route that answers 503 in its own shape (readiness) still answers the shutdown refusal as a problem.
  const own503 = (schema?.response as Json | undefined)?.[503];
  if (own503 && !own503.content) {
    responses[503] = {
      description: own503.description ?? 'Not ready',
      content: { 'application/json': { schema: own503 }, [problemContentType]: { schema: { $ref: '#/components/schemas/Problem' } } },
    };
  }

  const rateLimited = route.config?.rateLimit !== false;
  return Object.fromEntries(
    Object.entries(responses).map(([status, response]) => {
      const code = Number(status);
      const headers: HeaderSet = new Set(['x-request-id', 'cache-control']);
      if (rateLimited) for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'] as const) headers.add(name);
      if (isTokenEndpoint) headers.add('pragma');
      if (code === 401) headers.add('www-authenticate');
      // Throttled sign-in (400 invalid_grant), rate limit, load shedding, a key still in progress.
      if (code === 429 || code === 503 || (isTokenEndpoint && code === 400) || (takesIdempotencyKey && code === 409)) headers.add('retry-after');
      if ((route.config?.ownProblems as Json | undefined)?.[status]?.retryAfter) headers.add('retry-after');
      if (code >= 200 && code < 300 && carriesVersion(response)) headers.add('etag');
      if (code >= 200 && code < 300 && isDownload(response)) headers.add('content-disposition');
      if (code === 201) headers.add('location');
      // A kept answer is replayed with its own status. Refusals before the key is claimed (path too
      // long, body too large or of the wrong type), rate limits and failures of ours are never kept.
      if (takesIdempotencyKey && code < 500 && ![413, 414, 415, 429].includes(code)) headers.add('idempotent-replayed');
      return [status, withHeaders(response, headers)];
    }),
  );
}

/** Replaces each inline header the catalogue knows by a $ref to its component, so the document stays readable. */
export function referToHeaderComponents(document: Json): Json {
  for (const operation of operationsOf(document)) {
    for (const response of Object.values(operation.responses as Record<string, Json>)) {
      if (!response.headers) continue;
      response.headers = Object.fromEntries(
        Object.entries(response.headers as Json).map(([name, header]) => {
          const known = ResponseHeaders[name.toLowerCase() as ResponseHeaderName];
          return known ? [name.toLowerCase(), { $ref: `#/components/headers/${known.component}` }] : [name, header];
        }),
      );
    }
  }
  document.components.headers = Object.fromEntries(
    Object.values(ResponseHeaders).map(({ component, description, schema }) => [component, { description, schema: { ...schema } }]),
  );
  return document;
}

