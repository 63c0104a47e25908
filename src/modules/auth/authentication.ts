// Authenticated by default: every route states a policy, and one hook checks the bearer token against it.
import fastifyJwt from '@fastify/jwt';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { accessDenied, UnauthorizedError } from '../../lib/errors.js';
import { isAllowed, type OrganizationKind, type Principal, type RoutePolicy } from './policy.js';
import { auditTargetOf } from '../audit/audit-log.js';
import { isApiRoute, isFhirRoute } from '../../lib/api-prefix.js';
import { accessSchemaOf } from './documented-access.js';
import { resolveJwtSecret } from './jwt-secret.js';
import { PrincipalsRepository } from './principals-repository.js';
import { canonicalUuidPattern as uuid, organizationKinds, userRoles, type PrincipalKind, type UserRole } from '../../lib/vocabulary.js';

export interface AccessTokenClaims {
  sub: string;
  typ: PrincipalKind;
  org: string | null;
  org_kind: OrganizationKind | null;
  role: UserRole;
  scope: string;
  /** The SMART scopes granted to a client that signed in with an assertion and asked for them (smart-scopes.ts). */
  fhir_scope?: string;
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
    /** Refusals of the route's own, by status, declared in the OpenAPI document beside the shared ones. */
    ownProblems?: Record<number, { description: string; retryAfter?: boolean }>;
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
    (claims.org_kind === null || (organizationKinds as readonly unknown[]).includes(claims.org_kind)) &&
    (userRoles as readonly unknown[]).includes(claims.role) &&
    typeof claims.scope === 'string' &&
    (claims.fhir_scope === undefined || (claims.typ === 'api_client' && typeof claims.fhir_scope === 'string')) &&
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
    const principals = new PrincipalsRepository(app.db);
    app.decorateRequest('principal', undefined);
    app.decorateRequest('authenticationFailure', undefined);

    app.addHook('onRoute', (route) => {
      if (!isApiRoute(route.url)) return;
      const policy = route.config?.policy;
      if (!policy) throw new Error(`Route ${route.method} ${route.url} declares no access policy`);
      route.schema = { ...route.schema, ...accessSchemaOf(policy, route.schema?.description) };
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
      // Audited against the route's record by modules/audit/refusal-audit.ts before the answer leaves.
      if (!isAllowed(policy, request.principal!)) {
        throw accessDenied(
          request.principal!.kind === 'api_client'
            ? 'This API client lacks the role or scope this operation requires'
            : `The role ${request.principal!.role} may not perform this operation`,
          auditTargetOf(request),
        );
      }
      // A token granted SMART scopes was asked for by type and interaction (system/Task.rs); its
      // internal scopes are only what those map onto, and /v1 cannot narrow by FHIR type, so such a
      // token is for the FHIR API alone.
      if (request.principal!.fhirScopes && !isFhirRoute(request.routeOptions.url ?? '')) {
        throw accessDenied('A token granted SMART scopes is for the FHIR API (/fhir/R4) only; sign in without them for /v1', auditTargetOf(request));
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
        ...(claims.fhir_scope === undefined ? {} : { fhirScopes: claims.fhir_scope.split(' ').filter(Boolean) }),
      };
      return undefined;
    }

    async function principalIsActive(claims: AccessTokenClaims & { iat: number }): Promise<boolean> {
      return principals.isActive({ kind: claims.typ, id: claims.sub, issuedAt: claims.iat });
    }
  },
  { name: 'authentication', dependencies: ['database'] },
);
