// What the two authorization matrices (function-authz.test.ts, object-authz.test.ts) share: the app
// built with every route's declared policy collected, and each caller as the server reads it from
// its access token, so that a test can tell which answer a route's policy gives that caller.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { apiClientScopes, type Principal, type RoutePolicy } from '../../src/modules/auth/policy.js';
import { buildTestApp, type TestApp, type TestAppOptions } from '../helper.js';
import { decodeJwt } from '../tokens.js';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface CollectedRoute {
  method: Method;
  url: string;
  policy: RoutePolicy | undefined;
  auditAction: string | undefined;
}

/**
 * Builds the test app and every route as it was registered (Fastify's findRoute() does not expose
 * config, so they are collected on registration: the route-policy.test.ts technique).
 */
export async function buildTestAppWithRoutes(t: Parameters<typeof buildTestApp>[0], options: TestAppOptions): Promise<{ test: TestApp; routes: CollectedRoute[] }> {
  const routes: CollectedRoute[] = [];
  const collect = (message: unknown) =>
    (message as { fastify: FastifyInstance }).fastify.addHook('onRoute', (route: RouteOptions) => {
      for (const method of [route.method].flat()) {
        routes.push({ method: method as Method, url: route.url, policy: route.config?.policy, auditAction: route.config?.auditAction });
      }
    });
  subscribe('fastify.initialization', collect);
  try {
    return { test: await buildTestApp(t, options), routes };
  } finally {
    unsubscribe('fastify.initialization', collect);
  }
}

export interface Caller {
  label: string;
  id: string;
  token: string;
  /** As the server reads it from the access token, for the declared policy. */
  principal: Principal;
}

export function caller(label: string, person: { id: string; token: string }): Caller {
  const claims = decodeJwt(person.token).payload;
  return {
    label,
    id: person.id,
    token: person.token,
    principal: {
      kind: claims.typ,
      id: claims.sub,
      organizationId: claims.org,
      organizationKind: claims.org_kind,
      role: claims.role,
      scopes: claims.scope ? String(claims.scope).split(' ') : [],
    },
  };
}

/** Every scope a partner API client may hold (referrals:sign too: the EHR that vouches for its prescribers, SPEC §14.1). */
export const everyScope: string[] = [...apiClientScopes];
/** Every scope but referrals:sign: an EHR that reads and writes referrals but cannot sign them. */
export const everyScopeButSign: string[] = everyScope.filter((scope) => scope !== 'referrals:sign');
