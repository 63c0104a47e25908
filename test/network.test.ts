// Organizations, their users and their API clients, through the HTTP API (SPEC §2, §6, §12).
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { auditEvents } from './fixtures/database.js';
import { createOffice, createPractice, nextNpi } from './fixtures/network.js';
import { assertProblem as assertProblemAnswer } from './fixtures/problems.js';
import { buildTestApp, defaultPassword, type Json, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const unique = () => randomBytes(4).toString('hex');

const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, token: string, payload?: Json) =>
  test.request({ method, url, token, ...(payload ? { payload } : {}) });

/** A problem answer (test/fixtures/problems.ts) whose status member matches the status code too. */
function assertProblem(t: Test, response: Response, status: number, fields: string[] = []) {
  t.equal(assertProblemAnswer(t, response, status, fields).status, status, 'problem status matches');
}

/** Every item of a list, one page of `limit` at a time, following nextCursor to the end. */
async function walk(url: string, token: string, limit: number): Promise<Json[]> {
  const items: Json[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 500; pages++) {
    const separator = url.includes('?') ? '&' : '?';
    const response = await call('GET', `${url}${separator}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, token);
    if (response.statusCode !== 200) throw new Error(`GET ${url} failed: ${response.statusCode} ${response.body}`);
    const page = response.json();
    items.push(...page.data);
    cursor = page.nextCursor;
    if (cursor === null) return items;
  }
  throw new Error(`GET ${url} never reached its last page`);
}

/** Races the same request against itself, as two clients retrying at once would. */
const simultaneousRequests = 16;
const simultaneously = (send: () => Promise<Response>) => Promise.all(Array.from({ length: simultaneousRequests }, send));
const statusCounts = (responses: Response[]) =>
  responses.reduce<Record<number, number>>((counts, { statusCode }) => ({ ...counts, [statusCode]: (counts[statusCode] ?? 0) + 1 }), {});

const allOrganizations = () => walk('/v1/organizations', networkAdmin, 200);
const usersOf = (organizationId: string) => walk(`/v1/organizations/${organizationId}/users`, networkAdmin, 200);

function officeBody(overrides: Json = {}): Json {
  return {
    kind: 'physician_office',
    name: `Office ${unique()}`,
    npi: nextNpi(),
    address: { line1: '12 Main St', city: 'Portland', state: 'OR', postalCode: '97201' },
    location: { lat: 45.5231, lng: -122.6765 },
    ...overrides,
  };
}

function practiceBody(overrides: Json = {}): Json {
  const { npi: _npi, ...office } = officeBody();
  return { ...office, kind: 'therapy_practice', name: `Practice ${unique()}`, ...overrides };
}

function userBody(role: string, overrides: Json = {}): Json {
  return { role, email: `${role}.${unique()}@users.example`, password: defaultPassword, name: `${role} ${unique()}`, ...overrides };
}

function therapistBody(overrides: Json = {}): Json {
  return userBody('therapist', {
    license: { number: `MT-${unique()}`, state: 'OR', expiresOn: '2028-12-31' },
    techniques: ['swedish', 'deep_tissue'],
    serviceRadiusKm: 30,
    ...overrides,
  });
}

t.test('POST /v1/organizations', async (t) => {
  t.test('a network admin creates a physician office with a valid NPI', async (t) => {
    const response = await call('POST', '/v1/organizations', networkAdmin, officeBody({ npi: '1234567893' }));
    t.equal(response.statusCode, 201);
    const office = response.json();
    t.match(office, { kind: 'physician_office', npi: '1234567893', location: { lat: 45.5231, lng: -122.6765 } });
    t.equal(response.headers.location, `/v1/organizations/${office.id}`);
  });

  t.test('rejects a duplicate NPI with 409 and keeps one organization with it', async (t) => {
    const response = await call('POST', '/v1/organizations', networkAdmin, officeBody({ npi: '1234567893' }));
    assertProblem(t, response, 409);
    t.equal((await allOrganizations()).filter((organization) => organization.npi === '1234567893').length, 1);
  });

  t.test('answers simultaneous creations with one NPI with one 201 and 409 for the rest, never a 500', async (t) => {
    const body = officeBody();
    const responses = await simultaneously(() => call('POST', '/v1/organizations', networkAdmin, { ...body, name: `Office ${unique()}` }));
    t.same(statusCounts(responses), { 201: 1, 409: simultaneousRequests - 1 });
    t.equal((await allOrganizations()).filter((organization) => organization.npi === body.npi).length, 1);
  });

  const rejected: [string, Json, string][] = [
    ['an NPI with a bad check digit', officeBody({ npi: '1234567890' }), 'npi'],
    ['an NPI that is not 10 digits', officeBody({ npi: '12345' }), 'npi'],
    ['a physician office without an NPI', officeBody({ npi: undefined }), 'npi'],
    ['a therapy practice NPI with a bad check digit', practiceBody({ npi: '1234567890' }), 'npi'],
    ['a therapy practice NPI that is not 10 digits', practiceBody({ npi: '123456789' }), 'npi'],
    ['an unknown body field', officeBody({ status: 'active' }), 'status'],
    ['a server-owned id in the body', officeBody({ id: '00000000-0000-4000-8000-000000000000' }), 'id'],
    ['a bad kind', officeBody({ kind: 'hospital' }), 'kind'],
    ['a latitude out of range', officeBody({ location: { lat: 91, lng: 0 } }), 'location.lat'],
  ];
  for (const [what, body, field] of rejected) {
    t.test(`rejects ${what} with 400 naming ${field}, creating nothing`, async (t) => {
      const before = await allOrganizations();
      assertProblem(t, await call('POST', '/v1/organizations', networkAdmin, body), 400, [field]);
      t.equal((await allOrganizations()).length, before.length, 'no organization was created');
    });
  }

  t.test('a network admin creates a therapy practice without an NPI', async (t) => {
    const response = await call('POST', '/v1/organizations', networkAdmin, practiceBody());
    t.equal(response.statusCode, 201);
    t.match(response.json(), { kind: 'therapy_practice', npi: null });
  });

  // SPEC §14.9: a practice bills under its own (Type 2) NPI.
  t.test('a network admin creates a therapy practice with its NPI, shown on the practice', async (t) => {
    const npi = nextNpi();
    const response = await call('POST', '/v1/organizations', networkAdmin, practiceBody({ npi }));
    t.equal(response.statusCode, 201);
    const created = response.json();
    t.match(created, { kind: 'therapy_practice', npi });
    t.equal((await call('GET', `/v1/organizations/${created.id}`, networkAdmin)).json().npi, npi);
  });

  t.test("refuses a practice NPI another organization holds, an office's or a practice's, with 409, creating nothing", async (t) => {
    const officeNpi = nextNpi();
    const practiceNpi = nextNpi();
    t.equal((await call('POST', '/v1/organizations', networkAdmin, officeBody({ npi: officeNpi }))).statusCode, 201);
    t.equal((await call('POST', '/v1/organizations', networkAdmin, practiceBody({ npi: practiceNpi }))).statusCode, 201);
    for (const npi of [officeNpi, practiceNpi]) {
      assertProblem(t, await call('POST', '/v1/organizations', networkAdmin, practiceBody({ npi })), 409);
      t.equal((await allOrganizations()).filter((organization) => organization.npi === npi).length, 1);
    }
  });

  const nonAdmins = {
    'an office admin': officeA.admin.token,
    'a physician': officeA.physician.token,
    'office staff': officeA.staff.token,
    'a practice admin': practice.admin.token,
    'a therapist': practice.therapist.token,
  };
  for (const [who, token] of Object.entries(nonAdmins)) {
    t.test(`refuses ${who} with 403, creating nothing`, async (t) => {
      const before = await allOrganizations();
      assertProblem(t, await call('POST', '/v1/organizations', token, officeBody()), 403);
      t.equal((await allOrganizations()).length, before.length);
    });
  }

  t.test('refuses a caller without a token with 401', async (t) => {
    assertProblem(t, await test.request({ method: 'POST', url: '/v1/organizations', payload: officeBody() }), 401);
  });
});

t.test('GET /v1/organizations', async (t) => {
  t.test('a member reads their own organization by id', async (t) => {
    for (const token of [officeA.physician.token, officeA.staff.token, officeA.admin.token]) {
      const response = await call('GET', `/v1/organizations/${officeA.id}`, token);
      t.equal(response.statusCode, 200);
      t.match(response.json(), { id: officeA.id, kind: 'physician_office' });
    }
  });

  t.test('a network admin reads any organization by id', async (t) => {
    const response = await call('GET', `/v1/organizations/${practice.id}`, networkAdmin);
    t.equal(response.statusCode, 200);
    t.equal(response.json().id, practice.id);
  });

  t.test('a network admin lists every organization, and limit=1 walks each exactly once', async (t) => {
    const all = await allOrganizations();
    for (const id of [officeA.id, officeB.id, practice.id]) t.ok(all.some((organization) => organization.id === id));
    const walked = await walk('/v1/organizations', networkAdmin, 1);
    t.same(walked.map((organization) => organization.id), all.map((organization) => organization.id));
    t.equal(new Set(walked.map((organization) => organization.id)).size, walked.length, 'no duplicates');
  });

  t.test('kind filters the list', async (t) => {
    const practices = await walk('/v1/organizations?kind=therapy_practice', networkAdmin, 200);
    t.ok(practices.length > 0);
    t.ok(practices.every((organization) => organization.kind === 'therapy_practice'));
  });

  t.test('everyone else lists only their own organization', async (t) => {
    const own: [string, string][] = [
      [officeA.physician.token, officeA.id],
      [officeA.admin.token, officeA.id],
      [officeB.staff.token, officeB.id],
      [practice.therapist.token, practice.id],
      [practice.admin.token, practice.id],
    ];
    for (const [token, id] of own) {
      const page = (await call('GET', '/v1/organizations', token)).json();
      t.same(page.data.map((organization: Json) => organization.id), [id]);
      t.equal(page.nextCursor, null);
    }
  });

  t.test('rejects a cursor the list did not issue with 400 naming query.cursor', async (t) => {
    assertProblem(t, await call('GET', '/v1/organizations?cursor=not-a-cursor', networkAdmin), 400, ['query.cursor']);
  });

  // Cursors are opaque, but a client can still forge one with the right JSON types and nonsense values.
  const forgedCursors = [
    ['a time that is not a number', ['yesterday', '00000000-0000-4000-8000-000000000000']],
    ['an id that is not a uuid', ['1700000000000000', 'not-a-uuid']],
  ] as const;
  const forgedListUrls = ['/v1/organizations', `/v1/organizations/${officeA.id}/users`, `/v1/organizations/${officeA.id}/api-clients`];
  for (const [what, key] of forgedCursors) {
    t.test(`rejects a forged cursor with ${what} with 400 naming query.cursor, on every list`, async (t) => {
      const cursor = Buffer.from(JSON.stringify(key)).toString('base64url');
      for (const url of forgedListUrls) assertProblem(t, await call('GET', `${url}?cursor=${cursor}`, networkAdmin), 400, ['query.cursor']);
    });
  }
});

t.test('POST /v1/organizations/{id}/users', async (t) => {
  const usersUrl = (organizationId: string) => `/v1/organizations/${organizationId}/users`;

  t.test('an office admin creates a physician with an NPI', async (t) => {
    const npi = nextNpi();
    const response = await call('POST', usersUrl(officeA.id), officeA.admin.token, userBody('physician', { npi }));
    t.equal(response.statusCode, 201);
    const user = response.json();
    t.match(user, { role: 'physician', npi, organizationId: officeA.id, active: true, therapist: null });
    t.notOk('password' in user || 'passwordHash' in user, 'no password in the answer');
    t.equal(response.headers.location, `/v1/organizations/${officeA.id}/users/${user.id}`);
  });

  t.test('an office admin creates office staff, who can then sign in', async (t) => {
    const body = userBody('office_staff');
    t.equal((await call('POST', usersUrl(officeA.id), officeA.admin.token, body)).statusCode, 201);
    t.ok(await test.login(body.email));
  });

  const rejected: [string, () => Json, string[]][] = [
    ['a physician without an NPI', () => userBody('physician'), ['npi']],
    ['a physician NPI with a bad check digit', () => userBody('physician', { npi: '1234567890' }), ['npi']],
    ['an NPI on office staff', () => userBody('office_staff', { npi: nextNpi() }), ['npi']],
    ['an NPI on an office admin', () => userBody('office_admin', { npi: nextNpi() }), ['npi']],
    ['a therapist role in an office', () => therapistBody(), ['role']],
    ['a practice admin role in an office', () => userBody('practice_admin'), ['role']],
    ['a network admin role', () => userBody('network_admin'), ['role']],
    ['therapist fields on office staff', () => userBody('office_staff', { license: { number: 'MT-1', state: 'OR', expiresOn: '2028-01-01' } }), ['license']],
    ['a password shorter than 12 characters', () => userBody('office_staff', { password: 'short' }), ['password']],
    ['a malformed email', () => userBody('office_staff', { email: 'not-an-email' }), ['email']],
    ['an unknown body field', () => userBody('office_staff', { organizationId: officeB.id }), ['organizationId']],
  ];
  for (const [what, body, fields] of rejected) {
    t.test(`rejects ${what} with 400 naming ${fields.join(', ')}, creating nothing`, async (t) => {
      const before = await usersOf(officeA.id);
      assertProblem(t, await call('POST', usersUrl(officeA.id), officeA.admin.token, body()), 400, fields);
      t.equal((await usersOf(officeA.id)).length, before.length, 'no user was created');
    });
  }

  t.test('a practice admin creates a therapist with license, techniques and radius', async (t) => {
    const body = therapistBody({ certifications: ['CMMP'], acceptingReferrals: false });
    const response = await call('POST', usersUrl(practice.id), practice.admin.token, body);
    t.equal(response.statusCode, 201);
    t.match(response.json(), {
      role: 'therapist',
      therapist: {
        license: { ...body.license, verified: false },
        techniques: body.techniques,
        certifications: ['CMMP'],
        acceptingReferrals: false,
        serviceRadiusKm: 30,
      },
    });
  });

  // SPEC §14.9: a therapist is the rendering provider of the claims for their visits, under their own (Type 1) NPI.
  t.test('a practice admin creates a therapist with their NPI, shown on the user; without one it is null', async (t) => {
    const npi = nextNpi();
    const response = await call('POST', usersUrl(practice.id), practice.admin.token, therapistBody({ npi }));
    t.equal(response.statusCode, 201);
    const therapist = response.json();
    t.match(therapist, { role: 'therapist', npi });
    t.equal((await call('GET', `${usersUrl(practice.id)}/${therapist.id}`, practice.admin.token)).json().npi, npi);
    const without = await call('POST', usersUrl(practice.id), practice.admin.token, therapistBody());
    t.equal(without.statusCode, 201);
    t.equal(without.json().npi, null);
  });

  const refusedInPractice: [string, () => Json][] = [
    ['a therapist NPI with a bad check digit', () => therapistBody({ npi: '1234567890' })],
    ['a therapist NPI that is not 10 digits', () => therapistBody({ npi: '12345678901' })],
    ['an NPI on a practice admin', () => userBody('practice_admin', { npi: nextNpi() })],
  ];
  for (const [what, body] of refusedInPractice) {
    t.test(`rejects ${what} with 400 naming npi, creating nothing`, async (t) => {
      const before = await usersOf(practice.id);
      const response = await call('POST', usersUrl(practice.id), practice.admin.token, body());
      assertProblem(t, response, 400, ['npi']);
      t.same(response.json().errors.map((problem: Json) => problem.field), ['npi'], 'names nothing else');
      t.equal((await usersOf(practice.id)).length, before.length, 'no user was created');
    });
  }

  // An NPI names a person, who may hold an account at each practice they work for; users' NPIs were
  // never unique (a physician's neither), only organizations' are.
  t.test('takes the same therapist NPI on the accounts of one clinician at two practices', async (t) => {
    const npi = nextNpi();
    const secondPractice = await createPractice(test, networkAdmin);
    t.equal((await call('POST', usersUrl(practice.id), networkAdmin, therapistBody({ npi }))).statusCode, 201);
    const second = await call('POST', usersUrl(secondPractice.id), networkAdmin, therapistBody({ npi }));
    t.equal(second.statusCode, 201);
    t.equal(second.json().npi, npi);
  });

  t.test('rejects a therapist missing license, techniques and serviceRadiusKm with 400 naming each', async (t) => {
    const before = await usersOf(practice.id);
    const body = therapistBody({ license: undefined, techniques: undefined, serviceRadiusKm: undefined });
    assertProblem(t, await call('POST', usersUrl(practice.id), practice.admin.token, body), 400, ['license', 'techniques', 'serviceRadiusKm']);
    t.equal((await usersOf(practice.id)).length, before.length);
  });

  for (const field of ['license', 'techniques', 'serviceRadiusKm']) {
    t.test(`rejects a therapist missing only ${field} with 400 naming it`, async (t) => {
      const response = await call('POST', usersUrl(practice.id), practice.admin.token, therapistBody({ [field]: undefined }));
      assertProblem(t, response, 400, [field]);
      t.same(response.json().errors.map((problem: Json) => problem.field), [field], 'names nothing else');
    });
  }

  t.test('rejects therapist fields on a practice admin with 400 naming them', async (t) => {
    const body = userBody('practice_admin', { techniques: ['swedish'], serviceRadiusKm: 10 });
    assertProblem(t, await call('POST', usersUrl(practice.id), practice.admin.token, body), 400, ['techniques', 'serviceRadiusKm']);
  });

  t.test('rejects an unknown technique with 400 naming techniques[0]', async (t) => {
    const body = therapistBody({ techniques: ['reiki'] });
    assertProblem(t, await call('POST', usersUrl(practice.id), practice.admin.token, body), 400, ['techniques[0]']);
  });

  t.test('stores emails lower-cased and refuses a duplicate in any case with 409', async (t) => {
    const tag = unique();
    const created = await call('POST', usersUrl(officeA.id), officeA.admin.token, userBody('office_staff', { email: `Mixed.${tag}@Office.Example` }));
    t.equal(created.statusCode, 201);
    t.equal(created.json().email, `mixed.${tag}@office.example`);
    const before = await usersOf(officeB.id);
    const duplicate = await call('POST', usersUrl(officeB.id), networkAdmin, userBody('office_staff', { email: `MIXED.${tag}@office.EXAMPLE` }));
    assertProblem(t, duplicate, 409);
    t.equal((await usersOf(officeB.id)).length, before.length, 'no user was created');
  });

  t.test('answers simultaneous creations with one email with one 201 and 409 for the rest, never a 500', async (t) => {
    const body = userBody('office_staff');
    const responses = await simultaneously(() => call('POST', usersUrl(officeB.id), networkAdmin, body));
    t.same(statusCounts(responses), { 201: 1, 409: simultaneousRequests - 1 });
  });

  t.test('refuses a physician with 403 and audits the attempt as denied', async (t) => {
    const before = await usersOf(officeA.id);
    assertProblem(t, await call('POST', usersUrl(officeA.id), officeA.physician.token, userBody('office_staff')), 403);
    t.equal((await usersOf(officeA.id)).length, before.length, 'no user was created');
    const denied = await auditEvents(test, { action: 'user.create', outcome: 'denied', actorId: officeA.physician.id });
    t.equal(denied.length, 1);
    t.equal(denied[0]?.httpStatus, 403);
  });

  t.test('refuses office staff and therapists with 403', async (t) => {
    assertProblem(t, await call('POST', usersUrl(officeA.id), officeA.staff.token, userBody('office_staff')), 403);
    assertProblem(t, await call('POST', usersUrl(practice.id), practice.therapist.token, therapistBody()), 403);
  });

  t.test("answers an office admin adding a user to another office with 404, audited as denied, creating nothing", async (t) => {
    const body = userBody('office_staff');
    const before = await usersOf(officeB.id);
    assertProblem(t, await call('POST', usersUrl(officeB.id), officeA.admin.token, body), 404);
    t.equal((await usersOf(officeB.id)).length, before.length);
    const denied = await auditEvents(test, { action: 'user.create', outcome: 'denied', actorId: officeA.admin.id, resourceId: officeB.id });
    t.equal(denied.length, 1);
    t.match(denied[0], { resourceType: 'organization', httpStatus: 404 });
    // The email is still free: nothing of the refused request was kept.
    t.equal((await call('POST', usersUrl(officeB.id), networkAdmin, body)).statusCode, 201);
  });

  t.test('a network admin creates users in any organization', async (t) => {
    const physician = await call('POST', usersUrl(officeB.id), networkAdmin, userBody('physician', { npi: nextNpi() }));
    t.equal(physician.statusCode, 201);
    t.equal(physician.json().organizationId, officeB.id);
    const therapist = await call('POST', usersUrl(practice.id), networkAdmin, therapistBody());
    t.equal(therapist.statusCode, 201);
    t.equal(therapist.json().organizationId, practice.id);
  });

  t.test('answers an unknown organization with 404', async (t) => {
    assertProblem(t, await call('POST', usersUrl('00000000-0000-4000-8000-000000000000'), networkAdmin, userBody('office_staff')), 404);
  });
});

t.test('GET /v1/organizations/{id}/users', async (t) => {
  t.test("a member lists their organization's users and reads one", async (t) => {
    const list = await call('GET', `/v1/organizations/${officeA.id}/users`, officeA.physician.token);
    t.equal(list.statusCode, 200);
    const ids = list.json().data.map((user: Json) => user.id);
    for (const id of [officeA.physician.id, officeA.staff.id, officeA.admin.id]) t.ok(ids.includes(id));
    t.ok(list.json().data.every((user: Json) => user.organizationId === officeA.id));

    const one = await call('GET', `/v1/organizations/${officeA.id}/users/${officeA.staff.id}`, officeA.physician.token);
    t.equal(one.statusCode, 200);
    t.match(one.json(), { id: officeA.staff.id, email: officeA.staff.email, role: 'office_staff' });
  });

  t.test('role filters the list', async (t) => {
    const physicians = await walk(`/v1/organizations/${officeA.id}/users?role=physician`, officeA.admin.token, 200);
    t.ok(physicians.length >= 2);
    t.ok(physicians.every((user) => user.role === 'physician'));
  });

  t.test('limit=1 walks every user exactly once, in the order of one big page', async (t) => {
    const big = await usersOf(officeA.id);
    t.ok(big.length >= 4);
    const walked = await walk(`/v1/organizations/${officeA.id}/users`, officeA.admin.token, 1);
    t.same(walked.map((user) => user.id), big.map((user) => user.id));
  });

  t.test('answers a user of another organization under this one with 404', async (t) => {
    assertProblem(t, await call('GET', `/v1/organizations/${officeA.id}/users/${officeB.staff.id}`, officeA.admin.token), 404);
    assertProblem(t, await call('GET', `/v1/organizations/${officeA.id}/users/${officeB.staff.id}`, networkAdmin), 404);
  });

  t.test('rejects a malformed user id with 400 naming params.userId', async (t) => {
    assertProblem(t, await call('GET', `/v1/organizations/${officeA.id}/users/42`, officeA.admin.token), 400, ['params.userId']);
  });
});

t.test('PATCH /v1/organizations/{id}/users/{userId}', async (t) => {
  const userUrl = (organizationId: string, userId: string) => `/v1/organizations/${organizationId}/users/${userId}`;
  const newUser = async (organizationId: string, body: Json) => (await test.create(`/v1/organizations/${organizationId}/users`, networkAdmin, body)) as Json;
  const current = async (organizationId: string, userId: string) => (await call('GET', userUrl(organizationId, userId), networkAdmin)).json();

  t.test('an office admin deactivates a user, whose token and password stop working', async (t) => {
    const body = userBody('office_staff');
    const user = await newUser(officeA.id, body);
    const token = await test.login(body.email);
    const response = await call('PATCH', userUrl(officeA.id, user.id), officeA.admin.token, { active: false });
    t.equal(response.statusCode, 200);
    t.equal(response.json().active, false);
    assertProblem(t, await call('GET', '/v1/me', token), 401);
    await t.rejects(test.login(body.email), 'the password no longer signs in');
  });

  t.test('refuses an admin deactivating themself with 400 naming active', async (t) => {
    assertProblem(t, await call('PATCH', userUrl(officeA.id, officeA.admin.id), officeA.admin.token, { active: false }), 400, ['active']);
    t.equal((await current(officeA.id, officeA.admin.id)).active, true);
  });

  t.test('an office admin renames a user', async (t) => {
    const user = await newUser(officeA.id, userBody('office_staff'));
    const response = await call('PATCH', userUrl(officeA.id, user.id), officeA.admin.token, { name: 'Renamed Person' });
    t.equal(response.statusCode, 200);
    t.equal(response.json().name, 'Renamed Person');
    t.equal((await current(officeA.id, user.id)).name, 'Renamed Person');
  });

  t.test("a practice admin changes a therapist's techniques and acceptance", async (t) => {
    const therapist = await newUser(practice.id, therapistBody());
    const changes = { techniques: ['lymphatic_drainage', 'prenatal'], acceptingReferrals: false, serviceRadiusKm: 12 };
    const response = await call('PATCH', userUrl(practice.id, therapist.id), practice.admin.token, changes);
    t.equal(response.statusCode, 200);
    t.match(response.json().therapist, changes);
    t.match((await current(practice.id, therapist.id)).therapist, changes);
  });

  t.test('refuses therapist fields on a non-therapist with 400, changing nothing', async (t) => {
    assertProblem(t, await call('PATCH', userUrl(officeA.id, officeA.staff.id), officeA.admin.token, { techniques: ['swedish'], name: 'X' }), 400, ['techniques']);
    t.not((await current(officeA.id, officeA.staff.id)).name, 'X');
  });

  t.test('refuses licenseVerified from a practice admin with 400 naming it, leaving the license unverified', async (t) => {
    const therapist = await newUser(practice.id, therapistBody());
    assertProblem(t, await call('PATCH', userUrl(practice.id, therapist.id), practice.admin.token, { licenseVerified: true }), 400, ['licenseVerified']);
    t.equal((await current(practice.id, therapist.id)).therapist.license.verified, false);
  });

  t.test('a network admin verifies a license, and a changed license needs verifying again', async (t) => {
    const therapist = await newUser(practice.id, therapistBody());
    const verified = await call('PATCH', userUrl(practice.id, therapist.id), networkAdmin, { licenseVerified: true });
    t.equal(verified.statusCode, 200);
    t.equal(verified.json().therapist.license.verified, true);
    const license = { number: 'MT-NEW-1', state: 'WA', expiresOn: '2029-06-30' };
    const changed = await call('PATCH', userUrl(practice.id, therapist.id), practice.admin.token, { license });
    t.equal(changed.statusCode, 200);
    t.same(changed.json().therapist.license, { ...license, verified: false });
  });

  t.test("a practice admin sets, changes and removes a therapist's NPI", async (t) => {
    const therapist = await newUser(practice.id, therapistBody());
    for (const npi of [nextNpi(), nextNpi(), null]) {
      const response = await call('PATCH', userUrl(practice.id, therapist.id), practice.admin.token, { npi });
      t.equal(response.statusCode, 200);
      t.equal(response.json().npi, npi);
      t.equal((await current(practice.id, therapist.id)).npi, npi);
    }
  });

  t.test("an office admin changes a physician's NPI but cannot remove it (400 naming npi)", async (t) => {
    const physician = await newUser(officeA.id, userBody('physician', { npi: nextNpi() }));
    const npi = nextNpi();
    const changed = await call('PATCH', userUrl(officeA.id, physician.id), officeA.admin.token, { npi });
    t.equal(changed.statusCode, 200);
    t.equal(changed.json().npi, npi);
    assertProblem(t, await call('PATCH', userUrl(officeA.id, physician.id), officeA.admin.token, { npi: null }), 400, ['npi']);
    t.equal((await current(officeA.id, physician.id)).npi, npi, 'the NPI is kept');
  });

  const refusedNpiChanges: [string, () => Promise<[string, string, string]>, Json][] = [
    ['a bad check digit on a therapist', async () => [practice.id, (await newUser(practice.id, therapistBody({ npi: nextNpi() }))).id, practice.admin.token], { npi: '1234567890', name: 'X' }],
    ['a malformed NPI on a therapist', async () => [practice.id, (await newUser(practice.id, therapistBody({ npi: nextNpi() }))).id, practice.admin.token], { npi: '12345', name: 'X' }],
    ['an NPI on office staff', async () => [officeA.id, officeA.staff.id, officeA.admin.token], { npi: nextNpi(), name: 'X' }],
    ['an NPI on a practice admin', async () => [practice.id, practice.admin.id, practice.admin.token], { npi: nextNpi(), name: 'X' }],
  ];
  for (const [what, target, body] of refusedNpiChanges) {
    t.test(`refuses ${what} with 400 naming npi, changing nothing`, async (t) => {
      const [organizationId, userId, token] = await target();
      const before = await current(organizationId, userId);
      assertProblem(t, await call('PATCH', userUrl(organizationId, userId), token, body), 400, ['npi']);
      t.same(await current(organizationId, userId), before);
    });
  }

  const rejected: [string, Json, string][] = [
    ['an empty body', {}, 'body'],
    ['a server-owned field (role)', { role: 'office_admin' }, 'role'],
    ['an unknown field', { email: 'x@y.example' }, 'email'],
  ];
  for (const [what, body, field] of rejected) {
    t.test(`rejects ${what} with 400 naming ${field}`, async (t) => {
      assertProblem(t, await call('PATCH', userUrl(officeA.id, officeA.staff.id), officeA.admin.token, body), 400, [field]);
      t.equal((await current(officeA.id, officeA.staff.id)).role, 'office_staff');
    });
  }

  t.test('refuses a physician with 403', async (t) => {
    assertProblem(t, await call('PATCH', userUrl(officeA.id, officeA.staff.id), officeA.physician.token, { name: 'Nope' }), 403);
  });

  t.test('answers an unknown user with 404', async (t) => {
    assertProblem(t, await call('PATCH', userUrl(officeA.id, '00000000-0000-4000-8000-000000000000'), officeA.admin.token, { name: 'Nobody' }), 404);
  });
});

t.test('/v1/organizations/{id}/api-clients', async (t) => {
  const clientsUrl = (organizationId: string) => `/v1/organizations/${organizationId}/api-clients`;
  const clientBody = (scopes = ['patients:write', 'patients:read']) => ({ name: `EHR ${unique()}`, scopes });
  const clientToken = (clientId: string, clientSecret: string) =>
    test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret } });

  t.test('an office admin creates a client whose secret is shown once and never listed', async (t) => {
    const response = await call('POST', clientsUrl(officeA.id), officeA.admin.token, clientBody());
    t.equal(response.statusCode, 201);
    t.equal(response.headers['cache-control'], 'no-store');
    const client = response.json();
    t.match(client, { organizationId: officeA.id, active: true, revokedAt: null, scopes: ['patients:write', 'patients:read'] });
    t.type(client.clientSecret, 'string');
    t.ok(client.clientSecret.length >= 32);
    t.equal((await clientToken(client.clientId, client.clientSecret)).statusCode, 200, 'the secret works');

    const list = await call('GET', clientsUrl(officeA.id), officeA.admin.token);
    t.equal(list.statusCode, 200);
    const listed = list.json().data.find((item: Json) => item.id === client.id);
    t.ok(listed, 'the client is listed');
    t.ok(list.json().data.every((item: Json) => !('clientSecret' in item) && !('secretHash' in item)), 'no item has a secret');
    t.notOk(list.body.includes(client.clientSecret), 'the secret appears nowhere in the list');
  });

  t.test('revoking answers 204; the list then shows the client inactive and its secret stops working', async (t) => {
    const client = await test.create(clientsUrl(officeA.id), officeA.admin.token, clientBody());
    const revoked = await call('DELETE', `${clientsUrl(officeA.id)}/${client.id}`, officeA.admin.token);
    t.equal(revoked.statusCode, 204);
    t.equal(revoked.body, '');
    const listed = (await walk(clientsUrl(officeA.id), officeA.admin.token, 200)).find((item) => item.id === client.id);
    t.equal(listed?.active, false);
    t.type(listed?.revokedAt, 'string');
    t.equal((await clientToken(client.clientId, client.clientSecret)).statusCode, 401);
  });

  t.test('rejects an unknown scope with 400 naming it, creating nothing', async (t) => {
    const before = await walk(clientsUrl(officeA.id), officeA.admin.token, 200);
    assertProblem(t, await call('POST', clientsUrl(officeA.id), officeA.admin.token, clientBody(['admin:all'])), 400, ['scopes[0]']);
    t.equal((await walk(clientsUrl(officeA.id), officeA.admin.token, 200)).length, before.length);
  });

  t.test("answers another organization's admin with 404 on create, list and revoke", async (t) => {
    const client = await test.create(clientsUrl(officeA.id), officeA.admin.token, clientBody());
    const before = await walk(clientsUrl(officeA.id), officeA.admin.token, 200);
    assertProblem(t, await call('POST', clientsUrl(officeA.id), officeB.admin.token, clientBody()), 404);
    assertProblem(t, await call('GET', clientsUrl(officeA.id), officeB.admin.token), 404);
    assertProblem(t, await call('DELETE', `${clientsUrl(officeA.id)}/${client.id}`, officeB.admin.token), 404);
    const after = await walk(clientsUrl(officeA.id), officeA.admin.token, 200);
    t.equal(after.length, before.length, 'no client was created');
    t.equal(after.find((item) => item.id === client.id)?.active, true, 'the client was not revoked');
  });

  t.test('answers revoking a client of another organization under this one with 404', async (t) => {
    const foreign = await test.create(clientsUrl(officeB.id), officeB.admin.token, clientBody());
    assertProblem(t, await call('DELETE', `${clientsUrl(officeA.id)}/${foreign.id}`, officeA.admin.token), 404);
    t.equal((await walk(clientsUrl(officeB.id), officeB.admin.token, 200)).find((item) => item.id === foreign.id)?.active, true);
  });

  t.test('a network admin creates a client for any organization', async (t) => {
    const response = await call('POST', clientsUrl(practice.id), networkAdmin, clientBody(['directory:read']));
    t.equal(response.statusCode, 201);
    t.equal(response.json().organizationId, practice.id);
  });

  t.test('refuses a physician with 403', async (t) => {
    assertProblem(t, await call('POST', clientsUrl(officeA.id), officeA.physician.token, clientBody()), 403);
    assertProblem(t, await call('GET', clientsUrl(officeA.id), officeA.physician.token), 403);
  });
});
