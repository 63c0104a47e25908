// POST /v1/referrals: what a physician office may prescribe, every validation rule as a 400 naming
// the field, the defaults the server fills in, and who a network offer reaches (SPEC §3, §6).
import t from 'tap';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { assertStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, defaultPassword, nextNpi, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
// An office that only the "creates nothing" tests write to, so its list is short and exact.
const quietOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const dayMs = 86_400_000;
const isoDate = (offsetDays: number, from = Date.now()) => new Date(from + offsetDays * dayMs).toISOString().slice(0, 10);
const addDays = (date: string, days: number) => isoDate(days, Date.parse(`${date}T00:00:00Z`));

/** A valid referral from office A to the practice's therapist; overrides replace (or, as undefined, drop) fields. */
const validReferral = (overrides: Json = {}): Json => referralBody({ goals: ['Pain at or below 3/10'], therapistId: practice.therapist.id, ...overrides });

const createReferral = (token: string, body: Json) => test.request({ method: 'POST', url: '/v1/referrals', token, payload: body });
const get = (url: string, token: string) => test.request({ method: 'GET', url, token });

/** Every referral the caller lists, walking all pages. */
async function listed(token: string): Promise<Json[]> {
  const all: Json[] = [];
  let cursor: string | null = null;
  do {
    const response = await get(`/v1/referrals?limit=200${cursor ? `&cursor=${cursor}` : ''}`, token);
    if (response.statusCode !== 200) throw new Error(`GET /v1/referrals failed: ${response.statusCode} ${response.body}`);
    const page: Json = response.json();
    all.push(...page.data);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return all;
}

/** Signs in a new API client of an office with these scopes and returns its access token and id. */
const officeClient = (officeId: string, adminToken: string, scopes: string[]) => addApiClient(test, adminToken, officeId, scopes, `EHR ${scopes}`);

async function patchUser(organizationId: string, userId: string, changes: Json) {
  const response = await test.request({ method: 'PATCH', url: `/v1/organizations/${organizationId}/users/${userId}`, token: networkAdmin, payload: changes });
  if (response.statusCode !== 200) throw new Error(`PATCH user failed: ${response.statusCode} ${response.body}`);
}

t.test('POST /v1/referrals › validation', async (t) => {
  const foreignPatient = await test.create('/v1/patients', officeB.physician.token, { givenName: 'Ola', familyName: 'Berg', birthDate: '1960-01-01', sex: 'male' });
  const ownPatient = await test.create('/v1/patients', officeA.physician.token, { givenName: 'Ana', familyName: 'Lima', birthDate: '1990-05-05', sex: 'female' });

  // Therapists who cannot take a referral.
  const closedPractice = await createPractice(test, networkAdmin, { acceptingReferrals: false });
  const inactivePractice = await createPractice(test, networkAdmin);
  await patchUser(inactivePractice.id, inactivePractice.therapist.id, { active: false });
  const lapsedPractice = await createPractice(test, networkAdmin);
  // Verified again after the change, so the expiry alone is what is wrong with it.
  await patchUser(lapsedPractice.id, lapsedPractice.therapist.id, { license: { number: 'MT-OLD', state: 'OR', expiresOn: isoDate(-1) } });
  await patchUser(lapsedPractice.id, lapsedPractice.therapist.id, { licenseVerified: true });
  const unverifiedPractice = await createPractice(test, networkAdmin);
  await patchUser(unverifiedPractice.id, unverifiedPractice.therapist.id, { licenseVerified: false });

  const twelve = Array.from({ length: 12 }, (_, i) => ({ code: `M54.${i + 10}`, display: `Diagnosis ${i}` }));
  const thirteen = [...twelve, { code: 'M79.7', display: 'Fibromyalgia' }];

  const rejected: [string, Json, string[], string?][] = [
    ['an ICD-10 code without its dot (M5450)', validReferral({ diagnoses: [{ code: 'M5450', display: 'x' }] }), ['diagnoses[0].code']],
    ['an ICD-10 code starting with U (U07.1)', validReferral({ diagnoses: [{ code: 'U07.1', display: 'x' }] }), ['diagnoses[0].code']],
    ['an ICD-10 code of four characters without a dot (M545)', validReferral({ diagnoses: [{ code: 'M545', display: 'x' }] }), ['diagnoses[0].code']],
    ['an ICD-10 code in lower case (m54.50)', validReferral({ diagnoses: [{ code: 'm54.50', display: 'x' }] }), ['diagnoses[0].code']],
    ['an ICD-10 code with five characters after the dot', validReferral({ diagnoses: [{ code: 'G44.20912', display: 'x' }] }), ['diagnoses[0].code']],
    ['a bad code on a secondary diagnosis', validReferral({ diagnoses: [{ code: 'M54.50', display: 'x' }, { code: '123', display: 'y' }] }), ['diagnoses[1].code']],
    ['no diagnoses', validReferral({ diagnoses: [] }), ['diagnoses']],
    ['13 diagnoses', validReferral({ diagnoses: thirteen }), ['diagnoses']],
    ['a diagnosis without a display', validReferral({ diagnoses: [{ code: 'M54.50' }] }), ['diagnoses[0].display']],
    ['a technique outside the catalog', validReferral({ techniques: ['reiki'] }), ['techniques[0]']],
    ['a body region outside the catalog', validReferral({ bodyRegions: ['lower_back', 'elbow'] }), ['bodyRegions[1]']],
    ['duplicate techniques', validReferral({ techniques: ['trigger_point', 'trigger_point'] }), ['techniques']],
    ['no techniques', validReferral({ techniques: [] }), ['techniques']],
    ['duplicate body regions', validReferral({ bodyRegions: ['neck', 'neck'] }), ['bodyRegions']],
    ['frequencyPerWeek 0', validReferral({ frequencyPerWeek: 0 }), ['frequencyPerWeek']],
    ['frequencyPerWeek 8', validReferral({ frequencyPerWeek: 8 }), ['frequencyPerWeek']],
    ['a fractional frequencyPerWeek', validReferral({ frequencyPerWeek: 1.5 }), ['frequencyPerWeek']],
    ['frequencyPerWeek as a string', validReferral({ frequencyPerWeek: '2' }), ['frequencyPerWeek']],
    ['durationWeeks 0', validReferral({ durationWeeks: 0 }), ['durationWeeks']],
    ['durationWeeks 53', validReferral({ durationWeeks: 53 }), ['durationWeeks']],
    ['sessionMinutes 14', validReferral({ sessionMinutes: 14 }), ['sessionMinutes']],
    ['sessionMinutes 121', validReferral({ sessionMinutes: 121 }), ['sessionMinutes']],
    ['visitsAuthorized 0', validReferral({ visitsAuthorized: 0 }), ['visitsAuthorized']],
    ['visitsAuthorized 101', validReferral({ visitsAuthorized: 101 }), ['visitsAuthorized']],
    ['expiresOn before startDate', validReferral({ startDate: isoDate(10), expiresOn: isoDate(5) }), ['expiresOn']],
    ['expiresOn equal to startDate', validReferral({ startDate: isoDate(10), expiresOn: isoDate(10) }), ['expiresOn']],
    ['expiresOn in the past', validReferral({ startDate: isoDate(-20), expiresOn: isoDate(-1) }), ['expiresOn']],
    ['startDate more than 30 days in the past', validReferral({ startDate: isoDate(-31), expiresOn: isoDate(30) }), ['startDate']],
    ['a startDate that is not a date', validReferral({ startDate: '2026-02-30' }), ['startDate']],
    ['an expiresOn that is not a date', validReferral({ expiresOn: 'next month' }), ['expiresOn']],
    ['a startDate with a time', validReferral({ startDate: `${isoDate(1)}T00:00:00Z` }), ['startDate']],
    ['a priority outside the enum', validReferral({ priority: 'asap' }), ['priority']],
    ['a CPT code of 4 digits', validReferral({ insurance: { payer: 'Acme', memberId: 'M1', cptCodes: ['9712'] } }), ['insurance.cptCodes[0]']],
    ['a CPT code with a letter', validReferral({ insurance: { payer: 'Acme', memberId: 'M1', cptCodes: ['97124', '9714A'] } }), ['insurance.cptCodes[1]']],
    ['insurance without a payer', validReferral({ insurance: { memberId: 'M1' } }), ['insurance.payer']],
    ['both patientId and patient', validReferral({ patientId: ownPatient.id }), ['patientId']],
    ['neither patientId nor patient', validReferral({ patient: undefined }), ['patientId']],
    ['a patientId of another office', validReferral({ patient: undefined, patientId: foreignPatient.id }), ['patientId']],
    ['a patientId that does not exist', validReferral({ patient: undefined, patientId: crypto.randomUUID() }), ['patientId']],
    ['a patientId that is not a uuid', validReferral({ patient: undefined, patientId: 'P-1' }), ['patientId']],
    ['an inline patient born in the future', validReferral({ patient: { givenName: 'A', familyName: 'B', birthDate: isoDate(3), sex: 'female' } }), ['patient.birthDate']],
    ['both therapistId and practiceId', validReferral({ practiceId: practice.id }), ['therapistId', 'practiceId']],
    ['both practiceId and network', validReferral({ therapistId: undefined, practiceId: practice.id, network: { near: { lat: 45.5, lng: -122.6 }, radiusKm: 10 } }), ['practiceId', 'network']],
    ['no target at all', validReferral({ therapistId: undefined }), ['therapistId', 'practiceId', 'network']],
    ['an unknown therapistId', validReferral({ therapistId: crypto.randomUUID() }), ['therapistId']],
    ['a therapistId that is a physician', validReferral({ therapistId: officeA.physician.id }), ['therapistId']],
    ['an inactive therapist', validReferral({ therapistId: inactivePractice.therapist.id }), ['therapistId']],
    ['a therapist not accepting referrals', validReferral({ therapistId: closedPractice.therapist.id }), ['therapistId']],
    ['a practiceId that is a physician office', validReferral({ therapistId: undefined, practiceId: officeB.id }), ['practiceId']],
    ['an unknown practiceId', validReferral({ therapistId: undefined, practiceId: crypto.randomUUID() }), ['practiceId']],
    ['a network offer with radiusKm 0', validReferral({ therapistId: undefined, network: { near: { lat: 45.5, lng: -122.6 }, radiusKm: 0 } }), ['network.radiusKm']],
    ['a network offer with a latitude of 91', validReferral({ therapistId: undefined, network: { near: { lat: 91, lng: -122.6 }, radiusKm: 10 } }), ['network.near.lat']],
    ['a network offer with an unknown technique', validReferral({ therapistId: undefined, network: { techniques: ['reiki'], near: { lat: 45.5, lng: -122.6 }, radiusKm: 10 } }), ['network.techniques[0]']],
    ['a prescriberId of another office', validReferral({ prescriberId: officeB.physician.id }), ['prescriberId']],
    ['a prescriberId who is not a physician', validReferral({ prescriberId: officeA.staff.id }), ['prescriberId']],
    ['an unknown field', validReferral({ urgency: 'high' }), ['urgency']],
  ];
  for (const [what, body, fields] of rejected) {
    t.test(`rejects ${what} with 400 naming ${fields.join(', ')}`, async (t) => {
      assertProblem(t, await createReferral(officeA.physician.token, body), 400, fields);
    });
  }

  // SPEC §14.2: a therapist who may not treat cannot be targeted; the 409 says why.
  for (const [what, therapistId, reasons, said] of [
    ['has expired', lapsedPractice.therapist.id, ['expired'], /license expired on \d{4}-\d{2}-\d{2}/],
    ['is not verified', unverifiedPractice.therapist.id, ['unverified'], /has not been verified/],
  ] as const) {
    t.test(`rejects a therapist whose license ${what}: 409 license-invalid, nothing created`, async (t) => {
      const before = (await get('/v1/referrals?limit=200', officeA.physician.token)).json().data.length;
      const response = await createReferral(officeA.physician.token, validReferral({ therapistId }));
      const problem = assertProblem(t, response, 409);
      t.equal(problem.code, 'license-invalid');
      t.same(problem.reasons, reasons);
      t.match(problem.detail, said);
      t.equal((await get('/v1/referrals?limit=200', officeA.physician.token)).json().data.length, before, 'no referral was created');
    });
  }

  t.test('accepts ICD-10 codes of every valid shape (M54.50, G44.209, M79.7 and a bare category M54)', async (t) => {
    const diagnoses = ['M54.50', 'G44.209', 'M79.7', 'M54'].map((code) => ({ code, display: code }));
    const response = await createReferral(officeA.physician.token, validReferral({ diagnoses }));
    assertStatus(t, response, 201);
    t.same(response.json().diagnoses, diagnoses, 'diagnoses are kept in order, the first primary');
  });

  t.test('accepts 12 diagnoses', async (t) => {
    t.equal((await createReferral(officeA.physician.token, validReferral({ diagnoses: twelve }))).statusCode, 201);
  });

  t.test('accepts every number at its bounds', async (t) => {
    for (const bounds of [
      { frequencyPerWeek: 1, durationWeeks: 1, sessionMinutes: 15, visitsAuthorized: 1 },
      { frequencyPerWeek: 7, durationWeeks: 52, sessionMinutes: 120, visitsAuthorized: 100 },
    ]) {
      const response = await createReferral(officeA.physician.token, validReferral(bounds));
      assertStatus(t, response, 201);
      t.match(response.json(), bounds);
    }
  });

  t.test('accepts a startDate exactly 30 days in the past', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ startDate: isoDate(-30) }));
    assertStatus(t, response, 201);
    t.equal(response.json().expiresOn, addDays(isoDate(-30), 90));
  });

  t.test('accepts an expiresOn of today', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ startDate: isoDate(-10), expiresOn: isoDate(0) }));
    assertStatus(t, response, 201);
  });

  t.test('accepts a CPT code of 5 digits and keeps the insurance', async (t) => {
    const insurance = { payer: 'Acme Health', memberId: 'AH123', groupNumber: 'G1', authorizationNumber: 'PA-1', cptCodes: ['97124', '97140', '97112'] };
    const response = await createReferral(officeA.physician.token, validReferral({ insurance }));
    assertStatus(t, response, 201);
    t.same(response.json().insurance, insurance);
  });

  t.test("takes an existing patientId of the caller's office", async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ patient: undefined, patientId: ownPatient.id }));
    assertStatus(t, response, 201);
    t.equal(response.json().patientId, ownPatient.id);
    t.match(response.json().patient, { id: ownPatient.id, givenName: 'Ana', familyName: 'Lima' });
  });

  const serverOwned: [string, unknown][] = [
    ['id', crypto.randomUUID()],
    ['status', 'accepted'],
    ['version', 7],
    ['organizationId', officeB.id],
    ['acceptedBy', { therapistId: practice.therapist.id, practiceId: practice.id, at: new Date().toISOString() }],
    ['createdAt', '2020-01-01T00:00:00.000Z'],
    ['updatedAt', '2020-01-01T00:00:00.000Z'],
    ['visitsUsed', 3],
  ];
  for (const [field, value] of serverOwned) {
    t.test(`rejects the server-owned field ${field} with 400 naming it, creating nothing`, async (t) => {
      const before = await listed(quietOffice.physician.token);
      const body = validReferral({ [field]: value, send: true });
      assertProblem(t, await createReferral(quietOffice.physician.token, body), 400, [field]);
      t.equal((await listed(quietOffice.physician.token)).length, before.length, 'no referral was created');
    });
  }

  t.test('a rejected referral with an inline patient registers no patient either', async (t) => {
    const patientsBefore = (await get('/v1/patients?limit=200', quietOffice.physician.token)).json().data.length;
    const before = await listed(quietOffice.physician.token);
    assertProblem(t, await createReferral(quietOffice.physician.token, validReferral({ therapistId: crypto.randomUUID() })), 400, ['therapistId']);
    t.equal((await listed(quietOffice.physician.token)).length, before.length, 'no referral was created');
    t.equal((await get('/v1/patients?limit=200', quietOffice.physician.token)).json().data.length, patientsBefore, 'no patient was created');
  });
});

t.test('POST /v1/referrals › prescriber', async (t) => {
  t.test('a physician prescribes as themself by default', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral());
    t.equal(response.statusCode, 201);
    t.equal(response.json().prescriberId, officeA.physician.id);
    t.match(response.json().signature, { signedBy: officeA.physician.id, method: 'physician' }, 'and signs it by creating it (SPEC §14.1)');
  });

  for (const who of ['staff', 'admin'] as const) {
    t.test(`office ${who} must name the prescriberId: without it 400 naming prescriberId`, async (t) => {
      assertProblem(t, await createReferral(officeA[who].token, validReferral()), 400, ['prescriberId']);
    });
    t.test(`office ${who} naming a physician of the office creates the referral for that prescriber`, async (t) => {
      const response = await createReferral(officeA[who].token, validReferral({ prescriberId: officeA.physician.id }));
      assertStatus(t, response, 201);
      t.equal(response.json().prescriberId, officeA.physician.id);
      t.equal(response.json().organizationId, officeA.id);
      t.equal(response.json().signature, null, 'unsigned until the prescriber signs it (SPEC §14.1)');
    });
  }

  t.test('office staff naming a physician of another office gets 400 naming prescriberId', async (t) => {
    assertProblem(t, await createReferral(officeA.staff.token, validReferral({ prescriberId: officeB.physician.id })), 400, ['prescriberId']);
  });

  t.test('office staff naming a user who does not exist gets 400 naming prescriberId', async (t) => {
    assertProblem(t, await createReferral(officeA.staff.token, validReferral({ prescriberId: crypto.randomUUID() })), 400, ['prescriberId']);
  });

  t.test('office staff naming a deactivated physician gets 400 naming prescriberId', async (t) => {
    const email = `retired.${Date.now()}@office.example`;
    const retired = await test.create(`/v1/organizations/${officeA.id}/users`, officeA.admin.token, {
      role: 'physician',
      email,
      password: defaultPassword,
      name: 'Dr Retired',
      npi: nextNpi(),
    });
    t.equal((await createReferral(officeA.staff.token, validReferral({ prescriberId: retired.id }))).statusCode, 201, 'accepted while active');
    await patchUser(officeA.id, retired.id, { active: false });
    assertProblem(t, await createReferral(officeA.staff.token, validReferral({ prescriberId: retired.id })), 400, ['prescriberId']);
  });

  t.test('an office API client with referrals:write creates a referral naming the prescriber, recorded as the api_client', async (t) => {
    // referrals:sign: the EHR vouches that the prescriber signed, so the order may go out at once (SPEC §14.1).
    const client = await officeClient(officeA.id, officeA.admin.token, ['referrals:write', 'referrals:read', 'referrals:sign']);
    assertProblem(t, await createReferral(client.token, validReferral()), 400, ['prescriberId']);
    const response = await createReferral(client.token, validReferral({ prescriberId: officeA.physician.id, send: true }));
    assertStatus(t, response, 201);
    const referral = response.json();
    t.match(referral, { prescriberId: officeA.physician.id, organizationId: officeA.id, status: 'sent', signature: { signedBy: officeA.physician.id, method: 'ehr_attested' } });
    const history = (await get(`/v1/referrals/${referral.id}/history`, client.token)).json().data;
    t.match(history, [
      { action: 'create', actor: { type: 'api_client', id: client.id, organizationId: officeA.id } },
      { action: 'send', actor: { type: 'api_client', id: client.id, organizationId: officeA.id } },
    ]);
    const created = await auditEvents(test, { action: 'referral.create', resourceId: referral.id });
    t.equal(created.length, 1);
    t.match(created[0], { actorType: 'api_client', actorId: client.id, outcome: 'success', patientId: referral.patientId });
  });

  t.test('an office API client with only referrals:read is refused with 403', async (t) => {
    const client = await officeClient(officeA.id, officeA.admin.token, ['referrals:read']);
    assertProblem(t, await createReferral(client.token, validReferral({ prescriberId: officeA.physician.id })), 403);
  });

  for (const [who, token] of [['a therapist', practice.therapist.token], ['a practice admin', practice.admin.token], ['a network admin', networkAdmin]] as const) {
    t.test(`${who} cannot prescribe: 403`, async (t) => {
      assertProblem(t, await createReferral(token, validReferral({ prescriberId: officeA.physician.id })), 403);
    });
  }
});

t.test('POST /v1/referrals › defaults and response', async (t) => {
  t.test('a full referral comes back as sent, with ETag "1", a Location, and the same body on GET', async (t) => {
    const body = validReferral({
      goals: ['Pain at or below 3/10', 'Return to work'],
      precautions: ['No deep pressure over L4–L5'],
      contraindications: 'Anticoagulants',
      techniques: ['trigger_point', 'myofascial_release'],
      bodyRegions: ['lower_back', 'neck'],
      priority: 'urgent',
      send: true,
    });
    const response = await createReferral(officeA.physician.token, body);
    assertStatus(t, response, 201);
    const referral = response.json();
    t.equal(response.headers.etag, `"${referral.version}"`);
    t.equal(response.headers.etag, '"1"');
    t.equal(response.headers.location, `/v1/referrals/${referral.id}`);
    t.match(referral, {
      status: 'sent',
      version: 1,
      organizationId: officeA.id,
      prescriberId: officeA.physician.id,
      patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female', phone: null, email: null },
      diagnoses: body.diagnoses,
      reason: body.reason,
      goals: body.goals,
      precautions: body.precautions,
      contraindications: 'Anticoagulants',
      techniques: body.techniques,
      bodyRegions: body.bodyRegions,
      frequencyPerWeek: 2,
      durationWeeks: 6,
      sessionMinutes: 60,
      visitsAuthorized: 12,
      priority: 'urgent',
      insurance: null,
      therapistId: practice.therapist.id,
      practiceId: null,
      network: null,
      acceptedBy: null,
      progress: { visitsUsed: 0, visitsAuthorized: 12, visitsRemaining: 12, firstPain: null, latestPain: null, latestOutcomeScores: [] },
    });
    t.equal(referral.patientId, referral.patient.id);
    t.equal(referral.createdAt, referral.updatedAt);

    const read = await get(response.headers.location as string, officeA.physician.token);
    t.equal(read.statusCode, 200);
    t.equal(read.headers.etag, '"1"');
    t.same(read.json(), referral);

    const created = await auditEvents(test, { action: 'referral.create', resourceId: referral.id });
    t.equal(created.length, 1, 'the creation is audited once');
    t.match(created[0], { outcome: 'success', actorId: officeA.physician.id, patientId: referral.patientId, httpStatus: 201 });
    const registered = await auditEvents(test, { action: 'patient.create', resourceId: referral.patientId });
    t.equal(registered.length, 1, 'registering the inline patient is audited');
    const patient = await get(`/v1/patients/${referral.patientId}`, officeA.physician.token);
    t.equal(patient.statusCode, 200, 'the inline patient is a patient of the office');
  });

  t.test('defaults: visitsAuthorized = frequency × weeks, startDate today, expiresOn start + 90 days, routine, draft', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ frequencyPerWeek: 3, durationWeeks: 4 }));
    t.equal(response.statusCode, 201);
    const referral = response.json();
    t.equal(referral.visitsAuthorized, 12);
    t.equal(referral.progress.visitsRemaining, 12);
    t.equal(referral.startDate, isoDate(0));
    t.equal(referral.expiresOn, addDays(isoDate(0), 90));
    t.equal(referral.priority, 'routine');
    t.equal(referral.status, 'draft');
    t.same(referral.goals, ['Pain at or below 3/10']);
    t.same(referral.precautions, []);
    t.equal(referral.contraindications, '');
    const history = (await get(`/v1/referrals/${referral.id}/history`, officeA.physician.token)).json().data;
    t.match(history, [{ action: 'create', fromStatus: null, toStatus: 'draft', version: 1 }]);
    t.equal(history.length, 1, 'a draft has only its create event');
  });

  t.test('the default visitsAuthorized is capped at 100', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ frequencyPerWeek: 7, durationWeeks: 52 }));
    t.equal(response.statusCode, 201);
    t.equal(response.json().visitsAuthorized, 100);
  });

  t.test('an explicit visitsAuthorized wins over the default', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ visitsAuthorized: 5 }));
    t.equal(response.json().visitsAuthorized, 5);
  });

  t.test('expiresOn defaults to 90 days after a given startDate', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ startDate: isoDate(14) }));
    t.equal(response.statusCode, 201);
    t.match(response.json(), { startDate: isoDate(14), expiresOn: addDays(isoDate(14), 90) });
  });

  t.test('send: false makes a draft; send: true sends at once with create and send in the history', async (t) => {
    t.equal((await createReferral(officeA.physician.token, validReferral({ send: false }))).json().status, 'draft');
    const sent = (await createReferral(officeA.physician.token, validReferral({ send: true }))).json();
    t.equal(sent.status, 'sent');
    const history = (await get(`/v1/referrals/${sent.id}/history`, officeA.physician.token)).json().data;
    t.match(history, [
      { action: 'create', fromStatus: null, toStatus: 'draft', actor: { type: 'user', id: officeA.physician.id, organizationId: officeA.id } },
      { action: 'send', fromStatus: 'draft', toStatus: 'sent', actor: { type: 'user', id: officeA.physician.id } },
    ]);
    t.equal(history.length, 2);
  });

  t.test('a practice target comes back with practiceId and no therapistId', async (t) => {
    const response = await createReferral(officeA.physician.token, validReferral({ therapistId: undefined, practiceId: practice.id, send: true }));
    t.equal(response.statusCode, 201);
    t.match(response.json(), { practiceId: practice.id, therapistId: null, network: null });
    t.equal((await get(`/v1/referrals/${response.json().id}`, practice.therapist.token)).statusCode, 200, "the practice's therapist sees it");
  });
});

t.test('POST /v1/referrals › network target', async (t) => {
  // A region of its own, far from every other practice of this file: 0.01° of latitude ≈ 1.1 km.
  const center = { lat: 40.0, lng: -100.0 };
  const at = (dLat: number) => ({ lat: center.lat + dLat, lng: center.lng });
  const near = await createPractice(test, networkAdmin, { location: at(0), techniques: ['trigger_point', 'myofascial_release'] });
  const mid = await createPractice(test, networkAdmin, { location: at(0.1), techniques: ['trigger_point'] }); // ≈ 11 km
  const far = await createPractice(test, networkAdmin, { location: at(0.3), techniques: ['trigger_point'] }); // ≈ 33 km, serves 25 km
  const wide = await addTherapist(test, networkAdmin, far.id, { serviceRadiusKm: 100 }); // ≈ 33 km, serves 100 km
  const closed = await createPractice(test, networkAdmin, { location: at(0), techniques: ['trigger_point'], acceptingReferrals: false });
  const swedishOnly = await createPractice(test, networkAdmin, { location: at(0), techniques: ['swedish'] });
  const inactive = await createPractice(test, networkAdmin, { location: at(0), techniques: ['trigger_point'] });
  const lapsed = await createPractice(test, networkAdmin, { location: at(0), techniques: ['trigger_point'] });
  const unverified = await createPractice(test, networkAdmin, { location: at(0), techniques: ['trigger_point'] });
  const candidates: Record<string, string> = {
    unverified: unverified.therapist.token,
    near: near.therapist.token,
    mid: mid.therapist.token,
    far: far.therapist.token,
    wide: wide.token,
    closed: closed.therapist.token,
    swedishOnly: swedishOnly.therapist.token,
    lapsed: lapsed.therapist.token,
  };
  await patchUser(inactive.id, inactive.therapist.id, { active: false });
  await patchUser(lapsed.id, lapsed.therapist.id, { license: { number: 'MT-OLD', state: 'OR', expiresOn: isoDate(-1) } });
  await patchUser(lapsed.id, lapsed.therapist.id, { licenseVerified: true });
  await patchUser(unverified.id, unverified.therapist.id, { licenseVerified: false });

  /** The candidates an open offer reached: those who can read it. */
  async function reached(referralId: string): Promise<string[]> {
    const names: string[] = [];
    for (const [name, token] of Object.entries(candidates)) {
      if ((await get(`/v1/referrals/${referralId}`, token)).statusCode === 200) names.push(name);
    }
    // The deactivated therapist's tokens are refused outright; check the offer rows instead.
    const { referralOffers } = await import('../src/db/schema.js');
    const { eq } = await import('drizzle-orm');
    const offers = await test.app.db.select().from(referralOffers).where(eq(referralOffers.referralId, referralId));
    if (offers.some((offer) => offer.therapistId === inactive.therapist.id)) names.push('inactive');
    return names.sort();
  }

  const offer = (network: Json, overrides: Json = {}) =>
    createReferral(officeA.physician.token, validReferral({ therapistId: undefined, network, send: true, ...overrides }));

  t.test('within 5 km: only the therapist next door who accepts referrals and offers the technique', async (t) => {
    const response = await offer({ techniques: ['trigger_point'], near: center, radiusKm: 5 });
    assertStatus(t, response, 201);
    t.match(response.json(), { status: 'sent', therapistId: null, practiceId: null, network: { techniques: ['trigger_point'], near: center, radiusKm: 5 } });
    t.same(await reached(response.json().id), ['near']);
  });

  t.test('within 15 km: also the therapist 11 km away', async (t) => {
    const response = await offer({ techniques: ['trigger_point'], near: center, radiusKm: 15 });
    assertStatus(t, response, 201);
    t.same(await reached(response.json().id), ['mid', 'near']);
  });

  t.test("within 50 km: a therapist 33 km away only when it is inside their own service radius", async (t) => {
    const response = await offer({ techniques: ['trigger_point'], near: center, radiusKm: 50 });
    assertStatus(t, response, 201);
    t.same(await reached(response.json().id), ['mid', 'near', 'wide'], 'far serves 25 km and is left out; wide serves 100 km');
  });

  t.test('a therapist must offer every technique asked for', async (t) => {
    const response = await offer({ techniques: ['trigger_point', 'myofascial_release'], near: center, radiusKm: 50 });
    assertStatus(t, response, 201);
    t.same(await reached(response.json().id), ['near']);
  });

  t.test("without network techniques the offer asks for the referral's techniques", async (t) => {
    const response = await offer({ near: center, radiusKm: 50 }, { techniques: ['trigger_point', 'myofascial_release'] });
    assertStatus(t, response, 201);
    t.same(response.json().network.techniques, ['trigger_point', 'myofascial_release']);
    t.same(await reached(response.json().id), ['near']);
  });

  t.test('a technique nobody offers nearby matches nobody: 409 no-matching-therapist, no referral and no patient created', async (t) => {
    const token = quietOffice.physician.token;
    const before = await listed(token);
    const patientsBefore = (await get('/v1/patients?limit=200', token)).json().data.length;
    const response = await createReferral(token, validReferral({ therapistId: undefined, network: { techniques: ['craniosacral'], near: center, radiusKm: 50 }, send: true }));
    t.equal(response.statusCode, 409);
    t.match(response.headers['content-type'], /^application\/problem\+json/);
    t.equal(response.json().code, 'no-matching-therapist');
    t.equal((await listed(token)).length, before.length, 'no referral was created');
    t.equal((await get('/v1/patients?limit=200', token)).json().data.length, patientsBefore, 'the inline patient was not registered either');
  });

  t.test('nobody within the radius: 409 no-matching-therapist', async (t) => {
    const response = await offer({ techniques: ['trigger_point'], near: { lat: 0, lng: 0 }, radiusKm: 100 });
    t.equal(response.statusCode, 409);
    t.equal(response.json().code, 'no-matching-therapist');
  });

  t.test('a draft network offer reaches nobody until it is sent', async (t) => {
    const response = await offer({ techniques: ['trigger_point'], near: center, radiusKm: 5 }, { send: false });
    assertStatus(t, response, 201);
    t.equal(response.json().status, 'draft');
    t.same(await reached(response.json().id), []);
  });
});

t.test('GET /v1/referrals/{id} › who sees a new referral', async (t) => {
  t.test('the office and the targeted therapist and practice see a sent referral; other offices and practices get 404', async (t) => {
    const sent = (await createReferral(officeA.physician.token, validReferral({ send: true }))).json();
    for (const token of [officeA.physician.token, officeA.staff.token, practice.therapist.token, practice.admin.token]) {
      assertStatus(t, await get(`/v1/referrals/${sent.id}`, token), 200);
    }
    const stranger = await createPractice(test, networkAdmin);
    for (const token of [officeB.physician.token, stranger.therapist.token, stranger.admin.token]) {
      assertProblem(t, await get(`/v1/referrals/${sent.id}`, token), 404);
    }
  });

  t.test('a draft is not shown to the therapist or practice it names until it is sent', async (t) => {
    const draft = (await createReferral(officeA.physician.token, validReferral())).json();
    t.equal(draft.status, 'draft');
    for (const [who, token] of [['the therapist', practice.therapist.token], ['the practice admin', practice.admin.token]] as const) {
      t.equal((await get(`/v1/referrals/${draft.id}`, token)).statusCode, 404, `${who} gets 404 for the draft`);
      t.notOk((await listed(token)).some((referral) => referral.id === draft.id), `the draft is not in the list of ${who}`);
    }
    assertStatus(t, await test.request({ method: 'POST', url: `/v1/referrals/${draft.id}/send`, token: officeA.physician.token }), 200);
    assertStatus(t, await get(`/v1/referrals/${draft.id}`, practice.therapist.token), 200);
    t.ok((await listed(practice.therapist.token)).some((referral) => referral.id === draft.id), 'once sent, it is in the therapist list');
  });
});
