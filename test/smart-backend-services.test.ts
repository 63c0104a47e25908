// SMART Backend Services (issue 18): API clients that register public keys (a key set, or a JWKS
// URL behind the SSRF guard) and sign in with client_credentials and a signed client assertion
// (RFC 7523); every way an assertion can be wrong is invalid_client and audited; SMART scopes are
// mapped onto the client's scopes and narrowed to what it holds; keys rotate through PATCH; and
// another organization's admin sees none of it.
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { fhirScopeAllows, smartConfiguration, type Principal } from '../src/modules/auth/index.js';
import { captureLog } from './fixtures/captured-log.js';
import { auditEvents } from './fixtures/database.js';
import { fakeDns } from './fixtures/fake-dns.js';
import { createOffice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { forgedJwt, jwksOf, privateJwk, signAssertion, signingKey, startJwksServer, type AssertionOptions, type SigningKey } from './fixtures/smart.js';
import { buildTestApp, type Json, type TestApp, type TestResponse } from './helper.js';
import { decodeJwt } from './tokens.js';

const jwtBearer = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const publicBaseUrl = 'https://referrals.test';
const tokenUrl = `${publicBaseUrl}/v1/auth/token`;

const jwks = await startJwksServer(t);
// The JWKS server is on loopback, so this app lets JWKS URLs be http and private; the production
// rules are checked on an app of their own at the end.
const test = await buildTestApp(t, { env: { PUBLIC_BASE_URL: publicBaseUrl, JWKS_ALLOW_PRIVATE_URLS: 'true' }, jwksResolver: jwks.dns.resolve });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);

const clientsUrl = (organizationId: string) => `/v1/organizations/${organizationId}/api-clients`;
const clientUrl = (client: Json, organizationId = office.id) => `${clientsUrl(organizationId)}/${client.id}`;
const readScopes = ['patients:read', 'referrals:read', 'directory:read'];
let paths = 0;
const newPath = () => `/keys-${++paths}.json`;

/** Registers a private_key_jwt client of the office; `body` gives its keys and may override the rest. */
async function registerClient(body: Json, app: TestApp = test, token = office.admin.token): Promise<Json> {
  return app.create(clientsUrl(office.id), token, { name: `EHR ${randomUUID().slice(0, 8)}`, scopes: readScopes, authMethod: 'private_key_jwt', ...body });
}

const tokenRequest = (payload: Json | string, headers: Record<string, string> = {}, app: TestApp = test) =>
  app.request({ method: 'POST', url: '/v1/auth/token', payload, headers });

const assertionGrant = (assertion: string, extra: Json = {}, app: TestApp = test) =>
  tokenRequest({ grant_type: 'client_credentials', client_assertion_type: jwtBearer, client_assertion: assertion, ...extra }, {}, app);

/** Signs an assertion for the client with the key and asks for a token; `extra` adds token request parameters (scope, client_id). */
async function signIn(key: SigningKey, client: Json, options: Partial<AssertionOptions> = {}, extra: Json = {}): Promise<TestResponse> {
  return assertionGrant(await signAssertion(key, { clientId: client.clientId, audience: tokenUrl, ...options }), extra);
}

async function failuresOf(client: Json): Promise<number> {
  return (await auditEvents(test, { action: 'auth.client_failed', outcome: 'denied', resourceId: client.id })).length;
}

/** Asserts 401 invalid_client as the token endpoint answers it, and one more audited failure for the client. */
async function assertRefused(t: Test, response: TestResponse, client: Json, failuresBefore: number, what: string): Promise<void> {
  const body = assertProblem(t, response, 401, [], what);
  t.equal(body.error, 'invalid_client', `${what}: invalid_client`);
  t.equal(await failuresOf(client), failuresBefore + 1, `${what}: audited as auth.client_failed against the client`);
}

const rsa = await signingKey('RS384');
const ec = await signingKey('ES384');
const keySetClient = await registerClient({ jwks: jwksOf(rsa, ec) });

t.test('POST /v1/organizations/{id}/api-clients › private_key_jwt', async (t) => {
  t.test('registers a key set: no secret, the key ids shown, the keys kept public', async (t) => {
    t.equal(keySetClient.authMethod, 'private_key_jwt');
    t.notOk('clientSecret' in keySetClient, 'no secret is made');
    t.same(keySetClient.keyIds, [rsa.kid, ec.kid]);
    t.equal(keySetClient.jwksUrl, null);
    const listed = (await test.request({ method: 'GET', url: clientsUrl(office.id), token: office.admin.token })).json().data.find((item: Json) => item.id === keySetClient.id);
    t.match(listed, { authMethod: 'private_key_jwt', keyIds: [rsa.kid, ec.kid], jwksUrl: null });
  });

  t.test('a client registered as before still gets a secret (client_secret is the default)', async (t) => {
    const client = await test.create(clientsUrl(office.id), office.admin.token, { name: 'Secret EHR', scopes: ['patients:read'] });
    t.equal(client.authMethod, 'client_secret');
    t.type(client.clientSecret, 'string');
    t.equal(client.keyIds, null);
  });

  const refusals: [string, () => Promise<Json>, (string | RegExp)[]][] = [
    ['a private key (d, p, q, dp, dq, qi)', async () => ({ jwks: { keys: [await privateJwk(rsa)] } }), ['jwks.keys[0].d', 'jwks.keys[0].p', 'jwks.keys[0].q', 'jwks.keys[0].dp', 'jwks.keys[0].dq', 'jwks.keys[0].qi']],
    ['an EC private key (d)', async () => ({ jwks: { keys: [await privateJwk(ec)] } }), ['jwks.keys[0].d']],
    ['a symmetric key', async () => ({ jwks: { keys: [{ kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }] } }), ['jwks.keys[0].kty']],
    [
      'an RSA key of 1024 bits',
      async () => ({ jwks: { keys: [{ ...generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }), kid: 'short' }] } }),
      ['jwks.keys[0].n'],
    ],
    ['an EC key on P-256', async () => ({ jwks: { keys: [{ ...(await exportJWK((await generateKeyPair('ES256')).publicKey)), kid: 'p256' }] } }), ['jwks.keys[0].crv']],
    ['an RSA key for ES384', async () => ({ jwks: { keys: [{ ...rsa.publicJwk, alg: 'ES384' }] } }), ['jwks.keys[0].alg']],
    ['a key without kid', async () => ({ jwks: { keys: [{ ...rsa.publicJwk, kid: undefined }] } }), ['jwks.keys[0].kid']],
    ['two keys with one kid', async () => ({ jwks: { keys: [rsa.publicJwk, { ...ec.publicJwk, kid: rsa.kid }] } }), ['jwks.keys[1].kid']],
    ['a point that is not on the curve', async () => ({ jwks: { keys: [{ ...ec.publicJwk, y: ec.publicJwk.x }] } }), ['jwks.keys[0].x']],
    ['neither jwks nor jwksUrl', async () => ({}), ['jwks']],
    ['both jwks and jwksUrl', async () => ({ jwks: jwksOf(rsa), jwksUrl: jwks.url() }), ['jwksUrl']],
    ['a JWKS URL that is not a URL', async () => ({ jwksUrl: 'not a url' }), ['jwksUrl']],
    ['keys with authMethod client_secret', async () => ({ authMethod: 'client_secret', jwks: jwksOf(rsa) }), ['jwks']],
  ];
  for (const [what, body, fields] of refusals) {
    t.test(`refuses ${what} with 400 naming ${fields.join(', ')}, creating nothing`, async (t) => {
      const before = (await test.request({ method: 'GET', url: `${clientsUrl(office.id)}?limit=200`, token: office.admin.token })).json().data.length;
      const response = await test.request({
        method: 'POST',
        url: clientsUrl(office.id),
        token: office.admin.token,
        payload: { name: 'Refused EHR', scopes: readScopes, authMethod: 'private_key_jwt', ...(await body()) },
      });
      assertProblem(t, response, 400, fields);
      t.notOk(/"(d|p|q|dp|dq|qi|k)":/.test(response.body), 'the answer repeats no key material');
      const after = (await test.request({ method: 'GET', url: `${clientsUrl(office.id)}?limit=200`, token: office.admin.token })).json().data.length;
      t.equal(after, before, 'no client was created');
    });
  }
});

t.test('POST /v1/auth/token › client assertion with a registered key set', async (t) => {
  for (const key of [rsa, ec]) {
    t.test(`${key.alg}: a 5-minute token with the granted SMART scopes, which works where its scopes allow and nowhere else`, async (t) => {
      const response = await signIn(key, keySetClient, {}, { scope: 'system/Patient.rs' });
      t.equal(response.statusCode, 200, response.body);
      t.equal(response.headers['cache-control'], 'no-store');
      const body = response.json();
      t.match(body, { token_type: 'Bearer', expires_in: 300, scope: 'system/Patient.rs' });
      t.notOk('refresh_token' in body);
      const claims = decodeJwt(body.access_token).payload;
      t.match(claims, { sub: keySetClient.id, typ: 'api_client', org: office.id, scope: 'patients:read', fhir_scope: 'system/Patient.rs' });
      t.equal(claims.exp - claims.iat, 300);
      const fhir = (url: string) => test.request({ method: 'GET', url, token: body.access_token, headers: { accept: 'application/fhir+json' } });
      t.equal((await fhir('/fhir/R4/Patient?identifier=urn:x|1')).statusCode, 200, 'system/Patient.rs searches Patients');
      t.equal((await fhir('/fhir/R4/Task')).statusCode, 403, 'and nothing else: no Tasks');
      assertProblem(t, await test.request({ method: 'GET', url: '/v1/patients', token: body.access_token }), 403, [], 'a token with SMART scopes is for /fhir/R4 only: GET /v1/patients');
      t.ok((await auditEvents(test, { action: 'auth.client_token', resourceId: keySetClient.id })).length > 0, 'the token is audited');
    });
  }

  t.test('takes a form-encoded request, and a client_id that matches the assertion', async (t) => {
    const assertion = await signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl });
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: jwtBearer, client_assertion: assertion, client_id: keySetClient.clientId, scope: 'system/Practitioner.rs' });
    const response = await tokenRequest(form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
    t.equal(response.statusCode, 200, response.body);
    t.equal(response.json().scope, 'system/Practitioner.rs');
  });

  t.test('without scope: the client scopes, as the secret grant gives them, and no SMART scopes', async (t) => {
    const response = await signIn(rsa, keySetClient);
    t.equal(response.statusCode, 200, response.body);
    t.equal(response.json().scope, readScopes.join(' '));
    t.notOk('fhir_scope' in decodeJwt(response.json().access_token).payload);
    t.equal((await test.request({ method: 'GET', url: '/v1/me', token: response.json().access_token })).statusCode, 200);
  });
});

t.test('POST /v1/auth/token › client assertion with a JWKS URL', async (t) => {
  for (const alg of ['RS384', 'ES384'] as const) {
    t.test(`${alg}: fetched once through the guard, then from the cache`, async (t) => {
      const key = await signingKey(alg);
      const path = newPath();
      jwks.serve(path, jwksOf(key));
      const client = await registerClient({ jwksUrl: jwks.url(path) });
      t.match(client, { authMethod: 'private_key_jwt', jwksUrl: jwks.url(path), keyIds: null });
      t.notOk('clientSecret' in client);
      t.equal(jwks.hits(path), 0, 'nothing is fetched at registration');
      const first = await signIn(key, client, {}, { scope: 'system/Task.rs' });
      t.equal(first.statusCode, 200, first.body);
      t.equal(first.json().scope, 'system/Task.rs');
      const fhir = (url: string) => test.request({ method: 'GET', url, token: first.json().access_token, headers: { accept: 'application/fhir+json' } });
      t.equal((await fhir('/fhir/R4/Task')).statusCode, 200, 'system/Task.rs searches Tasks');
      t.equal((await fhir('/fhir/R4/Patient?identifier=urn:x|1')).statusCode, 403, 'and nothing else: no Patients');
      t.equal((await signIn(key, client)).statusCode, 200);
      t.equal(jwks.hits(path), 1, 'the second sign-in fetched nothing');
      t.ok(jwks.dns.calls.includes('jwks.partner.example'), 'the host was resolved through the guard');
    });
  }

  t.test('a jku equal to the registered URL is taken', async (t) => {
    const key = await signingKey('ES384');
    const path = newPath();
    jwks.serve(path, jwksOf(key));
    const client = await registerClient({ jwksUrl: jwks.url(path) });
    t.equal((await signIn(key, client, { header: { jku: jwks.url(path) } })).statusCode, 200);
  });

  t.test('an unknown kid refetches the set exactly once, and a key rotated in since is found', async (t) => {
    const key = await signingKey('RS384');
    const path = newPath();
    jwks.serve(path, jwksOf(key));
    const client = await registerClient({ jwksUrl: jwks.url(path) });
    t.equal((await signIn(key, client)).statusCode, 200);
    t.equal(jwks.hits(path), 1);

    const rotatedIn = await signingKey('ES384');
    jwks.serve(path, jwksOf(key, rotatedIn));
    t.equal((await signIn(rotatedIn, client)).statusCode, 200, 'the new key is found by one refetch');
    t.equal(jwks.hits(path), 2);

    const unknown = await signingKey('ES384');
    const before = await failuresOf(client);
    await assertRefused(t, await signIn(unknown, client), client, before, 'an unknown kid within 30 s of the last refetch');
    t.equal(jwks.hits(path), 2, 'no second refetch within 30 s');
  });

  t.test('an unknown kid of a set fetched a while ago: one refetch, then refused; another unknown kid fetches nothing', async (t) => {
    const key = await signingKey('ES384');
    const path = newPath();
    jwks.serve(path, jwksOf(key));
    const client = await registerClient({ jwksUrl: jwks.url(path) });
    t.equal((await signIn(key, client)).statusCode, 200);
    const before = await failuresOf(client);
    await assertRefused(t, await signIn(await signingKey('ES384'), client), client, before, 'unknown kid');
    t.equal(jwks.hits(path), 2, 'exactly one refetch');
    await assertRefused(t, await signIn(await signingKey('RS384'), client), client, before + 1, 'another unknown kid');
    t.equal(jwks.hits(path), 2, 'no further fetch');
  });

  const brokenAnswers: [string, (response: import('node:http').ServerResponse) => void][] = [
    ['a redirect (not followed)', (response) => response.writeHead(302, { location: jwks.url('/elsewhere.json') }).end()],
    ['more than 64 KB', (response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [], padding: 'x'.repeat(70 * 1024) }))],
    ['not JSON', (response) => response.writeHead(200).end('<html>')],
    ['a 500', (response) => response.writeHead(500).end()],
  ];
  for (const [what, answer] of brokenAnswers) {
    t.test(`a JWKS URL answering ${what}: invalid_client`, async (t) => {
      const key = await signingKey('ES384');
      const path = newPath();
      jwks.serve(path, answer);
      const client = await registerClient({ jwksUrl: jwks.url(path) });
      await assertRefused(t, await signIn(key, client), client, 0, what);
      t.equal(jwks.hits('/elsewhere.json'), 0, 'no redirect was followed');
    });
  }
});

t.test('POST /v1/auth/token › refused assertions (401 invalid_client, audited)', async (t) => {
  const refusals: [string, () => Promise<string>][] = [
    ['an assertion for another audience', () => signAssertion(rsa, { clientId: keySetClient.clientId, audience: 'https://elsewhere.example/v1/auth/token' })],
    ['an assertion for the token path of another base URL', () => signAssertion(rsa, { clientId: keySetClient.clientId, audience: 'http://localhost:3000/v1/auth/token' })],
    ['an exp more than 5 minutes ahead', () => signAssertion(rsa, { clientId: keySetClient.clientId, audience: tokenUrl, expiresIn: 600 })],
    ['an expired assertion', () => signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl, expiresIn: -120 })],
    ['no exp', () => signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl, claims: { exp: undefined } })],
    ['no jti', () => signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl, claims: { jti: undefined } })],
    ['a sub other than iss', () => signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl, claims: { sub: 'someone-else' } })],
    ['no kid', () => signAssertion(rsa, { clientId: keySetClient.clientId, audience: tokenUrl, header: { kid: undefined } })],
    ['a kid of no registered key', async () => signAssertion({ ...(await signingKey('RS384')), kid: 'not-registered' }, { clientId: keySetClient.clientId, audience: tokenUrl })],
    ['a registered kid with another key behind it', async () => signAssertion({ ...(await signingKey('ES384')), kid: ec.kid }, { clientId: keySetClient.clientId, audience: tokenUrl })],
    ['a jku although the client registered a key set', () => signAssertion(rsa, { clientId: keySetClient.clientId, audience: tokenUrl, header: { jku: jwks.url('/attacker.json') } })],
    [
      'alg none',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return forgedJwt({ alg: 'none', kid: rsa.kid, typ: 'JWT' }, { iss: keySetClient.clientId, sub: keySetClient.clientId, aud: tokenUrl, exp: now + 60, jti: randomUUID() });
      },
    ],
    [
      'HS256 keyed with the public key',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        const unsigned = forgedJwt({ alg: 'HS256', kid: rsa.kid, typ: 'JWT' }, { iss: keySetClient.clientId, sub: keySetClient.clientId, aud: tokenUrl, exp: now + 60, jti: randomUUID() }).slice(0, -1);
        return `${unsigned}.${createHmac('sha256', JSON.stringify(rsa.publicJwk)).update(unsigned).digest('base64url')}`;
      },
    ],
    ['an assertion that is not a JWT', async () => 'not-a-jwt'],
  ];
  for (const [what, assertion] of refusals) {
    t.test(`refuses ${what}`, async (t) => {
      const before = await failuresOf(keySetClient);
      const response = await assertionGrant(await assertion());
      const body = assertProblem(t, response, 401, [], what);
      t.equal(body.error, 'invalid_client');
      // A malformed assertion names no client: it is audited, but against nobody.
      if (what !== 'an assertion that is not a JWT') t.equal(await failuresOf(keySetClient), before + 1, 'audited against the client');
    });
  }
  t.equal(jwks.hits('/attacker.json'), 0, 'a jku that is not the registered URL is never fetched');

  t.test("refuses an assertion signed with another client's key", async (t) => {
    const otherKey = await signingKey('RS384');
    await registerClient({ jwks: jwksOf(otherKey) });
    const before = await failuresOf(keySetClient);
    await assertRefused(t, await signIn(otherKey, keySetClient), keySetClient, before, "another client's key");
  });

  t.test('refuses a jku that is not the registered JWKS URL, fetching neither', async (t) => {
    const key = await signingKey('ES384');
    const path = newPath();
    jwks.serve(path, jwksOf(key));
    jwks.serve('/attacker.json', jwksOf(key));
    const client = await registerClient({ jwksUrl: jwks.url(path) });
    await assertRefused(t, await signIn(key, client, { header: { jku: jwks.url('/attacker.json') } }), client, 0, 'jku mismatch');
    t.equal(jwks.hits('/attacker.json'), 0, 'the jku named is never fetched');
    t.equal(jwks.hits(path), 0, 'refused before any key is looked at');
  });

  t.test('refuses a client_id other than the assertion issuer', async (t) => {
    const before = await failuresOf(keySetClient);
    const other = await registerClient({ jwks: jwksOf(await signingKey('ES384')) });
    const response = await signIn(rsa, keySetClient, {}, { client_id: other.clientId });
    assertProblem(t, response, 401);
    t.equal(response.json().error, 'invalid_client');
    t.equal(await failuresOf(keySetClient), before, 'no client is trusted when the two disagree');
  });

  t.test('a revoked client gets no token', async (t) => {
    const key = await signingKey('ES384');
    const client = await registerClient({ jwks: jwksOf(key) });
    t.equal((await signIn(key, client)).statusCode, 200);
    t.equal((await test.request({ method: 'DELETE', url: clientUrl(client), token: office.admin.token })).statusCode, 204);
    await assertRefused(t, await signIn(key, client), client, 0, 'revoked');
  });

  t.test('an assertion is used once: a replay is refused, and of two at once exactly one gets a token', async (t) => {
    const assertion = await signAssertion(ec, { clientId: keySetClient.clientId, audience: tokenUrl });
    t.equal((await assertionGrant(assertion)).statusCode, 200);
    const replays = async () => (await auditEvents(test, { action: 'auth.client_assertion_replay', outcome: 'denied', resourceId: keySetClient.id })).length;
    const before = await replays();
    const replay = await assertionGrant(assertion);
    t.equal(assertProblem(t, replay, 401).error, 'invalid_client');
    t.equal(await replays(), before + 1, 'audited as auth.client_assertion_replay against the client');

    const jti = randomUUID();
    const [first, second] = await Promise.all([
      signIn(rsa, keySetClient, { jti }),
      signIn(ec, keySetClient, { jti }),
    ]);
    t.same([first!.statusCode, second!.statusCode].sort(), [200, 401], 'one 200 and one 401');
  });

  t.test('a client without a secret is refused on the secret grant', async (t) => {
    const before = await failuresOf(keySetClient);
    const response = await tokenRequest({ grant_type: 'client_credentials', client_id: keySetClient.clientId, client_secret: 'cs_guess' });
    await assertRefused(t, response, keySetClient, before, 'secret grant');
  });

  t.test('an assertion and a secret together are invalid_request', async (t) => {
    const assertion = await signAssertion(rsa, { clientId: keySetClient.clientId, audience: tokenUrl });
    const response = await assertionGrant(assertion, { client_secret: 'cs_x' });
    assertProblem(t, response, 400);
    t.equal(response.json().error, 'invalid_request');
  });

  t.test('an assertion without client_assertion_type is invalid_request; another type or an oversized assertion is a 400 naming it', async (t) => {
    const assertion = await signAssertion(rsa, { clientId: keySetClient.clientId, audience: tokenUrl });
    const missing = await tokenRequest({ grant_type: 'client_credentials', client_assertion: assertion });
    assertProblem(t, missing, 400);
    t.equal(missing.json().error, 'invalid_request');
    assertProblem(t, await assertionGrant(assertion, { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }), 400, ['client_assertion_type']);
    assertProblem(t, await assertionGrant('a'.repeat(8193)), 400, ['client_assertion']);
  });
});

t.test('POST /v1/auth/token › SMART scopes', async (t) => {
  const referralReader = await registerClient({ scopes: ['referrals:read', 'directory:read'], jwks: jwksOf(rsa) });
  const writer = await registerClient({ scopes: ['referrals:read', 'referrals:write', 'patients:read'], jwks: jwksOf(rsa) });
  const grant = async (client: Json, scope: string) => signIn(rsa, client, {}, { scope });
  const referralReads = ['ServiceRequest', 'Task', 'Communication', 'Encounter', 'Observation', 'DocumentReference', 'Binary'].map((type) => `system/${type}.rs`);
  const directoryReads = ['Practitioner', 'PractitionerRole', 'Organization'].map((type) => `system/${type}.rs`);

  t.test('system/*.rs of a client holding every read scope stays a wildcard', async (t) => {
    const response = await grant(keySetClient, 'system/*.rs');
    t.equal(response.statusCode, 200, response.body);
    t.equal(response.json().scope, 'system/*.rs');
    t.same(decodeJwt(response.json().access_token).payload.scope.split(' ').sort(), [...readScopes].sort());
  });

  for (const wildcard of ['system/*.rs', 'system/*.cruds', 'system/*.read']) {
    t.test(`${wildcard} of a client without patients:read is narrowed to the types it may read`, async (t) => {
      const response = await grant(referralReader, wildcard);
      t.equal(response.statusCode, 200, response.body);
      const granted: string[] = response.json().scope.split(' ');
      const expected = wildcard === 'system/*.read' ? [...referralReads, ...directoryReads].map((scope) => scope.replace('.rs', '.read')) : [...referralReads, ...directoryReads];
      t.same([...granted].sort(), [...expected].sort());
      t.notOk(granted.some((scope) => scope.startsWith('system/Patient')), 'no Patient scope');
      t.same(decodeJwt(response.json().access_token).payload.scope.split(' ').sort(), ['directory:read', 'referrals:read']);
    });
  }

  t.test('system/Task.cruds is narrowed to what Task takes and the client holds', async (t) => {
    const response = await grant(writer, 'system/Task.cruds system/ServiceRequest.c');
    t.equal(response.statusCode, 200, response.body);
    t.equal(response.json().scope, 'system/Task.rus system/ServiceRequest.c');
    t.same(decodeJwt(response.json().access_token).payload.scope.split(' ').sort(), ['referrals:read', 'referrals:write']);
  });

  t.test('v1 scopes are taken and written back as v1', async (t) => {
    const response = await grant(writer, 'system/Task.read system/*.write');
    t.equal(response.statusCode, 200, response.body);
    t.same(response.json().scope.split(' ').sort(), ['system/Communication.write', 'system/ServiceRequest.write', 'system/Task.read', 'system/Task.write']);
  });

  t.test('internal scopes are still taken as they are', async (t) => {
    const response = await grant(writer, 'referrals:write');
    t.equal(response.statusCode, 200, response.body);
    t.equal(response.json().scope, 'referrals:write');
    t.notOk('fhir_scope' in decodeJwt(response.json().access_token).payload);
  });

  const invalid: [string, Json][] = [
    ['system/AuditEvent.rs', keySetClient],
    ['system/AuditEvent.read', keySetClient],
    ['system/Task.rs?status=requested', keySetClient],
    ['patient/Task.rs', keySetClient],
    ['user/*.rs', keySetClient],
    ['system/Unknown.rs', keySetClient],
    ['system/Task.sr', keySetClient],
    ['system/Patient.rs', referralReader],
    ['system/*.write', referralReader],
    ['patients:write', keySetClient],
  ];
  for (const [scope, client] of invalid) {
    t.test(`refuses ${scope} with invalid_scope`, async (t) => {
      const response = await grant(client, scope);
      assertProblem(t, response, 400, [], scope);
      t.equal(response.json().error, 'invalid_scope');
    });
  }

  t.test('fhirScopeAllows: by type and interaction, v1 and v2, wildcards only over the types served', async (t) => {
    const principal = (fhirScopes?: string[]): Principal => ({
      kind: 'api_client',
      id: randomUUID(),
      organizationId: office.id,
      organizationKind: 'physician_office',
      role: 'office_staff',
      scopes: ['referrals:read'],
      ...(fhirScopes ? { fhirScopes } : {}),
    });
    t.ok(fhirScopeAllows(principal(), 'Communication', 'create'), 'no SMART scopes: the internal scopes decide');
    const taskReader = principal(['system/Task.rs']);
    t.ok(fhirScopeAllows(taskReader, 'Task', 'read'));
    t.ok(fhirScopeAllows(taskReader, 'Task', 'search'));
    t.notOk(fhirScopeAllows(taskReader, 'Task', 'update'));
    t.notOk(fhirScopeAllows(taskReader, 'Communication', 'read'), 'system/Task.rs does not read Communications');
    const v1 = principal(['system/ServiceRequest.read', 'system/Task.write']);
    t.ok(fhirScopeAllows(v1, 'ServiceRequest', 'search'));
    t.notOk(fhirScopeAllows(v1, 'ServiceRequest', 'create'));
    t.ok(fhirScopeAllows(v1, 'Task', 'update'));
    t.notOk(fhirScopeAllows(v1, 'Task', 'read'));
    const everything = principal(['system/*.cruds']);
    t.ok(fhirScopeAllows(everything, 'Patient', 'create'));
    t.notOk(fhirScopeAllows(everything, 'AuditEvent', 'read'), 'a wildcard never covers AuditEvent');
  });

  t.test('smartConfiguration: the token endpoint under PUBLIC_BASE_URL and only what is true', async (t) => {
    const configuration = smartConfiguration(publicBaseUrl);
    t.match(configuration, {
      token_endpoint: tokenUrl,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
      capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
    });
    t.notOk('authorization_endpoint' in configuration, 'no launch, so no authorization endpoint');
    const scopes = configuration.scopes_supported as string[];
    t.ok(scopes.includes('system/*.rs') && scopes.includes('system/Task.u') && scopes.includes('system/ServiceRequest.c'));
    t.notOk(scopes.some((scope) => scope.includes('AuditEvent')), 'AuditEvent is not offered');
  });
});

t.test('PATCH /v1/organizations/{id}/api-clients/{apiClientId} › key rotation', async (t) => {
  const oldKey = await signingKey('ES384');
  const newKey = await signingKey('RS384');
  const client = await registerClient({ jwks: jwksOf(oldKey) });
  const patch = (payload: Json, token = office.admin.token, url = clientUrl(client)) => test.request({ method: 'PATCH', url, token, payload });

  t.test('replaces the key set: the old key stops working, the new one works', async (t) => {
    const response = await patch({ jwks: jwksOf(newKey) });
    t.equal(response.statusCode, 200, response.body);
    t.match(response.json(), { id: client.id, authMethod: 'private_key_jwt', keyIds: [newKey.kid], jwksUrl: null, active: true });
    t.notOk('clientSecret' in response.json());
    const before = await failuresOf(client);
    await assertRefused(t, await signIn(oldKey, client), client, before, 'the replaced key');
    t.equal((await signIn(newKey, client)).statusCode, 200, 'the new key');
  });

  t.test('moves the client to a JWKS URL', async (t) => {
    const path = newPath();
    jwks.serve(path, jwksOf(oldKey));
    const response = await patch({ jwksUrl: jwks.url(path) });
    t.equal(response.statusCode, 200, response.body);
    t.match(response.json(), { jwksUrl: jwks.url(path), keyIds: null });
    t.equal((await signIn(oldKey, client)).statusCode, 200, 'the key at the URL');
    t.equal((await signIn(newKey, client)).statusCode, 401, 'the registered set is gone');
    t.equal((await auditEvents(test, { action: 'api_client.update_keys', outcome: 'success', resourceId: client.id })).length, 2, 'each rotation is audited');
  });

  t.test('refuses bad keys with 400 naming them, changing nothing', async (t) => {
    assertProblem(t, await patch({ jwks: { keys: [await privateJwk(newKey)] } }), 400, ['jwks.keys[0].d']);
    assertProblem(t, await patch({}), 400, ['jwks']);
    assertProblem(t, await patch({ jwks: jwksOf(newKey), jwksUrl: jwks.url() }), 400, ['jwksUrl']);
    assertProblem(t, await patch({ jwks: jwksOf(newKey), name: 'renamed' }), 400, ['name']);
    t.equal((await signIn(oldKey, client)).statusCode, 200, 'the keys are as they were');
  });

  t.test('refuses a secret client and a revoked one with 409', async (t) => {
    const secretClient = await test.create(clientsUrl(office.id), office.admin.token, { name: 'Secret EHR', scopes: ['patients:read'] });
    const secret = assertProblem(t, await patch({ jwks: jwksOf(newKey) }, office.admin.token, clientUrl(secretClient)), 409);
    t.equal(secret.code, 'not-private-key-jwt');
    const doomed = await registerClient({ jwks: jwksOf(newKey) });
    await test.request({ method: 'DELETE', url: clientUrl(doomed), token: office.admin.token });
    t.equal(assertProblem(t, await patch({ jwks: jwksOf(oldKey) }, office.admin.token, clientUrl(doomed)), 409).code, 'api-client-revoked');
  });

  t.test('refuses a physician with 403', async (t) => {
    assertProblem(t, await patch({ jwks: jwksOf(newKey) }, office.physician.token), 403);
  });

  t.test("another organization's admin gets 404 on patching or listing the client, audited as denied, and changes nothing", async (t) => {
    const attacker = otherOffice.admin;
    const attackerKey = await signingKey('ES384');
    assertProblem(t, await patch({ jwks: jwksOf(attackerKey) }, attacker.token), 404, [], 'PATCH under the victim organization');
    assertProblem(t, await patch({ jwks: jwksOf(attackerKey) }, attacker.token, clientUrl(client, otherOffice.id)), 404, [], 'PATCH under their own organization');
    assertProblem(t, await test.request({ method: 'GET', url: clientsUrl(office.id), token: attacker.token }), 404, [], 'GET the list');

    const patches = await auditEvents(test, { action: 'api_client.update_keys', outcome: 'denied', actorId: attacker.id });
    t.ok(patches.some((row) => row.resourceType === 'organization' && row.resourceId === office.id && row.httpStatus === 404), 'the PATCH under the victim organization is audited');
    t.ok(patches.some((row) => row.resourceType === 'api_client' && row.resourceId === client.id && row.httpStatus === 404), 'the PATCH naming the client is audited against it');
    const lists = await auditEvents(test, { action: 'api_client.list', outcome: 'denied', actorId: attacker.id });
    t.ok(lists.some((row) => row.resourceId === office.id && row.httpStatus === 404), 'the list is audited');

    const before = await failuresOf(client);
    await assertRefused(t, await signIn(attackerKey, client), client, before, "the attacker's key");
    t.equal((await signIn(oldKey, client)).statusCode, 200, "the client's own key still works");
  });
});

t.test('production rules (JWKS_ALLOW_PRIVATE_URLS off)', async (t) => {
  const dns = fakeDns();
  dns.answers.set('jwks.rebound.example', [{ address: '10.0.0.7', family: 4 }]);
  const log = captureLog();
  const strict = await buildTestApp(t, { jwksResolver: dns.resolve, logger: log.logger });
  const admin = await strict.loginAsAdmin();
  const strictOffice = await createOffice(strict, admin);
  const key = await signingKey('ES384');

  const refusedUrls = [
    'http://jwks.partner.example/jwks.json',
    'https://127.0.0.1/jwks.json',
    'https://[::1]/jwks.json',
    'https://[::ffff:7f00:1]/jwks.json',
    'https://10.1.2.3/jwks.json',
    'https://169.254.169.254/latest/meta-data',
    'https://localhost/jwks.json',
    'https://jwks.internal/jwks.json',
    'https://jwks/jwks.json',
    'https://user:secret@jwks.partner.example/jwks.json',
  ];
  for (const url of refusedUrls) {
    t.test(`refuses the JWKS URL ${url} at registration with 400 naming jwksUrl, resolving nothing`, async (t) => {
      const response = await strict.request({
        method: 'POST',
        url: clientsUrl(strictOffice.id),
        token: strictOffice.admin.token,
        payload: { name: 'Refused EHR', scopes: readScopes, authMethod: 'private_key_jwt', jwksUrl: url },
      });
      assertProblem(t, response, 400, ['jwksUrl']);
      t.same(dns.calls, [], 'no DNS lookup');
    });
  }

  t.test('a public name that resolves to a private address is refused when fetched: invalid_client, nothing reached', async (t) => {
    const client = await strict.create(clientsUrl(strictOffice.id), strictOffice.admin.token, {
      name: 'Rebinding EHR',
      scopes: readScopes,
      authMethod: 'private_key_jwt',
      jwksUrl: 'https://jwks.rebound.example/jwks.json',
    });
    const assertion = await signAssertion(key, { clientId: client.clientId, audience: `${strict.config.publicBaseUrl}/v1/auth/token` });
    const response = await assertionGrant(assertion, {}, strict);
    assertProblem(t, response, 401);
    t.equal(response.json().error, 'invalid_client');
    t.same(dns.calls, ['jwks.rebound.example'], 'the guard asked DNS and refused the answer');
    const refusal = log.entries().find((entry) => entry.msg === 'client assertion refused');
    t.match(refusal, { apiClientId: client.id, reason: /jwks\.rebound\.example/ }, 'the reason is logged, naming the host');
    t.notOk(refusal?.reason.includes('10.0.0.7'), 'not what it resolved to');
    t.notOk(log.lines.some((line) => line.includes(assertion.split('.')[2]!)), 'the assertion is in no log line');
  });

  t.test('the audience is the default PUBLIC_BASE_URL http://localhost:$PORT', async (t) => {
    t.equal(strict.config.publicBaseUrl, `http://localhost:${strict.config.port}`);
  });
});
