// GET /v1/therapists: the directory physicians search, by distance, technique and acceptance (SPEC §12).
import t from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { buildTestApp, defaultPassword, type Json } from './helper.js';
type Point = { lat: number; lng: number };

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);

/** Where the patient is: downtown Portland. */
const patient: Point = { lat: 45.5231, lng: -122.6765 };
const near = `${patient.lat},${patient.lng}`;

// One practice per city, its therapist offering distinct techniques; Salem's is not accepting referrals.
const seeded = {
  portland: { location: { lat: 45.5152, lng: -122.6734 }, techniques: ['trigger_point', 'myofascial_release'], acceptingReferrals: true },
  gresham: { location: { lat: 45.4984, lng: -122.4302 }, techniques: ['lymphatic_drainage'], acceptingReferrals: true },
  salem: { location: { lat: 44.9429, lng: -123.0351 }, techniques: ['deep_tissue', 'trigger_point'], acceptingReferrals: false },
  seattle: { location: { lat: 47.6062, lng: -122.3321 }, techniques: ['sports'], acceptingReferrals: true },
};
type City = keyof typeof seeded;
const practices = {} as Record<City, Awaited<ReturnType<typeof createPractice>>>;
for (const [city, options] of Object.entries(seeded)) practices[city as City] = await createPractice(test, networkAdmin, options);

// A second therapist in Portland, at exactly the same distance as the first: the keyset must break the tie.
const portlandPartner = await test.create(`/v1/organizations/${practices.portland.id}/users`, networkAdmin, {
  role: 'therapist',
  email: 'partner@portland.example',
  password: defaultPassword,
  name: 'Portland Partner',
  license: { number: 'MT-PARTNER', state: 'OR', expiresOn: '2028-12-31' },
  techniques: ['swedish'],
  serviceRadiusKm: 20,
  licenseVerified: true,
});

const therapistCity = new Map<string, City>(Object.entries(practices).map(([city, practice]) => [practice.therapist.id, city as City]));
therapistCity.set(portlandPartner.id, 'portland');

/** Great-circle distance in km, computed independently of the server. */
function haversineKm(a: Point, b: Point): number {
  const radians = (degrees: number) => (degrees * Math.PI) / 180;
  const h =
    Math.sin(radians(b.lat - a.lat) / 2) ** 2 +
    Math.cos(radians(a.lat)) * Math.cos(radians(b.lat)) * Math.sin(radians(b.lng - a.lng) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

const search = (query: string, token = office.physician.token) => test.request({ method: 'GET', url: `/v1/therapists?${query}`, token });

async function found(query: string, token?: string): Promise<{ data: Json[]; nextCursor: string | null }> {
  const response = await search(query, token);
  if (response.statusCode !== 200) throw new Error(`GET /v1/therapists?${query} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

const ids = (items: Json[]) => items.map((item) => item.id as string);
const cities = (items: Json[]) => items.map((item) => therapistCity.get(item.id));

/** Every result, one page of `limit` at a time through nextCursor. */
async function walk(query: string, limit: number, from: string | null = null): Promise<Json[]> {
  const items: Json[] = [];
  let cursor = from;
  for (let pages = 0; pages < 100; pages++) {
    const page = await found(`${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    items.push(...page.data);
    cursor = page.nextCursor;
    if (cursor === null) return items;
  }
  throw new Error('the directory never reached its last page');
}

t.test('GET /v1/therapists › with near, orders by increasing distance and carries the right distanceKm', async (t) => {
  const { data, nextCursor } = await found(`near=${near}`);
  t.equal(nextCursor, null);
  t.same(cities(data), ['portland', 'portland', 'gresham', 'salem', 'seattle']);
  for (const item of data) {
    const expected = haversineKm(patient, seeded[therapistCity.get(item.id)!].location);
    t.ok(Math.abs(item.distanceKm - expected) < 1, `${therapistCity.get(item.id)}: ${item.distanceKm} km is within 1 km of ${expected.toFixed(2)}`);
  }
  const distances = data.map((item) => item.distanceKm as number);
  t.same(distances, [...distances].sort((a, b) => a - b), 'distances never decrease');
});

t.test('GET /v1/therapists › a result describes the therapist and their practice', async (t) => {
  const { data } = await found(`near=${near}&technique=lymphatic_drainage`);
  t.equal(data.length, 1);
  t.match(data[0], {
    id: practices.gresham.therapist.id,
    techniques: ['lymphatic_drainage'],
    acceptingReferrals: true,
    serviceRadiusKm: 25,
    license: { state: 'OR', expiresOn: '2028-12-31', verified: true },
    practice: { id: practices.gresham.id, location: seeded.gresham.location },
  });
  t.notOk('email' in data[0]! || 'number' in data[0]!.license, 'no contact details or license number');
});

t.test('GET /v1/therapists › radiusKm leaves out therapists farther away', async (t) => {
  t.same(cities((await found(`near=${near}&radiusKm=50`)).data), ['portland', 'portland', 'gresham']);
  t.same(cities((await found(`near=${near}&radiusKm=100`)).data), ['portland', 'portland', 'gresham', 'salem']);
  t.same(cities((await found(`near=${near}&radiusKm=0.5`)).data), [], 'nobody within 500 m');
});

t.test('GET /v1/therapists › technique keeps only therapists offering it', async (t) => {
  t.same(cities((await found(`near=${near}&technique=trigger_point`)).data), ['portland', 'salem']);
  t.same(ids((await found(`near=${near}&technique=sports`)).data), [practices.seattle.therapist.id]);
  t.same((await found('technique=cupping')).data, []);
});

t.test('GET /v1/therapists › accepting filters on acceptance either way', async (t) => {
  t.same(ids((await found(`near=${near}&accepting=false`)).data), [practices.salem.therapist.id]);
  t.same(cities((await found(`near=${near}&accepting=true`)).data), ['portland', 'portland', 'gresham', 'seattle']);
});

t.test('GET /v1/therapists › filters combine', async (t) => {
  t.same(ids((await found(`near=${near}&technique=trigger_point&accepting=true&radiusKm=10`)).data), [practices.portland.therapist.id]);
});

t.test('GET /v1/therapists › without near, orders by name and has no distance', async (t) => {
  const { data } = await found('limit=200');
  t.equal(data.length, 5);
  const names = data.map((item) => item.name as string);
  t.same(names, [...names].sort(), 'ordered by name');
  t.ok(data.every((item) => item.distanceKm === null));
});

for (const [label, query] of [['by distance', `near=${near}`], ['by name', 'accepting=true']] as const) {
  t.test(`GET /v1/therapists › limit=1 through cursors gives the order of one big page, ${label}, with no duplicates`, async (t) => {
    const big = (await found(`${query}&limit=200`)).data;
    const walked = await walk(query, 1);
    t.same(ids(walked), ids(big));
    t.equal(new Set(ids(walked)).size, walked.length);
  });
}

t.test('GET /v1/therapists › limit=2 pages carry nextCursor until the last', async (t) => {
  const first = await found(`near=${near}&limit=2`);
  t.equal(first.data.length, 2);
  t.type(first.nextCursor, 'string');
  const rest = await walk(`near=${near}`, 2, first.nextCursor);
  t.same([...ids(first.data), ...ids(rest)], ids((await found(`near=${near}`)).data));
});

/** A cursor as the server encodes one (base64url JSON), for forging. */
const cursorOf = (key: unknown[]) => Buffer.from(JSON.stringify(key)).toString('base64url');

const rejected: [string, string, string][] = [
  ['radiusKm without near', 'radiusKm=10', 'query.radiusKm'],
  ['a near that is not lat,lng', 'near=portland', 'query.near'],
  ['a near with a latitude beyond 90', 'near=95.1,-122.6', 'query.near'],
  ['a near with a longitude beyond 180', 'near=45.5,-190.2', 'query.near'],
  ['a radiusKm of zero', `near=${near}&radiusKm=0`, 'query.radiusKm'],
  ['an unknown technique', 'technique=reiki', 'query.technique'],
  ['an accepting that is not a boolean', 'accepting=maybe', 'query.accepting'],
  ['a limit above 200', 'limit=201', 'query.limit'],
  ['an unknown query parameter', 'city=Portland', 'query.city'],
  ['a cursor it did not issue', 'cursor=garbage', 'query.cursor'],
  ['a cursor of the name order used with near', `near=${near}&cursor=${cursorOf(['A', '00000000-0000-4000-8000-000000000000'])}`, 'query.cursor'],
  ['a forged distance cursor whose id is not a uuid', `near=${near}&cursor=${cursorOf([1.5, 'not-a-uuid'])}`, 'query.cursor'],
  ['a forged name cursor whose id is not a uuid', `cursor=${cursorOf(['A', 'not-a-uuid'])}`, 'query.cursor'],
];
for (const [what, query, field] of rejected) {
  t.test(`GET /v1/therapists › rejects ${what} with 400 naming ${field}`, async (t) => {
    assertProblem(t, await search(query), 400, [field]);
  });
}

t.test('GET /v1/therapists › a deactivated therapist is no longer listed', async (t) => {
  const practice = await createPractice(test, networkAdmin, { location: { lat: 45.4871, lng: -122.8037 }, techniques: ['craniosacral'] });
  t.same(ids((await found('technique=craniosacral')).data), [practice.therapist.id], 'listed while active');
  const deactivated = await test.request({
    method: 'PATCH',
    url: `/v1/organizations/${practice.id}/users/${practice.therapist.id}`,
    token: practice.admin.token,
    payload: { active: false },
  });
  t.equal(deactivated.statusCode, 200);
  t.same((await found('technique=craniosacral')).data, [], 'gone once deactivated');
  t.notOk(ids((await found(`near=${near}&limit=200`)).data).includes(practice.therapist.id));
});

t.test('GET /v1/therapists › every signed-in role may search', async (t) => {
  const callers = [office.physician, office.staff, office.admin, practices.portland.therapist, practices.portland.admin];
  for (const caller of [...callers.map((user) => user.token), networkAdmin]) {
    t.equal((await search(`near=${near}`, caller)).statusCode, 200);
  }
  assertProblem(t, await test.request({ method: 'GET', url: '/v1/therapists' }), 401);
});

t.test('GET /v1/therapists › an API client needs the directory:read scope', async (t) => {
  const clientToken = async (scopes: string[]) => (await addApiClient(test, office.admin.token, office.id, scopes, `EHR ${scopes}`)).token;
  const allowed = await search(`near=${near}`, await clientToken(['directory:read']));
  t.equal(allowed.statusCode, 200);
  t.same(cities(allowed.json().data), ['portland', 'portland', 'gresham', 'salem', 'seattle']);
  assertProblem(t, await search(`near=${near}`, await clientToken(['patients:read', 'patients:write'])), 403);
});

t.test('GET /v1/therapists › only therapists whose license is verified and current are listed (SPEC §14.2)', async (t) => {
  const practice = await createPractice(test, networkAdmin, { location: { lat: 45.4871, lng: -122.8037 }, techniques: ['cupping'] });
  const therapistUrl = `/v1/organizations/${practice.id}/users/${practice.therapist.id}`;
  const patch = async (token: string, payload: Json) => test.request({ method: 'PATCH', url: therapistUrl, token, payload });
  const listed = async () => ids((await found('technique=cupping')).data);
  t.same(await listed(), [practice.therapist.id], 'listed while verified and current');

  t.equal((await patch(practice.admin.token, { license: { number: 'MT-NEW', state: 'OR', expiresOn: '2029-01-31' } })).statusCode, 200);
  t.same(await listed(), [], 'a changed license needs verifying again: not listed until then');
  const byAdmin = await test.request({ method: 'GET', url: therapistUrl, token: practice.admin.token });
  t.equal(byAdmin.json().therapist.license.verified, false, 'the practice sees why: verified is false');
  assertProblem(t, await patch(practice.admin.token, { licenseVerified: true }), 400, ['licenseVerified'], 'a practice admin cannot verify');
  t.same(await listed(), []);

  t.equal((await patch(networkAdmin, { licenseVerified: true })).statusCode, 200);
  t.same(await listed(), [practice.therapist.id], 'listed again once the network admin verified it');

  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  t.equal((await patch(networkAdmin, { license: { number: 'MT-NEW', state: 'OR', expiresOn: yesterday } })).statusCode, 200);
  t.equal((await patch(networkAdmin, { licenseVerified: true })).statusCode, 200);
  t.same(await listed(), [], 'a verified license that expired yesterday is not listed');
  t.notOk(ids((await found(`near=${near}&limit=200`)).data).includes(practice.therapist.id), 'nor by distance');
});

t.test('POST users › only a network admin verifies a license at onboarding', async (t) => {
  const practice = await createPractice(test, networkAdmin, { techniques: ['hydrotherapy'] });
  const body = (email: string, licenseVerified?: boolean) => ({
    role: 'therapist',
    email,
    password: defaultPassword,
    name: 'New Therapist',
    license: { number: `MT-${email.length}`, state: 'OR', expiresOn: '2028-12-31' },
    techniques: ['hydrotherapy'],
    serviceRadiusKm: 20,
    ...(licenseVerified === undefined ? {} : { licenseVerified }),
  });
  const url = `/v1/organizations/${practice.id}/users`;
  assertProblem(t, await test.request({ method: 'POST', url, token: practice.admin.token, payload: body('a@hydro.example', true) }), 400, ['licenseVerified']);
  const unverified = await test.create(url, practice.admin.token, body('b@hydro.example'));
  t.equal(unverified.therapist.license.verified, false, 'a practice admin onboards an unverified therapist');
  const verified = await test.create(url, networkAdmin, body('c@hydro.example', true));
  t.equal(verified.therapist.license.verified, true);
  t.same(ids((await found('technique=hydrotherapy')).data).sort(), [practice.therapist.id, verified.id].sort(), 'the unverified one is not listed');
  const office = await test.request({ method: 'POST', url: `/v1/organizations/${(await createOffice(test, networkAdmin)).id}/users`, token: networkAdmin, payload: { role: 'office_staff', email: 'd@hydro.example', password: defaultPassword, name: 'Staff', licenseVerified: true } });
  assertProblem(t, office, 400, ['licenseVerified'], 'only for a therapist');
});
