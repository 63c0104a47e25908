// /v1/auth/token, /v1/auth/revoke and /v1/me.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import { component } from '../../lib/components.js';
import { oauthError, UnauthorizedError } from '../../lib/errors.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from './policy.js';
import { PrincipalsRepository } from './principals-repository.js';
import type { RemoteJwks } from './remote-jwks.js';
import { Me, RevokeRequest, TokenRequest, TokenResponse } from './schemas.js';
import { TokenService } from './token-service.js';

/** OAuth's own form bodies (RFC 6749 §4, RFC 7009 §2.1), and JSON. */
const oauthBodyTypes = ['application/json', 'application/x-www-form-urlencoded'];

/** client_secret_basic (RFC 6749 §2.3.1): both parts are form-urlencoded inside the Basic credentials. */
function basicClientCredentials(header: string | undefined): { clientId: string; clientSecret: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator < 1) return undefined;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, separator).replace(/\+/g, ' ')),
      clientSecret: decodeURIComponent(decoded.slice(separator + 1).replace(/\+/g, ' ')),
    };
  } catch {
    return undefined;
  }
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw oauthError('invalid_request', `${field} is required for this grant_type`);
  return value;
}

const authRoutes: FastifyPluginAsyncTypebox<{ config: Config; remoteJwks: RemoteJwks }> = async (app, { config, remoteJwks }) => {
  const principals = new PrincipalsRepository(app.db);
  const tokens = new TokenService(
    app.db,
    app.auditLog,
    app.unitOfWork,
    app.passwords,
    // A unique jti: two tokens issued to one caller in the same second are still distinct tokens.
    (claims, expiresIn) => app.jwt.sign(claims, { jti: crypto.randomUUID(), ...(expiresIn ? { expiresIn } : {}) }),
    config,
    remoteJwks,
    app.log,
  );

  app.post('/auth/token', {
    config: {
      policy: 'public',
      auditAction: 'auth.token',
      rateLimit: { max: config.rateLimit.tokenPerMinute, timeWindow: 60_000, keyGenerator: (request) => request.ip },
    },
    schema: {
      tags: ['auth'],
      operationId: 'issueToken',
      summary: 'Get an access token (password, client_credentials or refresh_token grant)',
      description:
        'OAuth 2.0 token endpoint taking JSON or application/x-www-form-urlencoded. API clients may also authenticate with HTTP Basic. ' +
        'A private_key_jwt client (SMART Backend Services) sends client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer ' +
        'and a client_assertion instead of a secret: a JWT signed RS384 or ES384 with a key it registered (kid in the header; iss = sub = ' +
        'its client_id; aud this endpoint under PUBLIC_BASE_URL; exp at most 5 minutes ahead; a jti used once). It may ask for SMART ' +
        'system scopes (system/Task.rs, system/*.read, …), mapped onto its scopes and narrowed to what it holds; its token lasts 5 minutes. ' +
        'Password sign-ins are throttled on the email typed, whether or not it belongs to an account, and are counted before the password ' +
        'is checked. Each failure from one client address (IPv6: its /64) waits twice as long as the one before, up to 5 s. Past ' +
        'LOGIN_MAX_FAILURES attempts (default 5) for an email from one address, or LOGIN_ACCOUNT_MAX_FAILURES (default 100) from all ' +
        'addresses together, within LOGIN_LOCKOUT_SECONDS (default 900), further attempts for it are refused with 400 invalid_grant and ' +
        "Retry-After, right password or not, until that window ends. A successful sign-in clears its address's count. Known and unknown " +
        'emails get the same answers.',
      body: TokenRequest,
      consumes: oauthBodyTypes,
      response: { 200: TokenResponse },
    },
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    const body = request.body;
    const context = auditContextOf(request);
    switch (body.grant_type) {
      case 'password':
        return tokens.passwordGrant(
          { email: required(body.username, 'username'), password: required(body.password, 'password'), clientAddress: request.ip },
          context,
        );
      case 'client_credentials': {
        if (body.client_assertion !== undefined || body.client_assertion_type !== undefined) {
          // RFC 6749 §2.3: one way of authenticating per request, so a secret besides an assertion is refused.
          if (body.client_secret !== undefined || request.headers.authorization !== undefined) {
            throw oauthError('invalid_request', 'Authenticate with either a client assertion or a client secret, not both');
          }
          required(body.client_assertion_type, 'client_assertion_type');
          const assertion = required(body.client_assertion, 'client_assertion');
          return tokens.clientAssertionGrant({ assertion, clientId: body.client_id, requestedScope: body.scope }, context);
        }
        const basic = basicClientCredentials(request.headers.authorization);
        const clientId = basic?.clientId ?? required(body.client_id, 'client_id');
        const clientSecret = basic?.clientSecret ?? required(body.client_secret, 'client_secret');
        try {
          return await tokens.clientCredentialsGrant(clientId, clientSecret, body.scope, context);
        } catch (error) {
          // RFC 6749 §5.2: a client that authenticated with a scheme is told which scheme failed.
          if (basic && (error as { statusCode?: number }).statusCode === 401) reply.header('www-authenticate', 'Basic realm="token"');
          throw error;
        }
      }
      case 'refresh_token':
        return tokens.refreshTokenGrant(required(body.refresh_token, 'refresh_token'), context);
    }
  });

  app.post('/auth/revoke', {
    config: {
      policy: { roles: everyone },
      auditAction: 'auth.revoke',
      rateLimit: { max: config.rateLimit.tokenPerMinute, timeWindow: 60_000 },
    },
    schema: {
      tags: ['auth'],
      operationId: 'revokeToken',
      summary: 'Revoke a refresh token (and the session it belongs to)',
      description: 'RFC 7009: answers 200 whether or not the token was known. Access tokens expire on their own within minutes.',
      body: RevokeRequest,
      consumes: oauthBodyTypes,
      response: { 200: component('TokenRevoked', Type.Object({}, { additionalProperties: false, description: 'Nothing to say: RFC 7009 answers the same whether the token was known' })) },
    },
  }, async (request) => {
    const principal = request.principal!;
    if (principal.kind === 'user') await tokens.revoke(request.body.token, principal.id, auditContextOf(request));
    return {};
  });

  app.get('/me', {
    config: { policy: { roles: everyone, clientScope: 'any' }, auditAction: 'me.read' },
    schema: {
      tags: ['auth'],
      operationId: 'getMe',
      summary: 'Who the access token belongs to',
      response: { 200: Me },
    },
  }, async (request) => {
    const principal = request.principal!;
    if (principal.kind === 'user') {
      const row = await principals.findUser({ userId: principal.id });
      if (!row) throw new UnauthorizedError('The account no longer exists');
      return {
        kind: 'user' as const,
        id: row.user.id,
        email: row.user.email,
        name: row.user.name,
        role: row.user.role,
        organization: row.organization,
      };
    }
    const row = await principals.findApiClient({ apiClientId: principal.id });
    if (!row) throw new UnauthorizedError('The API client no longer exists');
    return {
      kind: 'api_client' as const,
      id: row.client.id,
      clientId: row.client.clientId,
      name: row.client.name,
      role: principal.role,
      scopes: principal.scopes as never,
      organization: row.organization,
    };
  });
};

export default authRoutes;
