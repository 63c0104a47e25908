// The README walk-through, step by step, against a freshly seeded demo network.
import t from 'tap';
import { demoCredentials } from '../src/seed/demo-network.js';
import { buildTestApp } from './helper.js';

t.test('README walk-through › works as printed on the seeded demo network', async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: 'true' } });
  const token = await test.login(demoCredentials.users.physician, demoCredentials.password);

  const me = await test.request({ method: 'GET', url: '/v1/me', token });
  t.equal(me.statusCode, 200);
  t.match(me.json(), { kind: 'user', role: 'physician', organization: { name: 'Riverside Family Medicine' } });

  const search = await test.request({
    method: 'GET',
    url: '/v1/therapists?technique=trigger_point&near=45.5231,-122.6765&radiusKm=30&accepting=true',
    token,
  });
  t.equal(search.statusCode, 200);
  const found = search.json().data as { name: string; distanceKm: number }[];
  t.same(found.map((therapist) => therapist.name), ['Sam Ortiz, LMT', 'Alex Rivera, LMT'], 'both trigger point therapists, nearest first');
  t.ok(found[0]!.distanceKm < found[1]!.distanceKm);

  const patient = await test.create('/v1/patients', token, {
    givenName: 'Maria',
    familyName: 'Gomez',
    birthDate: '1978-04-02',
    sex: 'female',
    identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-0042' }],
  });
  const byMrn = await test.request({ method: 'GET', url: '/v1/patients?identifier=urn:riverside:mrn|MRN-0042', token });
  t.same(byMrn.json().data.map((row: { id: string }) => row.id), [patient.id]);

  const { clientId, clientSecret } = demoCredentials.apiClient;
  const clientToken = await test.request({
    method: 'POST',
    url: '/v1/auth/token',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    payload: 'grant_type=client_credentials',
  });
  t.equal(clientToken.statusCode, 200);
  t.match(clientToken.json(), { token_type: 'Bearer', scope: /patients:write/ });

  const invalid = await test.request({
    method: 'POST',
    url: '/v1/patients',
    token,
    payload: { givenName: 'Maria', birthDate: '1978-02-30', sex: 'female', shoeSize: 9 },
  });
  t.equal(invalid.statusCode, 400);
  t.same(
    invalid.json().errors.map((error: { field: string }) => error.field).sort(),
    ['birthDate', 'familyName', 'shoeSize'],
  );
});

t.test('demo seed › every demo account signs in, and a database that has organizations is not seeded again', async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: 'true' } });
  for (const email of Object.values(demoCredentials.users)) {
    t.type(await test.login(email, demoCredentials.password), 'string', `${email} signs in`);
  }
  const admin = await test.login(demoCredentials.users.networkAdmin, demoCredentials.password);
  const before = await test.request({ method: 'GET', url: '/v1/organizations?limit=200', token: admin });
  t.equal(before.json().data.length, 3, 'one office and two practices');
  const { bootstrap } = await import('../src/seed/bootstrap.js');
  await bootstrap(test.app, test.config);
  const after = await test.request({ method: 'GET', url: '/v1/organizations?limit=200', token: admin });
  t.equal(after.json().data.length, 3, 'a second start seeds nothing');
});

t.test('demo seed › is off by default on PostgreSQL and on when asked', async (t) => {
  const { loadConfig } = await import('../src/config.js');
  t.equal(loadConfig({ DATABASE_URL: 'postgres://x/y', JWT_SECRET: 'x'.repeat(32) }).demoSeed, false);
  t.equal(loadConfig({ DATABASE_URL: 'postgres://x/y', JWT_SECRET: 'x'.repeat(32), DEMO_SEED: 'true' }).demoSeed, true);
  t.equal(loadConfig({}).demoSeed, true);
});
