// Request and response shapes of the token endpoint (OAuth 2.0, RFC 6749) and of /v1/me.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { Email, Uuid } from '../../lib/schemas.js';
import { enumOf, OrganizationKind, UserRole, userRoles } from '../../lib/vocabulary.js';
import { apiClientScopes } from './policy.js';

/** The only client assertion we take: a JWT (RFC 7523 §2.2). */
export const clientAssertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** The signature algorithms of client assertions: the two SMART Backend Services asks servers to support. */
export const assertionAlgorithms = ['RS384', 'ES384'] as const;

/**
 * A public signing key as an API client registers it (RFC 7517). Members other than these are
 * let through to be refused by name when they are private key material (jwks-policy.ts), and
 * otherwise dropped: only these are kept.
 */
export const PublicJwk = component('PublicJwk', Type.Object(
  {
    kty: Type.Enum(['RSA', 'EC'], { description: 'RSA (with alg RS384, at least 2048 bits) or EC (curve P-384, alg ES384)' }),
    kid: Type.String({ minLength: 1, maxLength: 200, description: 'Names the key in the assertion header; unique within the set' }),
    alg: Type.Optional(Type.Enum([...assertionAlgorithms], { description: 'Defaults to RS384 for RSA and ES384 for EC' })),
    use: Type.Optional(Type.Literal('sig')),
    key_ops: Type.Optional(Type.Array(Type.String({ maxLength: 20 }), { maxItems: 8 })),
    n: Type.Optional(Type.String({ minLength: 1, maxLength: 2800, description: 'RSA modulus, base64url' })),
    e: Type.Optional(Type.String({ minLength: 1, maxLength: 16, description: 'RSA exponent, base64url' })),
    crv: Type.Optional(Type.Literal('P-384')),
    x: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    y: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: true },
));
export type PublicJwk = Static<typeof PublicJwk>;

export const JwkSet = component('JwkSet', Type.Object(
  { keys: Type.Array(PublicJwk, { minItems: 1, maxItems: 10 }) },
  { additionalProperties: false, description: 'A JSON Web Key Set of public keys only' },
));
export type JwkSet = Static<typeof JwkSet>;

export const TokenRequest = component('TokenRequest', Type.Object(
  {
    grant_type: Type.Enum(['password', 'client_credentials', 'refresh_token']),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'password grant: the email' })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    client_assertion_type: Type.Optional(
      Type.Literal(clientAssertionType, { description: 'client_credentials with a private_key_jwt client (RFC 7523, SMART Backend Services)' }),
    ),
    client_assertion: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 8192,
        description:
          'A JWT signed (RS384 or ES384) with a key the client registered: kid in its header; iss and sub the client_id; aud this endpoint; exp at most 5 minutes ahead; a jti never used before',
      }),
    ),
    scope: Type.Optional(
      Type.String({
        maxLength: 2000,
        description:
          'client_credentials: space-separated subset of the client scopes; a private_key_jwt client may instead ask for SMART system scopes (system/Task.rs, system/*.read, …), granted as far as its scopes allow',
      }),
    ),
  },
  {
    additionalProperties: false,
  },
));
export type TokenRequest = Static<typeof TokenRequest>;

export const TokenResponse = component('TokenResponse', Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
  refresh_token: Type.Optional(Type.String({ description: 'Rotates on every use; password and refresh_token grants only' })),
  scope: Type.Optional(Type.String()),
}));
export type TokenResponse = Static<typeof TokenResponse>;

export const RevokeRequest = component('RevokeTokenRequest', Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200, description: 'A refresh token of the caller; its whole family is revoked' }),
    token_type_hint: Type.Optional(Type.Enum(['refresh_token', 'access_token'])),
  },
  { additionalProperties: false },
));
export type RevokeRequest = Static<typeof RevokeRequest>;

const OrganizationSummary = Type.Object({
  id: Uuid,
  kind: OrganizationKind,
  name: Type.String(),
});

export const Me = component('Me', Type.Union([
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
]));
export type Me = Static<typeof Me>;
