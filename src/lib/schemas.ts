// Schema pieces shared by several routes; each schema has a static type of the same name.
import { Type, type Static, type TSchema } from 'typebox';

export const Uuid = Type.String({ format: 'uuid', description: 'Identifier (UUID)' });
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export type IdParams = Static<typeof IdParams>;

export const IsoDate = Type.String({ format: 'date', description: 'Calendar date, YYYY-MM-DD', examples: ['2026-12-01'] });
export const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time in UTC' });

export const Email = Type.String({ format: 'email', maxLength: 254 });
export const Password = Type.String({ minLength: 12, maxLength: 200, description: 'At least 12 characters' });

/** NPI: ten digits; the Luhn check is applied by the server and named in the error. */
export const Npi = Type.String({ pattern: '^\\d{10}$', description: 'National Provider Identifier, 10 digits with a valid check digit' });

export const Location = Type.Object(
  {
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lng: Type.Number({ minimum: -180, maximum: 180 }),
  },
  { additionalProperties: false },
);
export type Location = Static<typeof Location>;

export const Address = Type.Object(
  {
    line1: Type.String({ minLength: 1, maxLength: 200 }),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: Type.String({ minLength: 1, maxLength: 100 }),
    state: Type.String({ minLength: 2, maxLength: 50 }),
    postalCode: Type.String({ minLength: 3, maxLength: 20 }),
    country: Type.Optional(Type.String({ minLength: 2, maxLength: 2, description: 'ISO 3166-1 alpha-2' })),
  },
  { additionalProperties: false },
);
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

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    data: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' }),
  });
}
