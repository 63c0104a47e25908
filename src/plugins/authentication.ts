// Authenticated by default: every route states a policy, and one hook checks the bearer token against it.
import fastifyJwt from '@fastify/jwt';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import { apiClients, userRoles, users, type UserRole } from '../db/schema.js';
import { ForbiddenError, UnauthorizedError } from '../lib/errors.js';
import { isAllowed, type OrganizationKind, type Principal, type RoutePolicy } from '../modules/auth/policy.js';
import { auditContextOf, auditTargetOf } from '../modules/audit/audit-log.js';
import { resolveJwtSecret } from './jwt-secret.js';

export interface AccessTokenClaims {
  sub: string;
  typ: 'user' | 'api_client';
  org: string | null;
  org_kind: OrganizationKind | null;
  role: UserRole;
  scope: string;
}

interface AuthenticationFailure {
  challenge: string;
  detail: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
    /** Set by the authentication hook when the bearer token is missing or not valid; answered 401 after the rate limit. */
    authenticationFailure: AuthenticationFailure | undefined;
  }
  interface FastifyContextConfig {
    policy?: RoutePolicy;
    /** The audit action of the route, also used to record refused attempts. */
    auditAction?: string;
    /** The record a route is aimed at (a path parameter), so a refused call is audited against it. */
    auditResource?: { type: string; param: string; isPatient?: boolean };
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessTokenClaims;
    user: AccessTokenClaims;
  }
}

// Far above any token we issue; refuses oversized tokens before any parsing.
const maxTokenLength = 4096;
// Clocks of the machines that issue and check tokens may differ by this much.
const clockSkewSeconds = 60;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const organizationKinds: ReadonlySet<unknown> = new Set(['physician_office', 'therapy_practice']);

/**
 * Claims shaped as we issue them. The signature says the token is ours, but a token signed with a
 * leaked or shared key must still not reach the database with a malformed id or scope, nor be
 * dated ahead to outlive its lifetime.
 */
function wellFormed(claims: AccessTokenClaims & { iat?: unknown }): boolean {
  return (
    typeof claims.sub === 'string' &&
    uuid.test(claims.sub) &&
    (claims.typ === 'user' || claims.typ === 'api_client') &&
    (claims.org === null || (typeof claims.org === 'string' && uuid.test(claims.org))) &&
    (claims.org_kind === null || organizationKinds.has(claims.org_kind)) &&
    (userRoles as readonly unknown[]).includes(claims.role) &&
    typeof claims.scope === 'string' &&
    typeof claims.iat === 'number' &&
    claims.iat <= Date.now() / 1000 + clockSkewSeconds
  );
}

export default fp(
  async (app, options: { config: Config }) => {
    const { jwt } = options.config;
    await app.register(fastifyJwt, {
      secret: await resolveJwtSecret(options.config),
      sign: { algorithm: 'HS256', iss: jwt.issuer, aud: jwt.audience, expiresIn: jwt.accessTokenTtlSeconds },
      // Pinning the algorithm refuses `alg: none` and algorithm-confusion tokens.
      // allowedIss/allowedAud only judge claims that are present: they must be required too.
      verify: { algorithms: ['HS256'], allowedIss: jwt.issuer, allowedAud: jwt.audience, requiredClaims: ['exp', 'sub', 'iat', 'iss', 'aud'] },
    });
    app.decorateRequest('principal', undefined);
    app.decorateRequest('authenticationFailure', undefined);

    app.addHook('onRoute', (route) => {
      if (!route.url.startsWith('/v1')) return;
      const policy = route.config?.policy;
      if (!policy) throw new Error(`Route ${route.method} ${route.url} declares no access policy`);
      if (policy !== 'public') {
        route.schema = { ...route.schema, security: [{ bearerAuth: [] }] };
      }
    });

    // Authentication and authorization run apart, with the per-caller rate limit between them
    // (security.ts, a route-level onRequest hook, which runs after this one): every request counts
    // against its caller's limit, the refused ones too, and a caller over it is refused before
    // any refusal of theirs is audited.
    app.addHook('onRequest', async (request) => {
      const policy = request.routeOptions.config.policy;
      if (!policy || policy === 'public') return;
      request.authenticationFailure = await authenticationFailureOf(request);
    });

    app.addHook('preParsing', async (request, reply) => {
      const policy = request.routeOptions.config.policy;
      if (!policy || policy === 'public') return;
      const failure = request.authenticationFailure;
      if (failure) {
        reply.header('www-authenticate', failure.challenge);
        throw new UnauthorizedError(failure.detail);
      }
      if (!isAllowed(policy, request.principal!)) {
        await app.auditLog.recordDenial(auditContextOf(request), {
          action: request.routeOptions.config.auditAction ?? 'access.denied',
          outcome: 'denied',
          httpStatus: 403,
          ...auditTargetOf(request),
        });
        throw new ForbiddenError(
          request.principal!.kind === 'api_client'
            ? 'This API client lacks the role or scope this operation requires'
            : `The role ${request.principal!.role} may not perform this operation`,
        );
      }
    });

    /** Sets the principal from a valid bearer token, or says why the request is not authenticated. */
    async function authenticationFailureOf(request: FastifyRequest): Promise<AuthenticationFailure | undefined> {
      const authorization = request.headers.authorization;
      if (!authorization?.startsWith('Bearer ') || authorization.length > maxTokenLength) {
        return { challenge: 'Bearer', detail: 'A valid bearer access token is required' };
      }
      const invalid = { challenge: 'Bearer error="invalid_token"', detail: 'The access token is invalid or expired' };
      let claims: AccessTokenClaims & { iat?: number };
      try {
        claims = await request.jwtVerify<AccessTokenClaims>();
      } catch {
        return invalid;
      }
      // A token outlives a deactivation by at most its lifetime unless we look; we look.
      if (!wellFormed(claims) || !(await principalIsActive(claims as AccessTokenClaims & { iat: number }))) return invalid;
      request.principal = {
        kind: claims.typ,
        id: claims.sub,
        organizationId: claims.org,
        organizationKind: claims.org_kind,
        role: claims.role,
        scopes: claims.scope ? claims.scope.split(' ') : [],
      };
      return undefined;
    }

    // Asked on every request: built and prepared once, not rebuilt by the query builder each time.
    // Tokens issued before a deactivation or a password change stay dead, also once the account
    // is active again (tokens_valid_after, migration 0010). iat counts whole seconds: a token of the
    // same second as the deactivation counts as issued before it.
    const activeUser = app.db
      .select({ id: users.id })
      .from(users)
      .where(
        and(
          eq(users.id, sql.placeholder('id')),
          eq(users.active, true),
          sql`(${users.tokensValidAfter} is null or ${users.tokensValidAfter} < to_timestamp(${sql.placeholder('issuedAt')}::double precision))`,
        ),
      )
      .prepare('principal_active_user');
    const activeClient = app.db
      .select({ id: apiClients.id })
      .from(apiClients)
      .where(and(eq(apiClients.id, sql.placeholder('id')), eq(apiClients.active, true), isNull(apiClients.revokedAt)))
      .prepare('principal_active_client');

    async function principalIsActive(claims: AccessTokenClaims & { iat: number }): Promise<boolean> {
      const [row] = await (claims.typ === 'user' ? activeUser.execute({ id: claims.sub, issuedAt: claims.iat }) : activeClient.execute({ id: claims.sub }));
      return row !== undefined;
    }
  },
  { name: 'authentication', dependencies: ['database', 'audit-log'] },
);
