// API conventions (SPEC §10): problem+json for every failure, strict bodies, x-request-id, security headers.
import t from 'tap';
import { assertProblemDetails } from './fixtures/problems.js';
import { uuidPattern } from './fixtures/responses.js';
import { buildTestApp, type Json } from './helper.js';

const organization = (overrides: Json = {}): Json => ({
  kind: 'therapy_practice',
  name: 'Conventions Practice',
  address: { line1: '2 Test Ave', city: 'Portland', state: 'OR', postalCode: '97204' },
  location: { lat: 45.5152, lng: -122.6734 },
  ...overrides,
});

const test = await buildTestApp(t);
const admin = await test.loginAsAdmin();

async function organizationCount(): Promise<number> {
  const response = await test.request({ method: 'GET', url: '/v1/organizations?limit=200', token: admin });
  return response.json().data.length;
}

t.test('a body validation error is a 400 problem naming the nested field, and creates nothing', async (t) => {
  const before = await organizationCount();
  const response = await test.request({
    method: 'POST',
    url: '/v1/organizations',
    token: admin,
    payload: organization({ location: { lat: 123, lng: -122.6734 } }),
  });
  const body = assertProblemDetails(t, response, 400, '/v1/organizations');
  t.match(body.errors, [{ field: 'location.lat', message: String }]);
  t.match(body.detail, /location\.lat/);
  t.equal(await organizationCount(), before, 'no organization was created');
});

t.test('a query validation error names the field as query.<name>, and instance omits the query string', async (t) => {
  const response = await test.request({ method: 'GET', url: '/v1/organizations?limit=0&kind=therapy_practice', token: admin });
  const body = assertProblemDetails(t, response, 400, '/v1/organizations');
  t.same(body.errors.map((problem: Json) => problem.field), ['query.limit']);
});

t.test('query strings are coerced: limit=5 is taken as the integer 5', async (t) => {
  const response = await test.request({ method: 'GET', url: '/v1/organizations?limit=5', token: admin });
  t.equal(response.statusCode, 200);
  t.ok(Array.isArray(response.json().data));
});

t.test('an unknown body field is rejected (not dropped), named, and nothing is created', async (t) => {
  const before = await organizationCount();
  const response = await test.request({
    method: 'POST',
    url: '/v1/organizations',
    token: admin,
    payload: organization({ favouriteColour: 'teal' }),
  });
  const body = assertProblemDetails(t, response, 400, '/v1/organizations');
  const problem = body.errors.find((entry: Json) => entry.field === 'favouriteColour');
  t.ok(problem, 'the unknown field is named');
  t.match(problem?.message, /not (a )?recogni[sz]ed/);
  t.equal(await organizationCount(), before, 'no organization was created');
});

t.test('the body is strict: a string where an integer is expected is refused, not coerced', async (t) => {
  const practice = await test.create('/v1/organizations', admin, organization({ name: 'Strict Practice' }));
  const url = `/v1/organizations/${practice.id}/users`;
  const response = await test.request({
    method: 'POST',
    url,
    token: admin,
    payload: {
      role: 'therapist',
      email: 'strict.therapist@practice.example',
      password: 'a-long-test-password',
      name: 'Strict Therapist',
      license: { number: 'MT-1', state: 'OR', expiresOn: '2028-12-31' },
      techniques: ['trigger_point'],
      acceptingReferrals: true,
      serviceRadiusKm: '25',
    },
  });
  const body = assertProblemDetails(t, response, 400, url);
  t.match(body.errors, [{ field: 'serviceRadiusKm', message: /integer/ }]);
  const users = await test.request({ method: 'GET', url, token: admin });
  t.equal(users.statusCode, 200);
  t.same(users.json().data, [], 'no user was created');
});

t.test('malformed JSON is a 400 problem', async (t) => {
  const response = await test.request({
    method: 'POST',
    url: '/v1/organizations',
    token: admin,
    headers: { 'content-type': 'application/json' },
    payload: '{"kind": "therapy_practice", ',
  });
  assertProblemDetails(t, response, 400, '/v1/organizations');
});

t.test('an unsupported content type is a 415 problem', async (t) => {
  for (const contentType of ['application/xml', 'text/plain']) {
    await t.test(contentType, async (t) => {
      const response = await test.request({
        method: 'POST',
        url: '/v1/organizations',
        token: admin,
        headers: { 'content-type': contentType },
        payload: 'kind=therapy_practice',
      });
      assertProblemDetails(t, response, 415, '/v1/organizations');
    });
  }
});

t.test('a body over 1 MiB is a 413 problem', async (t) => {
  const response = await test.request({
    method: 'POST',
    url: '/v1/organizations',
    token: admin,
    payload: organization({ name: 'x'.repeat(1024 * 1024 + 1) }),
  });
  assertProblemDetails(t, response, 413, '/v1/organizations');
});

t.test('an unknown route is a 404 problem', async (t) => {
  const response = await test.request({ method: 'GET', url: '/v1/no-such-thing?secret=1', token: admin });
  const body = assertProblemDetails(t, response, 404, '/v1/no-such-thing');
  t.notMatch(body.detail, /secret/, 'the query string is not echoed');
});

t.test('x-request-id: a sane incoming id is echoed on the response and in the problem', async (t) => {
  const id = 'client-req_42.a:b';
  const ok = await test.request({ method: 'GET', url: '/health/live', headers: { 'x-request-id': id } });
  t.equal(ok.headers['x-request-id'], id);
  const error = await test.request({ method: 'GET', url: '/v1/no-such-thing', headers: { 'x-request-id': id } });
  t.equal(error.headers['x-request-id'], id);
  t.equal(error.json().requestId, id);
});

t.test('x-request-id: an absent or insane id is replaced by a generated uuid', async (t) => {
  const absent = await test.request({ method: 'GET', url: '/health/live' });
  t.match(absent.headers['x-request-id'], uuidPattern, 'absent → uuid');
  for (const [label, incoming] of [
    ['300 characters', 'a'.repeat(300)],
    ['spaces', 'has spaces in it'],
    ['a newline escape', 'abc%0d%0aSet-Cookie:x'],
  ]) {
    const response = await test.request({ method: 'GET', url: '/health/live', headers: { 'x-request-id': incoming! } });
    t.match(response.headers['x-request-id'], uuidPattern, `${label} → uuid`);
  }
  const first = await test.request({ method: 'GET', url: '/health/live' });
  const second = await test.request({ method: 'GET', url: '/health/live' });
  t.not(first.headers['x-request-id'], second.headers['x-request-id'], 'each request gets its own id');
});

t.test('security headers from helmet are on every response, errors included', async (t) => {
  for (const url of ['/health/live', '/v1/me', '/v1/no-such-thing']) {
    const response = await test.request({ method: 'GET', url });
    t.equal(response.headers['x-content-type-options'], 'nosniff', `${url}: x-content-type-options`);
    t.match(response.headers['strict-transport-security'], /max-age=\d+/, `${url}: strict-transport-security`);
    t.ok(response.headers['content-security-policy'], `${url}: content-security-policy`);
    t.equal(response.headers['x-frame-options'], 'SAMEORIGIN', `${url}: x-frame-options`);
    t.notOk(response.headers['x-powered-by'], `${url}: no x-powered-by`);
  }
});

t.test('a missing token is a 401 problem with a WWW-Authenticate challenge', async (t) => {
  const response = await test.request({ method: 'GET', url: '/v1/me?x=1' });
  assertProblemDetails(t, response, 401, '/v1/me');
  t.match(response.headers['www-authenticate'], /^Bearer/);
});

t.test('a server error is a generic 5xx problem that leaks no SQL or stack', async (t) => {
  // The app's own close then closes the database a second time, which must be harmless.
  const broken = await buildTestApp(t);
  const token = await broken.loginAsAdmin();
  await broken.app.database.close();
  const response = await broken.request({ method: 'GET', url: '/v1/me?probe=1', token });
  t.ok(response.statusCode >= 500 && response.statusCode < 600, `5xx (got ${response.statusCode})`);
  const body = assertProblemDetails(t, response, response.statusCode, '/v1/me');
  t.match(body.detail, /unexpected error|temporarily unavailable/i, 'a generic detail');
  for (const leak of [/select/i, /\bsql\b/i, /^\s*at /m, /\bfrom\s+"/i, /pglite|postgres/i, /\.ts:\d+/]) {
    t.notMatch(response.body, leak, `the body does not match ${leak}`);
  }
  t.notOk(body.stack, 'no stack member');
  t.notOk(body.errors, 'no errors list');
});
