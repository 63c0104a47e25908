// Request and response shapes of the token endpoint (OAuth 2.0, RFC 6749) and of /v1/me.
import { Type, type Static } from 'typebox';
import { Email, Uuid } from '../../lib/schemas.js';
import { enumOf, OrganizationKind, UserRole, userRoles } from '../../lib/vocabulary.js';
import { apiClientScopes } from './policy.js';

export const TokenRequest = Type.Object(
  {
    grant_type: Type.Enum(['password', 'client_credentials', 'refresh_token']),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'password grant: the email' })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    scope: Type.Optional(Type.String({ maxLength: 500, description: 'client_credentials: space-separated subset of the client scopes' })),
  },
  {
    additionalProperties: false,
    examples: [
      { grant_type: 'password', username: 'dr.lee@riverside.example', password: 'correct horse battery staple' },
      { grant_type: 'client_credentials', client_id: 'cli_…', client_secret: '…' },
      { grant_type: 'refresh_token', refresh_token: '…' },
    ],
  },
);
export type TokenRequest = Static<typeof TokenRequest>;

export const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.Optional(Type.String({ description: 'Rotates on every use; password and refresh_token grants only' })),
  scope: Type.Optional(Type.String()),
});
export type TokenResponse = Static<typeof TokenResponse>;

export const RevokeRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200, description: 'A refresh token of the caller; its whole family is revoked' }),
    token_type_hint: Type.Optional(Type.Enum(['refresh_token', 'access_token'])),
  },
  { additionalProperties: false },
);
export type RevokeRequest = Static<typeof RevokeRequest>;

const OrganizationSummary = Type.Object({
  id: Uuid,
  kind: OrganizationKind,
  name: Type.String(),
});

export const Me = Type.Union([
  Type.Object({
    kind: Type.Literal('user'),
    id: Uuid,
    email: Email,
    name: Type.String(),
    role: UserRole,
    organization: Type.Union([OrganizationSummary, Type.Null()]),
  }),
  Type.Object({
    kind: Type.Literal('api_client'),
    id: Uuid,
    clientId: Type.String(),
    name: Type.String(),
    role: enumOf(userRoles, { description: 'The staff role of its organization the client acts as' }),
    scopes: Type.Array(Type.Enum([...apiClientScopes])),
    organization: OrganizationSummary,
  }),
]);
export type Me = Static<typeof Me>;
