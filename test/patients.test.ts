// /v1/patients: patients belong to the office that registered them, and every read is audited (SPEC §2, §6, §7).
import t, { type Test } from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate } from './fixtures/referral-bodies.js';
import { auditEvents, buildTestApp, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

/** Signs in a new API client of office A with these scopes and returns its access token and id. */
const officeClient = (scopes: string[]) => addApiClient(test, officeA.admin.token, officeA.id, scopes, `EHR ${scopes}`);

const writerClient = await officeClient(['patients:write', 'patients:read']);
const readerClient = await officeClient(['patients:read']);

function patientBody(overrides: Json = {}): Json {
  return {
    givenName: 'Maria',
    familyName: 'Gomez',
    birthDate: '1978-04-02',
    sex: 'female',
    identifiers: [{ system: 'urn:x:mrn', value: 'MRN-0042' }],
    ...overrides,
  };
}

const createPatient = (token: string, body: Json) => test.request({ method: 'POST', url: '/v1/patients', token, payload: body });
const get = (url: string, token: string) => test.request({ method: 'GET', url, token });

/** Every patient the caller's office lists, in one big page. */
async function listed(token: string, query = ''): Promise<Json[]> {
  const response = await get(`/v1/patients?limit=200${query}`, token);
  if (response.statusCode !== 200) throw new Error(`GET /v1/patients failed: ${response.statusCode} ${response.body}`);
  return response.json().data;
}

/** Asserts exactly one audit event was found, and that it matches. */
function assertOneEvent(t: Test, events: Json[], pattern: Json) {
  t.equal(events.length, 1, 'exactly one audit event');
  t.match(events[0], pattern);
}

t.test('POST /v1/patients', async (t) => {
  const creators = {
    'a physician': officeA.physician.token,
    'office staff': officeA.staff.token,
    'an office admin': officeA.admin.token,
    'an office API client with patients:write': writerClient.token,
  };
  for (const [who, token] of Object.entries(creators)) {
    t.test(`${who} registers a patient of their office`, async (t) => {
      const body = patientBody({ phone: '+1 503 555 0100', email: 'maria@example.com' });
      const response = await createPatient(token, body);
      t.equal(response.statusCode, 201);
      const patient = response.json();
      t.match(patient, { ...body, organizationId: officeA.id });
      t.equal(response.headers.location, `/v1/patients/${patient.id}`);
      const created = await auditEvents(test, { action: 'patient.create', resourceId: patient.id });
      assertOneEvent(t, created, { outcome: 'success', patientId: patient.id });
    });
  }

  t.test('optional fields come back as null and identifiers as []', async (t) => {
    const response = await createPatient(officeA.staff.token, patientBody({ identifiers: undefined, sex: 'unknown' }));
    t.equal(response.statusCode, 201);
    t.match(response.json(), { phone: null, email: null, identifiers: [], sex: 'unknown' });
  });

  t.test('accepts a birth date of today', async (t) => {
    t.equal((await createPatient(officeA.staff.token, patientBody({ birthDate: isoDate(0) }))).statusCode, 201);
  });

  const rejected: [string, Json, string][] = [
    ['a birth date in the future', patientBody({ birthDate: isoDate(2) }), 'birthDate'],
    ['a birth date that is not a date', patientBody({ birthDate: '1978-13-40' }), 'birthDate'],
    ['a bad sex', patientBody({ sex: 'x' }), 'sex'],
    ['a missing family name', patientBody({ familyName: undefined }), 'familyName'],
    ['a malformed phone', patientBody({ phone: 'call me' }), 'phone'],
    ['an identifier without a value', patientBody({ identifiers: [{ system: 'urn:x:mrn' }] }), 'identifiers[0].value'],
    ['an unknown field', patientBody({ ssn: '123-45-6789' }), 'ssn'],
    ['a server-owned organizationId', patientBody({ organizationId: officeB.id }), 'organizationId'],
  ];
  for (const [what, body, field] of rejected) {
    t.test(`rejects ${what} with 400 naming ${field}, creating nothing`, async (t) => {
      const before = await listed(officeA.staff.token);
      assertProblem(t, await createPatient(officeA.physician.token, body), 400, [field]);
      t.equal((await listed(officeA.staff.token)).length, before.length, 'no patient was created');
    });
  }

  const refused = {
    'a therapist': practice.therapist,
    'a practice admin': practice.admin,
    'a network admin': { id: networkAdminId, token: networkAdmin },
    'an API client without patients:write': readerClient,
  };
  for (const [who, caller] of Object.entries(refused)) {
    t.test(`refuses ${who} with 403, audited as denied`, async (t) => {
      const before = await listed(officeA.staff.token);
      assertProblem(t, await createPatient(caller.token, patientBody()), 403);
      t.equal((await listed(officeA.staff.token)).length, before.length, 'no patient was created');
      const denied = await auditEvents(test, { action: 'patient.create', outcome: 'denied', actorId: caller.id });
      assertOneEvent(t, denied, { httpStatus: 403 });
    });
  }
});

t.test('GET /v1/patients', async (t) => {
  const mrn1 = (await test.create('/v1/patients', officeA.physician.token, patientBody({ givenName: 'Ana', identifiers: [{ system: 'urn:x:mrn', value: 'MRN-1' }] }))) as Json;
  await test.create('/v1/patients', officeA.physician.token, patientBody({ identifiers: [{ system: 'urn:x:mrn', value: 'MRN-2' }] }));
  await test.create('/v1/patients', officeA.physician.token, patientBody({ identifiers: [{ system: 'urn:other:mrn', value: 'MRN-1' }] }));
  const foreign = (await test.create('/v1/patients', officeB.physician.token, patientBody({ identifiers: [{ system: 'urn:x:mrn', value: 'MRN-1' }] }))) as Json;

  t.test("lists only the caller's own office's patients", async (t) => {
    const own = await listed(officeA.physician.token);
    t.ok(own.length >= 4);
    t.ok(own.every((patient) => patient.organizationId === officeA.id));
    t.notOk(own.some((patient) => patient.id === foreign.id));
    t.same((await listed(officeB.staff.token)).map((patient) => patient.id), [foreign.id]);
  });

  t.test('identifier=system|value finds the matching patient only', async (t) => {
    const found = await listed(officeA.staff.token, `&identifier=${encodeURIComponent('urn:x:mrn|MRN-1')}`);
    t.same(found.map((patient) => patient.id), [mrn1.id]);
    t.same(await listed(officeA.staff.token, `&identifier=${encodeURIComponent('urn:x:mrn|MRN-404')}`), []);
  });

  t.test('rejects an identifier without a system with 400 naming query.identifier', async (t) => {
    assertProblem(t, await get('/v1/patients?identifier=MRN-1', officeA.staff.token), 400, ['query.identifier']);
  });

  t.test('limit=1 walks every patient once, in the order of one big page', async (t) => {
    const big = await listed(officeA.staff.token);
    const walked: Json[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = (await get(`/v1/patients?limit=1${cursor ? `&cursor=${cursor}` : ''}`, officeA.staff.token)).json();
      walked.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor !== null && walked.length <= big.length);
    t.same(walked.map((patient) => patient.id), big.map((patient) => patient.id));
  });

  t.test('rejects a forged cursor with 400 naming query.cursor', async (t) => {
    const cursor = Buffer.from(JSON.stringify(['1700000000000000', 'not-a-uuid'])).toString('base64url');
    assertProblem(t, await get(`/v1/patients?cursor=${cursor}`, officeA.staff.token), 400, ['query.cursor']);
  });

  t.test('each listed patient is audited as read by the caller', async (t) => {
    const page = (await get(`/v1/patients?identifier=${encodeURIComponent('urn:x:mrn|MRN-1')}`, officeA.admin.token)).json();
    t.equal(page.data.length, 1);
    const reads = await auditEvents(test, { action: 'patient.list', actorId: officeA.admin.id, resourceId: mrn1.id });
    assertOneEvent(t, reads, { outcome: 'success', patientId: mrn1.id, resourceType: 'patient' });
  });

  t.test('an office API client with patients:read lists the office patients', async (t) => {
    const own = await listed(readerClient.token);
    t.ok(own.length >= 4);
    t.ok(own.every((patient) => patient.organizationId === officeA.id));
  });

  const refused = {
    'a therapist': practice.therapist.token,
    'a practice admin': practice.admin.token,
    'a network admin': networkAdmin,
    'an API client without patients:read': (await officeClient(['directory:read'])).token,
  };
  for (const [who, token] of Object.entries(refused)) {
    t.test(`refuses ${who} with 403`, async (t) => {
      assertProblem(t, await get('/v1/patients', token), 403);
    });
  }
});

t.test('GET /v1/patients/{id}', async (t) => {
  const patient = (await test.create('/v1/patients', officeA.staff.token, patientBody({ givenName: 'Lee' }))) as Json;

  t.test('a member of the office reads the patient, audited as patient.read with the patientId', async (t) => {
    const response = await get(`/v1/patients/${patient.id}`, officeA.physician.token);
    t.equal(response.statusCode, 200);
    t.same(response.json(), patient);
    const reads = await auditEvents(test, { action: 'patient.read', actorId: officeA.physician.id });
    assertOneEvent(t, reads, { outcome: 'success', resourceType: 'patient', resourceId: patient.id, patientId: patient.id, httpStatus: 200 });
  });

  t.test('an office API client with patients:read reads the patient, audited with its id as actor', async (t) => {
    t.equal((await get(`/v1/patients/${patient.id}`, readerClient.token)).statusCode, 200);
    const reads = await auditEvents(test, { action: 'patient.read', actorId: readerClient.id });
    assertOneEvent(t, reads, { actorType: 'api_client', patientId: patient.id });
  });

  t.test('answers another office with 404, audited as denied against the patient', async (t) => {
    assertProblem(t, await get(`/v1/patients/${patient.id}`, officeB.physician.token), 404);
    const denied = await auditEvents(test, { action: 'patient.read', outcome: 'denied', actorId: officeB.physician.id });
    assertOneEvent(t, denied, { resourceId: patient.id, patientId: patient.id, httpStatus: 404 });
  });

  for (const [who, token] of Object.entries({ 'a therapist': practice.therapist.token, 'a network admin': networkAdmin })) {
    t.test(`refuses ${who} with 403`, async (t) => {
      assertProblem(t, await get(`/v1/patients/${patient.id}`, token), 403);
    });
  }

  t.test('rejects a malformed id with 400 naming params.id', async (t) => {
    assertProblem(t, await get('/v1/patients/123', officeA.staff.token), 400, ['params.id']);
  });
});
