// Minimum necessary before acceptance (SPEC §14.8): a therapy practice deciding on a referral sees
// the whole clinical order but of the patient only age, sex and city, and of the insurance only the
// payer; acceptance is what earns the full record, for the accepting therapist and their
// practice's admins and API clients. The office always sees everything. Checked on the single
// read, the sync feed and the answers of the moves a practice makes before accepting.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { ageInYears } from '../src/modules/referrals/minimum-necessary.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, type Json, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();

// Everyone in one place, so a network offer there reaches the three therapists below.
const region = { lat: 44.0521, lng: -123.0868 };
const network = { techniques: ['trigger_point'], near: region, radiusKm: 10 };

const office = await createOffice(test, networkAdmin, region);
const practice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });
const colleague = await addTherapist(test, networkAdmin, practice.id);
const practiceClient = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read', 'referrals:write'], 'Practice EHR');
const otherPractice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });

const T = practice.therapist;
const Q = otherPractice.therapist;
const callers = {
  therapist: { label: 'the therapist', token: T.token },
  colleague: { label: 'a second therapist of the practice', token: colleague.token },
  practiceAdmin: { label: 'the practice admin', token: practice.admin.token },
  practiceClient: { label: 'an API client of the practice', token: practiceClient.token },
  otherTherapist: { label: "another practice's therapist", token: Q.token },
  otherAdmin: { label: "another practice's admin", token: otherPractice.admin.token },
  office: { label: 'the prescribing physician', token: office.physician.token },
  officeStaff: { label: 'office staff', token: office.staff.token },
} as const;
type Caller = keyof typeof callers;

const patient = {
  givenName: 'Zelda',
  familyName: 'Quistgaard',
  birthDate: '1978-04-02',
  sex: 'female',
  phone: '+1 541 555 0142',
  email: 'zelda.quistgaard@mail.example',
  identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-77231' }],
};
const insurance = { payer: 'Acme Health', memberId: 'AH998877', groupNumber: 'GRP-4410', authorizationNumber: 'PA-55120', cptCodes: ['97124', '97140'] };
const order = {
  diagnoses: [
    { code: 'M54.50', display: 'Low back pain, unspecified' },
    { code: 'M79.7', display: 'Fibromyalgia' },
  ],
  reason: 'Chronic low back pain with lumbar paraspinal trigger points',
  goals: ['Pain at or below 3/10', 'Return to full work duties'],
  precautions: ['No deep pressure over L4–L5'],
  contraindications: 'Anticoagulants',
  techniques: ['trigger_point'],
  bodyRegions: ['lower_back', 'neck'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  visitsAuthorized: 10,
  priority: 'urgent',
};
/** What the limited view must never show, in any member. */
const secrets = [
  patient.givenName,
  patient.familyName,
  patient.birthDate,
  '+1 541 555',
  patient.email,
  patient.identifiers[0]!.value,
  insurance.memberId,
  insurance.groupNumber,
  insurance.authorizationNumber,
];

/** The patient's age today, worked out apart from the service's own arithmetic. */
function expectedAge(): number {
  const now = new Date();
  const birthdayPassed = now.getUTCMonth() > 3 || (now.getUTCMonth() === 3 && now.getUTCDate() >= 2);
  return now.getUTCFullYear() - 1978 - (birthdayPassed ? 0 : 1);
}

/** Office A prescribes with the patient inline (or an existing patientId) and sends at once; returns the office's answer. */
async function prescribe(target: Json, patientRef: Json = { patient }): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, { ...order, ...patientRef, insurance, ...target, send: true });
}

async function read(caller: Caller, id: string): Promise<Response> {
  return test.request({ method: 'GET', url: `/v1/referrals/${id}`, token: callers[caller].token });
}

async function move(caller: Caller, id: string, name: 'accept' | 'decline', payload?: Json): Promise<Response> {
  // The order has precautions: whoever accepts says they read them (SPEC §14.2).
  const body = name === 'accept' ? { acknowledgedPrecautions: true, ...payload } : payload;
  return test.request({ method: 'POST', url: `/v1/referrals/${id}/${name}`, token: callers[caller].token, ...(body ? { payload: body } : {}) });
}

/** The referral as it appears in the caller's sync feed (walked to the end), or undefined. */
async function listed(caller: Caller, id: string, query = ''): Promise<Json | undefined> {
  let cursor: string | null = null;
  do {
    const url: string = `/v1/referrals?limit=50${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await test.request({ method: 'GET', url, token: callers[caller].token });
    if (response.statusCode !== 200) throw new Error(`GET ${url} failed: ${response.statusCode} ${response.body}`);
    const page: Json = response.json();
    const found = page.data.find((referral: Json) => referral.id === id);
    if (found) return found;
    cursor = page.nextCursor;
  } while (cursor !== null);
  return undefined;
}

// The signature is the order's too (SPEC §14.1): who signed it and what they attested names no patient.
const clinicalMembers = [...Object.keys(order), 'startDate', 'expiresOn', 'prescriberId', 'organizationId', 'network', 'therapistId', 'practiceId', 'signature', 'progress'];

/** The limited view: the whole order, the patient's age and sex, the payer; nothing that names the patient. */
function assertLimited(t: Test, view: Json | undefined, full: Json, what: string) {
  if (!view) return t.fail(`${what}: the referral is missing`);
  t.same(view.patient, { limited: true, ageYears: expectedAge(), sex: 'female', city: null }, `${what}: of the patient only age, sex and city`);
  t.equal(view.patientId, null, `${what}: no patient id`);
  t.same(view.insurance, { payer: insurance.payer }, `${what}: of the insurance only the payer`);
  for (const member of clinicalMembers) t.same(view[member], full[member], `${what}: the order's ${member} in full`);
  const text = JSON.stringify(view);
  const shown = [...secrets, full.patientId].filter((secret) => text.includes(secret));
  t.same(shown, [], `${what}: shows no name, birth date, identifier, contact, patient id or insurance number`);
}

/** The full view, as the office sees it. */
function assertFull(t: Test, view: Json | undefined, full: Json, what: string) {
  if (!view) return t.fail(`${what}: the referral is missing`);
  t.same(view.patient, full.patient, `${what}: the patient in full`);
  t.match(view.patient, { givenName: patient.givenName, familyName: patient.familyName, birthDate: patient.birthDate, phone: patient.phone, email: patient.email });
  t.equal(view.patientId, full.patientId, `${what}: the patient id`);
  t.same(view.insurance, insurance, `${what}: the insurance in full`);
}

async function assertSeesLimited(t: Test, caller: Caller, full: Json) {
  const response = await read(caller, full.id);
  assertStatus(t, response, 200, `${callers[caller].label} reads it`);
  assertLimited(t, response.json(), full, `${callers[caller].label}, GET`);
  assertLimited(t, await listed(caller, full.id), full, `${callers[caller].label}, sync feed`);
}

async function assertSeesFull(t: Test, caller: Caller, full: Json) {
  const response = await read(caller, full.id);
  assertStatus(t, response, 200, `${callers[caller].label} reads it`);
  assertFull(t, response.json(), full, `${callers[caller].label}, GET`);
  assertFull(t, await listed(caller, full.id), full, `${callers[caller].label}, sync feed`);
}

t.test('the office sees the patient and the insurance in full when it prescribes', async (t) => {
  const full = await prescribe({ practiceId: practice.id });
  t.notOk('limited' in full.patient, 'the full form is the same as before, without a limited member');
  t.match(full.signature, { signedBy: office.physician.id, method: 'physician' }, 'signed: the physician prescribed for themself');
  t.match(full.patient, { givenName: patient.givenName, birthDate: patient.birthDate });
  t.equal(full.patientId, full.patient.id);
  t.same(full.insurance, insurance);
});

t.test('an open network offer › limited for everyone it is offered to until one accepts; then in full for the acceptor and their practice', async (t) => {
  const full = await prescribe({ network });
  for (const caller of ['therapist', 'colleague', 'practiceAdmin', 'practiceClient', 'otherTherapist', 'otherAdmin'] as const) {
    await assertSeesLimited(t, caller, full);
  }
  for (const caller of ['office', 'officeStaff'] as const) await assertSeesFull(t, caller, full);
  assertStatus(t, await test.request({ method: 'GET', url: `/v1/patients/${full.patientId}`, token: T.token }), 403, 'the therapist cannot look the patient up');

  const declined = await move('otherTherapist', full.id, 'decline', { reason: 'Fully booked' });
  assertStatus(t, declined, 200, "the other practice's therapist declines its share");
  assertLimited(t, declined.json(), full, 'the answer to a decline');
  assertStatus(t, await read('otherTherapist', full.id), 404, 'and then no longer sees it');

  const accepted = await move('therapist', full.id, 'accept');
  assertStatus(t, accepted, 200, 'the therapist accepts');
  assertFull(t, accepted.json(), full, 'the answer to the accept');
  for (const caller of ['therapist', 'practiceAdmin', 'practiceClient', 'office', 'officeStaff'] as const) await assertSeesFull(t, caller, full);
  for (const caller of ['colleague', 'otherAdmin'] as const) {
    assertStatus(t, await read(caller, full.id), 404, `${callers[caller].label}, whom the offer was made to, no longer sees it`);
    t.equal(await listed(caller, full.id), undefined, `nor lists it (${callers[caller].label})`);
  }
});

t.test('a referral sent to the practice › limited for the whole practice until one of them accepts; a colleague of the acceptor stays limited', async (t) => {
  const full = await prescribe({ practiceId: practice.id });
  for (const caller of ['therapist', 'colleague', 'practiceAdmin', 'practiceClient'] as const) await assertSeesLimited(t, caller, full);
  for (const caller of ['office', 'officeStaff'] as const) await assertSeesFull(t, caller, full);

  const accepted = await move('colleague', full.id, 'accept');
  assertStatus(t, accepted, 200, 'the second therapist accepts');
  assertFull(t, accepted.json(), full, 'the answer to the accept');
  for (const caller of ['colleague', 'practiceAdmin', 'practiceClient', 'office'] as const) await assertSeesFull(t, caller, full);
  // SPEC §6 still shows a practice's referral to all its therapists; only the acceptor treats.
  await assertSeesLimited(t, 'therapist', full);
  assertStatus(t, await read('otherTherapist', full.id), 404, "another practice's therapist never sees it");
});

t.test('a practice admin accepting for a therapist › answered in full, and from then on in full for that therapist', async (t) => {
  const full = await prescribe({ practiceId: practice.id });
  const accepted = await move('practiceAdmin', full.id, 'accept', { therapistId: T.id });
  assertStatus(t, accepted, 200, 'the practice admin accepts for the therapist');
  assertFull(t, accepted.json(), full, 'the answer to the accept');
  await assertSeesFull(t, 'therapist', full);
  await assertSeesLimited(t, 'colleague', full);
});

t.test('a referral sent to one therapist by name › limited for them and their practice until they accept', async (t) => {
  const full = await prescribe({ therapistId: T.id });
  for (const caller of ['therapist', 'practiceAdmin', 'practiceClient'] as const) await assertSeesLimited(t, caller, full);
  await assertSeesFull(t, 'office', full);
  const accepted = await move('therapist', full.id, 'accept');
  assertStatus(t, accepted, 200, 'the therapist accepts');
  for (const caller of ['therapist', 'practiceAdmin', 'practiceClient', 'office'] as const) await assertSeesFull(t, caller, full);
});

t.test('a referral declined before acceptance › the answer to the decline and every later read stay limited', async (t) => {
  const full = await prescribe({ therapistId: T.id });
  const declined = await move('therapist', full.id, 'decline', { reason: 'No availability this month' });
  assertStatus(t, declined, 200, 'the therapist declines');
  t.equal(declined.json().status, 'declined');
  assertLimited(t, declined.json(), full, 'the answer to the decline');
  await assertSeesLimited(t, 'therapist', full);
  await assertSeesFull(t, 'office', full);
});

t.test('GET /v1/referrals?patientId= › does not tell a therapist which unaccepted referrals are about a patient they know', async (t) => {
  const known = await prescribe({ therapistId: T.id });
  assertStatus(t, await move('therapist', known.id, 'accept'), 200, 'the therapist accepts the first referral and so knows the patient');
  const offer = await prescribe({ practiceId: practice.id }, { patientId: known.patientId });
  const query = `&patientId=${known.patientId}`;
  t.ok(await listed('therapist', known.id, query), 'the accepted referral matches the patient');
  t.equal(await listed('therapist', offer.id, query), undefined, 'the unaccepted referral of the same patient does not');
  assertLimited(t, await listed('therapist', offer.id), offer, 'though it is in the unfiltered feed, limited');
  t.ok(await listed('office', offer.id, query), "the office's filter finds both");
  t.ok(await listed('office', known.id, query), "the office's filter finds both");
});

t.test('a limited read is still audited as a read of the patient’s record', async (t) => {
  const full = await prescribe({ practiceId: practice.id });
  const requestId = `minimum-necessary-${randomBytes(4).toString('hex')}`;
  const response = await test.request({ method: 'GET', url: `/v1/referrals/${full.id}`, token: T.token, headers: { 'x-request-id': requestId } });
  t.equal(response.json().patientId, null);
  const [readEvent] = (await auditEvents(test, { action: 'referral.read', resourceId: full.id, actorId: T.id })).filter((event) => event.requestId === requestId);
  t.equal(readEvent?.patientId, full.patientId, 'the read names the patient');
  await listed('therapist', full.id);
  const listEvents = await auditEvents(test, { action: 'referral.list', resourceId: full.id, actorId: T.id });
  t.ok(listEvents.length > 0, 'the listing is audited');
  t.ok(listEvents.every((event) => event.patientId === full.patientId), 'each listing names the patient');
});

t.test('ageInYears › whole years on the day, a 29 February birthday counting from 1 March', async (t) => {
  t.equal(ageInYears('1978-04-02', '2026-04-01'), 47, 'the day before the birthday');
  t.equal(ageInYears('1978-04-02', '2026-04-02'), 48, 'on the birthday');
  t.equal(ageInYears('1978-04-02', '2026-12-31'), 48, 'later that year');
  t.equal(ageInYears('2000-02-29', '2025-02-28'), 24, 'not yet on 28 February of a common year');
  t.equal(ageInYears('2000-02-29', '2025-03-01'), 25, 'on 1 March');
  t.equal(ageInYears('2000-02-29', '2024-02-29'), 24, 'on the day in a leap year');
  t.equal(ageInYears('2026-01-01', '2026-01-01'), 0, 'a newborn');
});
