// Headers of every answer (issue 12, items 7 and 14): no answer of the API may be cached, and the
// OpenAPI document declares every status and header the service answers with. Every response below
// also passes through TestApp.request, whose contract check fails on an undeclared status or header.
import t, { type Test } from 'tap';
import { buildTestApp, createOffice, createPractice, type Json, type TestApp } from './helper.js';
import { withParametersInline } from './fixtures/openapi-parameters.js';

type Response = Awaited<ReturnType<TestApp['request']>>;

// Low enough that one caller can run into it, high enough for the fixtures below.
const perCallerPerMinute = 40;
const test = await buildTestApp(t, { env: { RATE_LIMIT_PER_MINUTE: String(perCallerPerMinute) } });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const document = withParametersInline(test.app.swagger() as Json);

const patientBody = { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' };

function assertNoStore(t: Test, response: Response, status: number) {
  t.equal(response.statusCode, status, `answers ${status}`);
  t.equal(response.headers['cache-control'], 'no-store', `${status} carries Cache-Control: no-store`);
}

t.test('every /v1 answer carries Cache-Control: no-store', async (t) => {
  const created = await test.request({ method: 'POST', url: '/v1/patients', token: office.staff.token, payload: patientBody });
  assertNoStore(t, created, 201);
  const patientId = created.json().id as string;

  assertNoStore(t, await test.request({ method: 'GET', url: `/v1/patients/${patientId}`, token: office.staff.token }), 200);
  assertNoStore(t, await test.request({ method: 'GET', url: '/v1/referrals', token: office.staff.token }), 200);
  assertNoStore(t, await test.request({ method: 'GET', url: '/v1/patients?limit=0', token: office.staff.token }), 400);
  assertNoStore(t, await test.request({ method: 'GET', url: `/v1/patients/${patientId}` }), 401);
  assertNoStore(t, await test.request({ method: 'GET', url: `/v1/patients/${patientId}`, token: practice.therapist.token }), 403);
  assertNoStore(t, await test.request({ method: 'GET', url: `/v1/patients/${crypto.randomUUID()}`, token: office.staff.token }), 404);
  assertNoStore(t, await test.request({ method: 'GET', url: '/v1/no-such-route', token: office.staff.token }), 404);
  assertNoStore(t, await test.request({ method: 'POST', url: '/v1/patients', token: office.staff.token, headers: { 'content-type': 'text/xml' }, payload: '<patient/>' }), 415);
  const tooLarge = JSON.stringify({ ...patientBody, givenName: 'x'.repeat(2 * 1024 * 1024) });
  assertNoStore(t, await test.request({ method: 'POST', url: '/v1/patients', token: office.staff.token, headers: { 'content-type': 'application/json' }, payload: tooLarge }), 413);
});

t.test('the token endpoint keeps its no-store and pragma, on refusals too', async (t) => {
  const granted = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: office.staff.email, password: 'a-long-test-password' } });
  assertNoStore(t, granted, 200);
  t.equal(granted.headers.pragma, 'no-cache');
  const refused = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: office.staff.email, password: 'not-the-password' } });
  assertNoStore(t, refused, 400);
});

t.test('POST /v1/auth/token › a wrong client secret sent as HTTP Basic is a declared 401 with WWW-Authenticate: Basic', async (t) => {
  const client = await test.create(`/v1/organizations/${office.id}/api-clients`, office.admin.token, { name: 'EHR', scopes: ['patients:read'] });
  const response = await test.request({
    method: 'POST',
    url: '/v1/auth/token',
    headers: { authorization: `Basic ${Buffer.from(`${client.clientId}:wrong-secret`).toString('base64')}` },
    payload: { grant_type: 'client_credentials' },
  });
  assertNoStore(t, response, 401);
  t.equal(response.json().error, 'invalid_client');
  t.match(response.headers['www-authenticate'], /^Basic /);
});

t.test('an idempotent replay carries no-store, like the answer it repeats', async (t) => {
  const request = { method: 'POST' as const, url: '/v1/patients', token: office.staff.token, headers: { 'idempotency-key': `replay-${crypto.randomUUID()}` }, payload: patientBody };
  const first = await test.request(request);
  assertNoStore(t, first, 201);
  const replay = await test.request(request);
  assertNoStore(t, replay, 201);
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(replay.headers.location, first.headers.location, 'the Location header is replayed');
});

t.test('health answers are not cached either; the documentation may be', async (t) => {
  assertNoStore(t, await test.request({ method: 'GET', url: '/health/live' }), 200);
  const openapi = await test.request({ method: 'GET', url: '/openapi.json' });
  t.equal(openapi.statusCode, 200);
  t.not(openapi.headers['cache-control'], 'no-store', 'the public document is the same for everyone');
});

t.test('a path the router refuses is answered no-store too', async (t) => {
  assertNoStore(t, await test.request({ method: 'GET', url: '/v1/patients/%E0%A4%A' }), 400);
});

t.test('a caller over the rate limit is answered 429, no-store, with Retry-After and the x-ratelimit headers', async (t) => {
  const caller = await createPractice(test, networkAdmin);
  let response: Response | undefined;
  for (let attempt = 0; attempt <= perCallerPerMinute; attempt++) {
    response = await test.request({ method: 'GET', url: '/v1/me', token: caller.admin.token });
    if (response.statusCode === 429) break;
    t.match(response.headers, { 'x-ratelimit-limit': String(perCallerPerMinute), 'x-ratelimit-remaining': /^\d+$/, 'x-ratelimit-reset': /^\d+$/ }, 'a 200 carries the x-ratelimit headers');
  }
  assertNoStore(t, response!, 429);
  t.match(response!.headers, { 'retry-after': /^\d+$/, 'x-ratelimit-remaining': '0' });
});

t.test('the generated document declares what every operation can answer', async (t) => {
  const headersOf = (response: Json) => Object.keys(response.headers ?? {});
  for (const [path, item] of Object.entries(document.paths as Record<string, Json>)) {
    for (const [method, operation] of Object.entries(item)) {
      const name = `${method.toUpperCase()} ${path}`;
      const responses = operation.responses as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        const headers = headersOf(response);
        for (const header of ['x-request-id', 'cache-control', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
          if (!headers.includes(header)) t.fail(`${name} ${status} declares ${header}`);
        }
        for (const header of headers) t.match(response.headers[header], { $ref: /^#\/components\/headers\// }, `${name} ${status} ${header} refers to a component`);
      }
      t.ok(responses['429'] && headersOf(responses['429']).includes('retry-after'), `${name}: 429 with Retry-After`);
      t.ok(responses['503'] && headersOf(responses['503']).includes('retry-after'), `${name}: 503 with Retry-After`);
      if (['post', 'patch', 'delete'].includes(method)) t.ok(responses['413'] && responses['415'], `${name}: 413 and 415`);
      if (responses['401']) t.ok(headersOf(responses['401']).includes('www-authenticate'), `${name}: 401 with WWW-Authenticate`);
      if (responses['201']) t.ok(headersOf(responses['201']).includes('location'), `${name}: 201 with Location`);
      const takesIdempotencyKey = (operation.parameters ?? []).some((parameter: Json) => parameter.in === 'header' && parameter.name === 'idempotency-key');
      if (takesIdempotencyKey) {
        const success = Object.keys(responses).find((status) => status.startsWith('2'))!;
        t.ok(headersOf(responses[success]!).includes('idempotent-replayed'), `${name}: ${success} with idempotent-replayed`);
        t.ok(headersOf(responses['409']!).includes('retry-after'), `${name}: 409 (key in progress) with Retry-After`);
      }
    }
  }
  const token = document.paths['/v1/auth/token'].post.responses as Record<string, Json>;
  t.ok(token['401'], 'the token endpoint declares 401 invalid_client');
  t.ok(headersOf(token['400']!).includes('retry-after'), 'the token endpoint declares Retry-After on its throttled 400');
  const getReferral = document.paths['/v1/referrals/{id}'].get.responses as Record<string, Json>;
  t.ok(headersOf(getReferral['200']!).includes('etag'), 'GET /v1/referrals/{id} declares its ETag');
  t.ok(headersOf(document.paths['/v1/referrals'].post.responses['201']).includes('etag'), 'POST /v1/referrals declares the ETag of the referral it created');
  t.ok(document.components?.headers?.RequestId, 'headers are components');
});
