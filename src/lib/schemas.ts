// Schema pieces shared by several routes; each schema has a static type of the same name.
import { Type, type Static, type TSchema } from 'typebox';
import { component, componentKeyword } from './components.js';
import { npiPattern } from './vocabulary.js';

export const Uuid = Type.String({ format: 'uuid', description: 'Identifier (UUID)' });
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export type IdParams = Static<typeof IdParams>;

export const IsoDate = Type.String({ format: 'date', description: 'Calendar date, YYYY-MM-DD', examples: ['2026-12-01'] });
export const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time in UTC' });

export const Email = Type.String({ format: 'email', maxLength: 254 });
export const Password = Type.String({ minLength: 12, maxLength: 200, description: 'At least 12 characters' });

/** NPI: ten digits; the Luhn check is applied by the server and named in the error. */
export const Npi = Type.String({ pattern: npiPattern.source, description: 'National Provider Identifier, 10 digits with a valid check digit' });

export const Location = component('Location', Type.Object(
  {
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lng: Type.Number({ minimum: -180, maximum: 180 }),
  },
  { additionalProperties: false },
));
export type Location = Static<typeof Location>;

export const Address = component('Address', Type.Object(
  {
    line1: Type.String({ minLength: 1, maxLength: 200 }),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: Type.String({ minLength: 1, maxLength: 100 }),
    state: Type.String({ minLength: 2, maxLength: 50 }),
    postalCode: Type.String({ minLength: 3, maxLength: 20 }),
    country: Type.Optional(Type.String({ minLength: 2, maxLength: 2, description: 'ISO 3166-1 alpha-2' })),
  },
  { additionalProperties: false },
));
export type Address = Static<typeof Address>;

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String(),
    requestId: Type.String(),
    error: Type.Optional(Type.String({ description: 'OAuth 2.0 error code (token endpoint only)' })),
    code: Type.Optional(Type.String({ description: 'Machine-readable reason, e.g. illegal-transition, visits-exhausted, referral-expired' })),
    currentStatus: Type.Optional(Type.String({ description: 'On an illegal transition: the status the referral is in' })),
    allowedMoves: Type.Optional(Type.Array(Type.String(), { description: 'On an illegal transition: the moves allowed from the current status' })),
    currentVersion: Type.Optional(Type.Integer({ description: 'On 412: the current version of the resource' })),
    reasons: Type.Optional(Type.Array(Type.String(), { description: 'On license-invalid: expired, unverified, or both' })),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          field: Type.String({ description: 'The offending field, e.g. patient.birthDate or query.limit' }),
          message: Type.String(),
        }),
      ),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
);
export type Problem = Static<typeof Problem>;

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size (at most 200)' }),
  cursor: Type.Optional(Type.String({ maxLength: 512, description: 'nextCursor from the previous page' })),
};

/** A page of a list; of a named item, named after it (`Patient` → `PatientPage`). */
export function Page<T extends TSchema>(item: T) {
  const page = Type.Object({
    data: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' }),
  });
  const itemName = (item as Record<string, unknown>)[componentKeyword];
  return typeof itemName === 'string' ? component(`${itemName}Page`, page) : page;
}

/**
 * The response headers the API answers with, each described once: the OpenAPI document declares
 * them as components and refers to them from every response that may carry them.
 */
export const ResponseHeaders = {
  'x-request-id': {
    component: 'RequestId',
    description: 'The id of this request in the service\'s logs and audit trail: the caller\'s own x-request-id when it is 1–128 of A–Z a–z 0–9 . _ : -, else a new UUID',
    schema: Type.String({ maxLength: 128 }),
  },
  'cache-control': {
    component: 'CacheControl',
    description: 'Always no-store: answers hold patient data, tokens and secrets, which no cache may keep',
    schema: Type.String({ examples: ['no-store'] }),
  },
  pragma: {
    component: 'Pragma',
    description: 'no-cache, for HTTP/1.0 caches (RFC 6749 §5.1)',
    schema: Type.String({ examples: ['no-cache'] }),
  },
  'x-ratelimit-limit': {
    component: 'RateLimitLimit',
    description: 'Requests the caller may make in the current window',
    schema: Type.Integer({ minimum: 0 }),
  },
  'x-ratelimit-remaining': {
    component: 'RateLimitRemaining',
    description: 'Requests left in the current window',
    schema: Type.Integer({ minimum: 0 }),
  },
  'x-ratelimit-reset': {
    component: 'RateLimitReset',
    description: 'Seconds until the current window ends',
    schema: Type.Integer({ minimum: 0 }),
  },
  'retry-after': {
    component: 'RetryAfter',
    description: 'Seconds to wait before retrying',
    schema: Type.Integer({ minimum: 0 }),
  },
  'www-authenticate': {
    component: 'WwwAuthenticate',
    description: 'The authentication scheme the request needs (Bearer; Basic for an API client that sent HTTP Basic credentials to the token endpoint)',
    schema: Type.String({ examples: ['Bearer error="invalid_token"'] }),
  },
  etag: {
    component: 'ETag',
    description: 'The version of the resource, for If-Match; weak (W/"3") under /fhir/R4, as FHIR servers send it',
    schema: Type.String({ examples: ['"3"'] }),
  },
  'last-modified': {
    component: 'LastModified',
    description: "When the resource last changed (a FHIR resource's meta.lastUpdated), as an HTTP date",
    schema: Type.String({ examples: ['Mon, 07 Dec 2026 11:44:07 GMT'] }),
  },
  location: {
    component: 'Location',
    description: 'The path of the created resource',
    schema: Type.String({ examples: ['/v1/referrals/0b9a7c1e-5d1a-4c57-9f3e-2f8d1c0b6a11'] }),
  },
  'content-disposition': {
    component: 'ContentDisposition',
    description: 'attachment, with the file name to save a download under',
    schema: Type.String({ examples: ['attachment; filename="audit-events.ndjson"'] }),
  },
  'repr-digest': {
    component: 'ReprDigest',
    description: 'RFC 9530: the SHA-256 of the bytes sent, base64 between colons, so the client can check what it received',
    schema: Type.String({ examples: ['sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:'] }),
  },
  'idempotent-replayed': {
    component: 'IdempotentReplayed',
    description: 'true when this is the kept answer to an earlier request with the same Idempotency-Key, replayed rather than made again',
    schema: Type.Literal('true'),
  },
} as const;
export type ResponseHeaderName = keyof typeof ResponseHeaders;
