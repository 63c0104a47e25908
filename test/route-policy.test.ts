// Every /v1 route declares who may call it, and nothing but the documented few answers without a token.
//
// Fastify's findRoute() does not expose a route's config, and hooks cannot be added to a built app, so the
// routes are collected as they are registered: Fastify publishes every new instance on the
// `fastify.initialization` diagnostics channel, where an onRoute hook can be added before any plugin loads.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { FastifyInstance, RouteOptions } from 'fastify';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { documentedAccessOf } from '../src/modules/auth/index.js';
import type { RoutePolicy } from '../src/modules/auth/policy.js';
import { buildTestApp, pgliteTemplate, testConfig, type Json } from './helper.js';

interface CollectedRoute {
  method: string;
  url: string;
  policy: RoutePolicy | undefined;
}

/** Runs build while every Fastify instance created meanwhile is handed to onInstance. */
async function withNewInstances<T>(onInstance: (app: FastifyInstance) => void, build: () => Promise<T>): Promise<T> {
  const listener = (message: unknown) => onInstance((message as { fastify: FastifyInstance }).fastify);
  subscribe('fastify.initialization', listener);
  try {
    return await build();
  } finally {
    unsubscribe('fastify.initialization', listener);
  }
}

const routes: CollectedRoute[] = [];
const test = await withNewInstances(
  (app) =>
    app.addHook('onRoute', (route: RouteOptions) => {
      for (const method of [route.method].flat()) {
        routes.push({ method, url: route.url, policy: route.config?.policy });
      }
    }),
  () => buildTestApp(t),
);

/** The routes that may answer without a bearer token. */
const publicRoutes: Array<{ methods: string[]; url: RegExp }> = [
  { methods: ['GET', 'HEAD'], url: /^\/health\/(live|ready)$/ },
  { methods: ['GET', 'HEAD'], url: /^\/openapi\.json$/ },
  { methods: ['GET', 'HEAD'], url: /^\/docs(\/.*)?$/ },
  { methods: ['POST'], url: /^\/v1\/auth\/token$/ },
  // FHIR clients read what the server does, and how to sign in, before they sign in.
  { methods: ['GET', 'HEAD'], url: /^\/fhir\/R4\/metadata$/ },
  { methods: ['GET', 'HEAD'], url: /^\/fhir\/R4\/\.well-known\/smart-configuration$/ },
];
const isPublicRoute = (method: string, url: string) =>
  publicRoutes.some((allowed) => allowed.methods.includes(method) && allowed.url.test(url));

/** A concrete URL for a route pattern: a fresh UUID for every parameter, a file name for a wildcard. */
const concrete = (url: string) =>
  url
    .replace(/:[A-Za-z]+/g, () => crypto.randomUUID())
    .replace(/\{[A-Za-z]+\}/g, () => crypto.randomUUID())
    .replace(/\*$/, 'index.html');

const document = test.app.swagger() as Json;
const operations = Object.entries(document.paths as Record<string, Record<string, Json>>).flatMap(([path, methods]) =>
  Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path })),
);

t.test('routes were collected from the built app, including every documented operation', async (t) => {
  t.ok(routes.length >= operations.length, `${routes.length} routes collected`);
  for (const { method, path } of operations) {
    const url = path.replace(/\{([A-Za-z]+)\}/g, ':$1');
    t.ok(test.app.hasRoute({ method: method as 'GET', url }), `${method} ${url} is a route of the app`);
    t.ok(routes.some((route) => route.method === method && route.url === url), `${method} ${url} was collected`);
  }
});

t.test('every /v1 route declares a policy: public, or a non-empty list of roles', async (t) => {
  const v1Routes = routes.filter((route) => route.url.startsWith('/v1'));
  t.ok(v1Routes.length > 10, `${v1Routes.length} /v1 routes`);
  for (const { method, url, policy } of v1Routes) {
    if (policy === 'public') {
      t.ok(isPublicRoute(method, url), `${method} ${url} is public and on the public list`);
    } else {
      t.ok(Array.isArray(policy?.roles) && policy.roles.length > 0, `${method} ${url} names the roles that may call it`);
    }
  }
});

t.test('only the documented routes are public', async (t) => {
  const open = routes.filter((route) => route.policy === undefined || route.policy === 'public');
  for (const { method, url } of open) t.ok(isPublicRoute(method, url), `${method} ${url} may be public`);
});

t.test("the document says of each operation who may call it, as its route's policy says", async (t) => {
  for (const { method, path } of operations) {
    const url = path.replace(/\{([A-Za-z]+)\}/g, ':$1');
    const operation = document.paths[path][method.toLowerCase()] as Json;
    const policy = routes.find((route) => route.method === method && route.url === url)?.policy;
    if (policy === undefined || policy === 'public') {
      t.same(operation.security, [], `${method} ${path}: public, security []`);
      t.notOk(operation['x-access'], `${method} ${path}: no x-access`);
      continue;
    }
    const access = documentedAccessOf(policy);
    t.same(operation['x-access'], { ...access, ...(operation['x-access']?.smartScope ? { smartScope: operation['x-access'].smartScope } : {}) }, `${method} ${path}: x-access is the policy`);
    const scope = access.apiClients !== 'none' && access.apiClients.scope !== 'any' ? [access.apiClients.scope] : [];
    t.same(operation.security.slice(0, 2), [{ bearerAuth: [] }, { oauth2: scope }], `${method} ${path}: bearer, or OAuth 2.0 with ${scope.join('') || 'no scope'}`);
    t.match(operation.description, /Callers: [^.]+\./, `${method} ${path}: the description names its callers`);
    if (path.startsWith('/fhir/R4/') && access.apiClients !== 'none') {
      t.match(operation['x-access'].smartScope, /^system\/[A-Za-z]+\.(rs|c|u)$/, `${method} ${path}: the SMART scope it needs`);
      t.same(operation.security[2], { oauth2: [operation['x-access'].smartScope] }, `${method} ${path}: or a SMART token with it`);
    }
  }
  const scopes = document.components.securitySchemes.oauth2.flows.clientCredentials.scopes as Json;
  for (const { method, path } of operations) {
    for (const requirement of (document.paths[path][method.toLowerCase()].security ?? []) as Json[]) {
      for (const scope of requirement.oauth2 ?? []) t.ok(scopes[scope], `${method} ${path}: ${scope} is a scope of the oauth2 scheme`);
    }
  }
});

t.test('every documented operation but the public ones answers 401 without a token', async (t) => {
  for (const { method, path } of operations) {
    const url = concrete(path);
    const response = await test.request({ method: method as 'GET', url, ...(['POST', 'PATCH', 'PUT'].includes(method) ? { payload: {} } : {}) });
    if (isPublicRoute(method, path)) {
      t.not(response.statusCode, 401, `${method} ${path} is public`);
    } else {
      t.equal(response.statusCode, 401, `${method} ${path} needs a token`);
      const refusal = path.startsWith('/fhir/R4/') ? 'application/fhir+json; charset=utf-8' : 'application/problem+json; charset=utf-8';
      t.equal(response.headers['content-type'], refusal, `${method} ${path}: ${refusal}`);
    }
  }
});

t.test('every registered route, documented or not, answers 401 without a token unless public', async (t) => {
  for (const { method, url } of routes) {
    const response = await test.request({ method: method as 'GET', url: concrete(url) });
    if (isPublicRoute(method, url)) t.not(response.statusCode, 401, `${method} ${url} is public`);
    else t.equal(response.statusCode, 401, `${method} ${url} needs a token`);
  }
});

t.test('an invalid token is refused on every protected operation', async (t) => {
  for (const { method, path } of operations.filter((operation) => !isPublicRoute(operation.method, operation.path))) {
    const response = await test.request({ method: method as 'GET', url: concrete(path), token: 'not.a.jwt' });
    t.equal(response.statusCode, 401, `${method} ${path}`);
  }
});

t.test('a /v1 route registered without a policy stops the app from starting', async (t) => {
  const created: FastifyInstance[] = [];
  let added = false;
  const build = withNewInstances(
    (app) => {
      created.push(app);
      // In the first module's route plugin (under /v1) after the authentication plugin, add a route that forgets its policy.
      app.addHook('onRegister', (instance) => {
        if (added || instance.prefix !== '/v1' || !instance.hasRequestDecorator('principal')) return;
        added = true;
        instance.get('/forgotten-policy', async () => ({ ok: true }));
      });
    },
    async () =>
      buildApp({ config: testConfig({ DATA_DIR: 'memory://' }), pgliteTemplate: await pgliteTemplate() }),
  );
  await t.rejects(build, /GET \/v1\/forgotten-policy declares no access policy/);
  t.ok(added, 'the route was added');
  for (const app of created) {
    await (app as { database?: { close(): Promise<void> } }).database?.close().catch(() => {});
  }
});
