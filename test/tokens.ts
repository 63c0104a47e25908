// Reading and forging JWT access tokens, so tests can present tokens the service would never issue.
import { createHmac } from 'node:crypto';
import { testJwtSecret, type Json } from './helper.js';

export const tokenIssuer = 'massage-referral-network';
export const tokenAudience = 'massage-referral-api';

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const decode = (part: string): Json => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** The header and claims of a JWT, without checking its signature. */
export function decodeJwt(token: string): { header: Json; payload: Json } {
  const [header = '', payload = ''] = token.split('.');
  return { header: decode(header), payload: decode(payload) };
}

/** Signs claims as a compact JWT with an HMAC; the defaults are what the service itself uses. */
export function signJwt(payload: Json, { secret = testJwtSecret, alg = 'HS256' }: { secret?: string; alg?: 'HS256' | 'HS384' | 'HS512' } = {}): string {
  const signingInput = `${encode({ alg, typ: 'JWT' })}.${encode(payload)}`;
  const signature = createHmac(`sha${alg.slice(2)}`, secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** An unsecured JWT (`alg: none`) with an empty signature. */
export function unsignedJwt(payload: Json): string {
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.`;
}

/** The same token with its claims changed and its original signature kept. */
export function tamperedJwt(token: string, changes: Json): string {
  const [header, payload = '', signature] = token.split('.');
  return [header, encode({ ...decode(payload), ...changes }), signature].join('.');
}

/** Claims of a valid access token for a user, issued now for 15 minutes; `overrides` replaces any of them. */
export function accessTokenClaims(user: { id: string; role: string; organizationId?: string | null; organizationKind?: string | null }, overrides: Json = {}): Json {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: user.id,
    typ: 'user',
    org: user.organizationId ?? null,
    org_kind: user.organizationKind ?? null,
    role: user.role,
    scope: '',
    iss: tokenIssuer,
    aud: tokenAudience,
    iat: now,
    exp: now + 900,
    ...overrides,
  };
}
