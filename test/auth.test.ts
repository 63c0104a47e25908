// Authentication through the HTTP API (SPEC §9): the three grants, sign-in slow-down and throttling,
// refresh-token rotation and revocation, access-token checks, rate limits and the bootstrap admin.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { users } from '../src/db/schema.js';
import {
  adminEmail,
  adminPassword,
  auditEvents,
  buildTestApp,
  createOffice,
  createTestDatabase,
  defaultPassword,
  pgliteTemplate,
  testConfig,
  testDatabaseServer,
  TestApp,
  type Json,
  type TestResponse as Response,
} from './helper.js';
import { assertProblem as assertProblemAnswer } from './fixtures/problems.js';
import { accessTokenClaims, decodeJwt, signJwt, tamperedJwt, tokenAudience, tokenIssuer, unsignedJwt } from './tokens.js';


// ---------------------------------------------------------------------------------------------
// Helpers

const tokenRequest = (app: TestApp, payload: Json | string, headers: Record<string, string> = {}) =>
  app.request({ method: 'POST', url: '/v1/auth/token', payload, headers });

const passwordGrant = (app: TestApp, username: string, password = defaultPassword, headers: Record<string, string> = {}) =>
  tokenRequest(app, { grant_type: 'password', username, password }, headers);

const refreshGrant = (app: TestApp, refreshToken: string, headers: Record<string, string> = {}) =>
  tokenRequest(app, { grant_type: 'refresh_token', refresh_token: refreshToken }, headers);

const clientGrant = (app: TestApp, client: { clientId: string; clientSecret: string }, scope?: string) =>
  tokenRequest(app, { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret, ...(scope ? { scope } : {}) });

const revoke = (app: TestApp, accessToken: string | undefined, token: string) =>
  app.request({ method: 'POST', url: '/v1/auth/revoke', token: accessToken, payload: { token } });

const getMe = (app: TestApp, accessToken: string | undefined, headers: Record<string, string> = {}) =>
  app.request({ method: 'GET', url: '/v1/me', token: accessToken, headers });

const basicAuthorization = (clientId: string, clientSecret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;

/** Asserts a problem answer (test/fixtures/problems.ts) whose status member matches and, for token endpoint errors, with this OAuth `error` code. */
function assertProblem(t: Test, response: Response, status: number, error?: string): Json {
  const body = assertProblemAnswer(t, response, status);
  t.equal(body.status, status, 'problem status member');
  if (error) t.equal(body.error, error, `OAuth error ${error}`);
  return body;
}

/** Signs in and returns both tokens, failing the test on anything but 200. */
async function signIn(t: Test, app: TestApp, email: string, password = defaultPassword): Promise<{ accessToken: string; refreshToken: string }> {
  const response = await passwordGrant(app, email, password);
  t.equal(response.statusCode, 200, `sign-in of ${email}`);
  const body = response.json();
  return { accessToken: body.access_token, refreshToken: body.refresh_token };
}

/** A fresh office-staff user, so a test that locks, deactivates or revokes touches nobody else. */
async function addUser(app: TestApp, organizationId: string, adminToken: string): Promise<{ id: string; email: string }> {
  const email = `user.${randomUUID().slice(0, 8)}@auth-test.example`;
  const user = await app.create(`/v1/organizations/${organizationId}/users`, adminToken, {
    role: 'office_staff',
    email,
    password: defaultPassword,
    name: 'Auth test user',
  });
  return { id: user.id, email };
}

/** Audit rows of one action written while serving the request with this x-request-id. */
async function auditedFor(app: TestApp, action: string, requestId: string) {
  return (await auditEvents(app, { action })).filter((row) => row.requestId === requestId);
}

const withRequestId = () => {
  const requestId = randomUUID();
  return { requestId, headers: { 'x-request-id': requestId } };
};

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

// ---------------------------------------------------------------------------------------------
// One app for every group that runs with the default test settings.

const test = await buildTestApp(t);
const adminToken = await test.loginAsAdmin();
const office = await createOffice(test, adminToken);

t.test('POST /v1/auth/token › password grant', async (t) => {
  t.test('issues a Bearer access token with the expected claims and a refresh token, uncached', async (t) => {
    const response = await passwordGrant(test, office.physician.email);
    t.equal(response.statusCode, 200);
    t.equal(response.headers['cache-control'], 'no-store');
    const body = response.json();
    t.equal(body.token_type, 'Bearer');
    t.equal(body.expires_in, 900);
    t.type(body.refresh_token, 'string');
    t.ok(body.refresh_token.length >= 32, 'refresh token is long and random');
    const { header, payload } = decodeJwt(body.access_token);
    t.equal(header.alg, 'HS256');
    t.match(payload, {
      iss: tokenIssuer,
      aud: tokenAudience,
      sub: office.physician.id,
      typ: 'user',
      role: 'physician',
      org: office.id,
      org_kind: 'physician_office',
    });
    t.equal(payload.exp - payload.iat, 900, 'lives 15 minutes');
    t.equal((await getMe(test, body.access_token)).statusCode, 200, 'the token works');
  });

  t.test('rejects a wrong password and audits it', async (t) => {
    const { requestId, headers } = withRequestId();
    const body = assertProblem(t, await passwordGrant(test, office.staff.email, 'not-the-password', headers), 400, 'invalid_grant');
    t.equal(body.detail, 'The email or password is incorrect');
    const rows = await auditedFor(test, 'auth.login_failed', requestId);
    t.equal(rows.length, 1, 'one audit row');
    t.match(rows[0], { outcome: 'denied', resourceType: 'user', resourceId: office.staff.id });
  });

  t.test('rejects an unknown email with the same message as a wrong password, and audits it', async (t) => {
    const { requestId, headers } = withRequestId();
    const unknown = assertProblem(t, await passwordGrant(test, 'nobody@nowhere.example', defaultPassword, headers), 400, 'invalid_grant');
    const wrong = assertProblem(t, await passwordGrant(test, office.staff.email, 'not-the-password'), 400, 'invalid_grant');
    t.equal(unknown.detail, wrong.detail, 'no hint whether the account exists');
    const rows = await auditedFor(test, 'auth.login_failed', requestId);
    t.equal(rows.length, 1, 'one audit row');
    t.match(rows[0], { outcome: 'denied' });
    // Clear the staff member's failure count for later tests.
    await signIn(t, test, office.staff.email);
  });

  t.test('asks for a missing password with invalid_request', async (t) => {
    const body = assertProblem(t, await tokenRequest(test, { grant_type: 'password', username: office.physician.email }), 400, 'invalid_request');
    t.match(body.detail, /password/);
  });

  t.test('token errors carry the OAuth problem type and title of the error catalogue', async (t) => {
    const body = assertProblem(t, await passwordGrant(test, 'nobody@nowhere.example'), 400, 'invalid_grant');
    t.equal(body.type, 'urn:massage-referral:problem:oauth');
    t.equal(body.title, 'Token Request Rejected');
  });

  t.test('rejects an unsupported grant_type as a validation error naming the field', async (t) => {
    const body = assertProblem(t, await tokenRequest(test, { grant_type: 'authorization_code', code: 'x' }), 400);
    t.ok(body.errors.some((problem: Json) => problem.field === 'grant_type'), 'names grant_type');
  });

  t.test('matches the email case-insensitively', async (t) => {
    const response = await passwordGrant(test, office.physician.email.toUpperCase());
    t.equal(response.statusCode, 200);
    t.equal(decodeJwt(response.json().access_token).payload.sub, office.physician.id);
  });

  t.test('accepts an application/x-www-form-urlencoded body', async (t) => {
    const form = new URLSearchParams({ grant_type: 'password', username: office.physician.email, password: defaultPassword });
    const response = await tokenRequest(test, form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
    t.equal(response.statusCode, 200);
    t.equal(response.json().token_type, 'Bearer');
  });
});

t.test('POST /v1/auth/token › deactivated user', async (t) => {
  const user = await addUser(test, office.id, office.admin.token);
  const before = await signIn(t, test, user.email);
  const userUrl = `/v1/organizations/${office.id}/users/${user.id}`;
  const deactivate = await test.request({ method: 'PATCH', url: userUrl, token: office.admin.token, payload: { active: false } });
  t.equal(deactivate.statusCode, 200, 'the office admin deactivates the user');
  t.equal(deactivate.json().active, false);

  t.test('cannot sign in, with the usual message, and the attempt is audited', async (t) => {
    const { requestId, headers } = withRequestId();
    const body = assertProblem(t, await passwordGrant(test, user.email, defaultPassword, headers), 400, 'invalid_grant');
    t.equal(body.detail, 'The email or password is incorrect');
    t.match(await auditedFor(test, 'auth.login_failed', requestId), [{ outcome: 'denied', resourceId: user.id }]);
  });

  t.test('an access token issued before is refused on /v1/me', async (t) => {
    const response = assertProblem(t, await getMe(test, before.accessToken), 401);
    t.ok(response.detail, 'says why');
  });

  t.test('a refresh token issued before is refused', async (t) => {
    assertProblem(t, await refreshGrant(test, before.refreshToken), 400, 'invalid_grant');
  });

  t.test('once reactivated, the user signs in again but the old session stays ended', async (t) => {
    const reactivate = await test.request({ method: 'PATCH', url: userUrl, token: office.admin.token, payload: { active: true } });
    t.equal(reactivate.statusCode, 200);
    await signIn(t, test, user.email);
    assertProblem(t, await refreshGrant(test, before.refreshToken), 400, 'invalid_grant');
  });
});

t.test('POST /v1/auth/token › client_credentials grant', async (t) => {
  const clientsUrl = `/v1/organizations/${office.id}/api-clients`;
  type Client = { id: string; clientId: string; clientSecret: string };
  const createClient = async (name: string, scopes: string[]) => (await test.create(clientsUrl, office.admin.token, { name, scopes })) as Client;
  const created = await test.request({
    method: 'POST',
    url: clientsUrl,
    token: office.admin.token,
    payload: { name: 'Partner EHR', scopes: ['patients:read', 'referrals:read'] },
  });
  const ehr = created.json<Client>();
  const directoryOnly = await createClient('Directory widget', ['directory:read']);

  t.test('an office admin creates a client whose secret is returned once', async (t) => {
    t.equal(created.statusCode, 201);
    t.equal(created.headers['cache-control'], 'no-store');
    t.type(ehr.clientId, 'string');
    t.type(ehr.clientSecret, 'string');
    const listed = await test.request({ method: 'GET', url: clientsUrl, token: office.admin.token });
    t.equal(listed.statusCode, 200);
    t.notOk(listed.body.includes(ehr.clientSecret), 'the list never shows the secret');
  });

  t.test('issues an access token for credentials in a JSON body', async (t) => {
    const response = await clientGrant(test, ehr);
    t.equal(response.statusCode, 200);
    t.equal(response.headers['cache-control'], 'no-store');
    const body = response.json();
    t.equal(body.token_type, 'Bearer');
    t.equal(body.expires_in, 900);
    t.equal(body.scope, 'patients:read referrals:read');
    t.notOk('refresh_token' in body, 'no refresh token for a client');
    t.match(decodeJwt(body.access_token).payload, { sub: ehr.id, typ: 'api_client', org: office.id, iss: tokenIssuer, aud: tokenAudience });
  });

  t.test('issues an access token for credentials in HTTP Basic', async (t) => {
    const response = await tokenRequest(test, { grant_type: 'client_credentials' }, { authorization: basicAuthorization(ehr.clientId, ehr.clientSecret) });
    t.equal(response.statusCode, 200);
    t.equal(decodeJwt(response.json().access_token).payload.sub, ehr.id);
  });

  t.test('rejects a wrong secret with 401 invalid_client', async (t) => {
    assertProblem(t, await clientGrant(test, { clientId: ehr.clientId, clientSecret: 'cs_wrong' }), 401, 'invalid_client');
  });

  t.test('rejects a wrong secret in HTTP Basic with 401 invalid_client and WWW-Authenticate (RFC 6749 §5.2)', async (t) => {
    const response = await tokenRequest(test, { grant_type: 'client_credentials' }, { authorization: basicAuthorization(ehr.clientId, 'cs_wrong') });
    assertProblem(t, response, 401, 'invalid_client');
    t.match(response.headers['www-authenticate'], /^Basic/, 'challenges with the scheme the client used');
  });

  t.test('rejects an unknown client with 401 invalid_client', async (t) => {
    assertProblem(t, await clientGrant(test, { clientId: 'cli_unknown', clientSecret: ehr.clientSecret }), 401, 'invalid_client');
  });

  t.test('refuses a scope the client was not granted with invalid_scope', async (t) => {
    assertProblem(t, await clientGrant(test, ehr, 'patients:read patients:write'), 400, 'invalid_scope');
  });

  t.test('narrows the token to a requested subset of its scopes', async (t) => {
    const response = await clientGrant(test, ehr, 'patients:read');
    t.equal(response.statusCode, 200);
    t.equal(response.json().scope, 'patients:read');
    const me = await getMe(test, response.json().access_token);
    t.same(me.json().scopes, ['patients:read']);
  });

  t.test('GET /v1/me describes the client, its scopes and its organization', async (t) => {
    const me = await getMe(test, (await clientGrant(test, ehr)).json().access_token);
    t.equal(me.statusCode, 200);
    t.match(me.json(), {
      kind: 'api_client',
      id: ehr.id,
      clientId: ehr.clientId,
      name: 'Partner EHR',
      scopes: ['patients:read', 'referrals:read'],
      organization: { id: office.id, kind: 'physician_office' },
    });
  });

  t.test('a client without patients:read gets 403 on GET /v1/patients; one with it gets 200', async (t) => {
    const without = (await clientGrant(test, directoryOnly)).json().access_token;
    assertProblem(t, await test.request({ method: 'GET', url: '/v1/patients', token: without }), 403);
    const withScope = (await clientGrant(test, ehr)).json().access_token;
    t.equal((await test.request({ method: 'GET', url: '/v1/patients', token: withScope })).statusCode, 200);
  });

  t.test('a revoked client: its token is refused with 401 and it gets no new one', async (t) => {
    const doomed = await createClient('Retired integration', ['patients:read']);
    const accessToken = (await clientGrant(test, doomed)).json().access_token;
    t.equal((await getMe(test, accessToken)).statusCode, 200, 'works before');
    const deleted = await test.request({ method: 'DELETE', url: `${clientsUrl}/${doomed.id}`, token: office.admin.token });
    t.equal(deleted.statusCode, 204);
    assertProblem(t, await getMe(test, accessToken), 401);
    assertProblem(t, await clientGrant(test, doomed), 401, 'invalid_client');
  });
});

t.test('POST /v1/auth/token › refresh_token grant', async (t) => {
  const user = await addUser(test, office.id, office.admin.token);

  t.test('rotates: each use returns new tokens and a new refresh token that works in turn', async (t) => {
    const first = await signIn(t, test, user.email);
    const second = await refreshGrant(test, first.refreshToken);
    t.equal(second.statusCode, 200);
    t.equal(second.headers['cache-control'], 'no-store');
    const body = second.json();
    t.type(body.refresh_token, 'string');
    t.not(body.refresh_token, first.refreshToken, 'a new refresh token');
    t.equal(body.expires_in, 900);
    t.equal((await getMe(test, body.access_token)).json().id, user.id, 'the new access token works');
    t.equal((await refreshGrant(test, body.refresh_token)).statusCode, 200, 'the new refresh token works');
  });

  t.test('reusing a rotated token fails, ends the whole family, and is audited', async (t) => {
    const other = await signIn(t, test, user.email);
    const first = await signIn(t, test, user.email);
    const second = (await refreshGrant(test, first.refreshToken)).json().refresh_token;
    const { requestId, headers } = withRequestId();
    assertProblem(t, await refreshGrant(test, first.refreshToken, headers), 400, 'invalid_grant');
    assertProblem(t, await refreshGrant(test, second), 400, 'invalid_grant');
    t.match(await auditedFor(test, 'auth.refresh_reuse', requestId), [{ outcome: 'denied', resourceId: user.id }]);
    t.equal((await refreshGrant(test, other.refreshToken)).statusCode, 200, 'another session of the same user lives on');
  });

  t.test('rejects an unknown refresh token with invalid_grant', async (t) => {
    assertProblem(t, await refreshGrant(test, 'not-a-refresh-token-we-issued'), 400, 'invalid_grant');
  });

  t.test('asks for a missing refresh_token with invalid_request', async (t) => {
    assertProblem(t, await tokenRequest(test, { grant_type: 'refresh_token' }), 400, 'invalid_request');
  });
});

t.test('POST /v1/auth/revoke', async (t) => {
  const user = await addUser(test, office.id, office.admin.token);
  const neighbour = await addUser(test, office.id, office.admin.token);

  t.test('needs a bearer token', async (t) => {
    const session = await signIn(t, test, user.email);
    assertProblem(t, await revoke(test, undefined, session.refreshToken), 401);
    t.equal((await refreshGrant(test, session.refreshToken)).statusCode, 200, 'nothing was revoked');
  });

  t.test("revoking one's own refresh token makes it unusable", async (t) => {
    const session = await signIn(t, test, user.email);
    const response = await revoke(test, session.accessToken, session.refreshToken);
    t.equal(response.statusCode, 200);
    t.same(response.json(), {});
    assertProblem(t, await refreshGrant(test, session.refreshToken), 400, 'invalid_grant');
  });

  t.test("revoking someone else's refresh token does nothing", async (t) => {
    const mine = await signIn(t, test, user.email);
    const theirs = await signIn(t, test, neighbour.email);
    const response = await revoke(test, mine.accessToken, theirs.refreshToken);
    t.equal(response.statusCode, 200, 'answers as for any token (RFC 7009)');
    t.equal((await refreshGrant(test, theirs.refreshToken)).statusCode, 200, 'theirs still works');
  });

  t.test('answers 200 for an unknown token', async (t) => {
    const session = await signIn(t, test, user.email);
    const response = await revoke(test, session.accessToken, 'never-issued');
    t.equal(response.statusCode, 200);
  });
});

t.test('GET /v1/me › access-token checks', async (t) => {
  const physician = { id: office.physician.id, role: 'physician', organizationId: office.id, organizationKind: 'physician_office' };
  const valid = accessTokenClaims(physician);
  const { exp: _exp, ...withoutExpiry } = valid;
  const now = Math.floor(Date.now() / 1000);

  t.test('a token forged with the test key and valid claims is accepted (control)', async (t) => {
    const response = await getMe(test, signJwt(valid));
    t.equal(response.statusCode, 200);
    t.equal(response.json().id, office.physician.id);
  });

  t.test('no token: 401 with a Bearer challenge', async (t) => {
    const response = await getMe(test, undefined);
    assertProblem(t, response, 401);
    t.match(response.headers['www-authenticate'], /^Bearer/);
  });

  t.test('another authorization scheme: 401', async (t) => {
    const response = await getMe(test, undefined, { authorization: basicAuthorization('someone', 'something') });
    assertProblem(t, response, 401);
    t.match(response.headers['www-authenticate'], /^Bearer/);
  });

  const refused: Array<[string, string]> = [
    ['a malformed token', 'not-a-jwt'],
    ['a token of three garbage parts', 'aaa.bbb.ccc'],
    ['an expired token', signJwt(accessTokenClaims(physician, { iat: now - 1000, exp: now - 100 }))],
    ['a token not valid yet (nbf in the future)', signJwt(accessTokenClaims(physician, { nbf: now + 600 }))],
    ['a token without an expiry', signJwt(withoutExpiry)],
    ['a token for another audience', signJwt(accessTokenClaims(physician, { aud: 'another-api' }))],
    ['a token from another issuer', signJwt(accessTokenClaims(physician, { iss: 'someone-else' }))],
    ['an unsigned token (alg: none)', unsignedJwt(valid)],
    ['a token signed with a foreign key', signJwt(valid, { secret: 'a-foreign-secret-that-is-also-long-enough-0123456789' })],
    ['a token signed with another algorithm (HS512) and the right key', signJwt(valid, { alg: 'HS512' })],
    ['a tampered token (role raised to network_admin, signature kept)', tamperedJwt(office.physician.token, { role: 'network_admin' })],
    ['a validly signed token for a subject that does not exist', signJwt(accessTokenClaims({ ...physician, id: randomUUID() }))],
  ];
  for (const [name, token] of refused) {
    t.test(`refuses ${name} with 401`, async (t) => {
      const response = await getMe(test, token);
      assertProblem(t, response, 401);
      t.match(response.headers['www-authenticate'], /^Bearer/);
    });
  }

  t.test('refuses an oversized token (> 4096 characters) with 401, not 500', async (t) => {
    const oversized = signJwt({ ...valid, padding: 'x'.repeat(5000) });
    t.ok(oversized.length > 4096);
    assertProblem(t, await getMe(test, oversized), 401);
    assertProblem(t, await getMe(test, 'x'.repeat(20_000)), 401);
  });
});

t.test('GET /v1/me', async (t) => {
  t.test('as a physician: the user and an organization summary', async (t) => {
    const response = await getMe(test, office.physician.token);
    t.equal(response.statusCode, 200);
    const me = response.json();
    t.match(me, { kind: 'user', id: office.physician.id, email: office.physician.email, role: 'physician' });
    t.same(Object.keys(me.organization).sort(), ['id', 'kind', 'name']);
    t.match(me.organization, { id: office.id, kind: 'physician_office', name: /^Office / });
  });

  t.test('the bootstrap admin is a network admin without an organization', async (t) => {
    const response = await getMe(test, adminToken);
    t.equal(response.statusCode, 200);
    t.match(response.json(), { kind: 'user', email: adminEmail, role: 'network_admin', organization: null });
  });
});

// ---------------------------------------------------------------------------------------------
// Groups that need settings of their own.

t.test('POST /v1/auth/token › failed-login slow-down and throttling', async (t) => {
  const failureDelayMs = 40;
  const lockoutSeconds = 2;
  const app = await buildTestApp(t, {
    env: { LOGIN_MAX_FAILURES: '3', LOGIN_FAILURE_DELAY_MS: String(failureDelayMs), LOGIN_LOCKOUT_SECONDS: String(lockoutSeconds) },
  });
  const fixture = await createOffice(app, await app.loginAsAdmin());

  t.test('each consecutive failure waits twice as long, and after the third even the right password is refused from that address', async (t) => {
    const durations: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const { result, ms } = await timed(() => passwordGrant(app, fixture.physician.email, 'wrong-password'));
      assertProblem(t, result, 400, 'invalid_grant');
      durations.push(ms);
    }
    durations.forEach((ms, index) => t.ok(ms >= failureDelayMs * 2 ** index, `failure ${index + 1} took ${ms.toFixed(0)} ms ≥ ${failureDelayMs * 2 ** index} ms`));
    t.ok(durations[2]! > durations[0]!, 'the third failure is slower than the first');

    const { requestId, headers } = withRequestId();
    const refused = await passwordGrant(app, fixture.physician.email, defaultPassword, headers);
    const body = assertProblem(t, refused, 400, 'invalid_grant');
    t.match(body.detail, /Too many failed sign-ins/, 'says there were too many failures');
    const retryAfter = Number(refused.headers['retry-after']);
    t.ok(retryAfter >= 1 && retryAfter <= lockoutSeconds, `Retry-After ${refused.headers['retry-after']} within the window`);
    t.match(await auditedFor(app, 'auth.login_failed', requestId), [{ outcome: 'denied', resourceId: fixture.physician.id }], 'the refused attempt is audited');

    // The refusal is temporary: once Retry-After has passed, the right password works again.
    await sleep(retryAfter * 1000 + 100);
    t.equal((await passwordGrant(app, fixture.physician.email)).statusCode, 200, 'signs in after the window ends');
  });

  t.test("a successful sign-in clears its address's count", async (t) => {
    const email = fixture.staff.email;
    for (const round of [1, 2]) {
      for (let attempt = 0; attempt < 2; attempt++) assertProblem(t, await passwordGrant(app, email, 'wrong-password'), 400, 'invalid_grant');
      t.equal((await passwordGrant(app, email)).statusCode, 200, `round ${round}: two failures, then signed in`);
    }
  });
});

t.test('POST /v1/auth/token › rate limit', async (t) => {
  const app = await buildTestApp(t, { env: { TOKEN_RATE_LIMIT_PER_MINUTE: '3' } });

  t.test('the fourth request in a minute gets 429 problem+json with Retry-After', async (t) => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      assertProblem(t, await passwordGrant(app, 'nobody@nowhere.example'), 400, 'invalid_grant');
    }
    const limited = await passwordGrant(app, adminEmail, adminPassword);
    assertProblem(t, limited, 429);
    t.ok(Number(limited.headers['retry-after']) > 0, `Retry-After ${limited.headers['retry-after']}`);
    const elsewhere = await app.request({
      method: 'POST',
      url: '/v1/auth/token',
      remoteAddress: '192.0.2.10',
      payload: { grant_type: 'password', username: adminEmail, password: adminPassword },
    });
    t.equal(elsewhere.statusCode, 200, 'another address has its own budget');
  });
});

t.test('bootstrap admin', async (t) => {
  t.test('is created once: a restart with another password neither duplicates nor changes it', async (t) => {
    const start = await restartableDatabase(t);
    const first = await start();
    t.equal((await first.app.db.select().from(users).where(eq(users.email, adminEmail))).length, 1);
    t.match((await getMe(first, await first.loginAsAdmin())).json(), { role: 'network_admin' });

    const second = await start({ BOOTSTRAP_ADMIN_PASSWORD: 'a-different-password-on-restart' });
    t.equal((await second.app.db.select().from(users).where(eq(users.email, adminEmail))).length, 1, 'still one admin');
    t.equal((await passwordGrant(second, adminEmail, adminPassword)).statusCode, 200, 'the first password still signs in');
    assertProblem(t, await passwordGrant(second, adminEmail, 'a-different-password-on-restart'), 400, 'invalid_grant');
  });
});

/**
 * Starts the app on one database again and again, as a restart would: the same PostgreSQL database,
 * or for the embedded database a copy of the previous app's data folder. Each start stops the one before.
 */
async function restartableDatabase(t: Test): Promise<(env?: Record<string, string>) => Promise<TestApp>> {
  const server = testDatabaseServer ? await createTestDatabase() : undefined;
  let current: TestApp | undefined;
  t.teardown(async () => {
    await current?.app.close();
    await server?.drop();
  });
  return async (env = {}) => {
    const template = server ? undefined : current ? await current.app.database.dumpDataDir!() : await pgliteTemplate();
    await current?.app.close();
    current = undefined;
    const config = testConfig({ ...(server ? { DATABASE_URL: server.url } : { DATA_DIR: 'memory://' }), ...env });
    current = new TestApp(await buildApp({ config, pgliteTemplate: template }), config);
    return current;
  };
}
