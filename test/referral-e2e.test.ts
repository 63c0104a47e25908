// One referral through its whole life, end to end through the API: the network admin onboards an
// office and two practices, the physician prescribes, the practice's therapist pulls, accepts,
// treats and discharges, both sides message, a therapist of another practice is kept out, and the
// audit trail answers for every read and change — who did it, and who saw the patient.
import t, { type Test } from 'tap';
import type { Member as Person } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { measuredVisitNoteBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern as isoTimestamp } from './fixtures/responses.js';
import { auditEvents, buildTestApp, defaultPassword, nextNpi, type Json, type TestResponse as Response } from './helper.js';

const dayMs = 86_400_000;
const today = new Date().toISOString().slice(0, 10);
const daysFrom = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * dayMs).toISOString().slice(0, 10);

/** A 404 problem exactly as any outsider gets it, naming nothing about the referral. */
function assertNotFound(t: Test, response: Response, instance: string) {
  const body = assertProblem(t, response, 404, [], 'not found');
  t.same(body, {
    type: 'urn:massage-referral:problem:not-found',
    title: 'Not Found',
    status: 404,
    detail: 'Referral not found',
    instance,
    requestId: response.headers['x-request-id'],
  });
}

t.test('a referral through its whole life: prescribed, pulled, accepted, treated, discussed, discharged and fully audited', async (t) => {
  const test = await buildTestApp(t);
  const admin = await test.loginAsAdmin();
  const get = (url: string, token: string, headers: Record<string, string> = {}) => test.request({ method: 'GET', url, token, headers });
  const post = (url: string, token: string, payload?: Json, headers: Record<string, string> = {}) =>
    test.request({ method: 'POST', url, token, headers, ...(payload ? { payload } : {}) });

  // Filled in as the story goes on.
  let riverside: Json;
  let harbor: Json;
  let eastside: Json;
  let dana: Person;
  let staff: Person;
  let sam: Person;
  let harborAdmin: Person;
  let alex: Person;
  let created: Json;
  let referralId: string;
  let patientId: string;
  let createRequestId: string;
  const deniedRequestIds: Record<string, string> = {};
  const reports: Json[] = [];
  const messages: Json[] = [];
  let patientEvents: Json[];

  const referralBody = () => ({
    patient: {
      givenName: 'Maria',
      familyName: 'Gomez',
      birthDate: '1978-04-02',
      sex: 'female',
      identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-0042' }],
    },
    diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
    reason: 'Chronic low back pain with lumbar paraspinal trigger points',
    goals: ['Pain at or below 3/10', 'Return to full work duties', 'Sit through an 8-hour shift'],
    precautions: ['No deep pressure over L4–L5', 'Stop if radicular symptoms appear'],
    contraindications: 'None known; not on anticoagulants',
    techniques: ['trigger_point', 'myofascial_release'],
    bodyRegions: ['lower_back'],
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    startDate: today,
    priority: 'routine',
    insurance: {
      payer: 'Acme Health',
      memberId: 'AH123456789',
      groupNumber: 'GRP-5521',
      authorizationNumber: 'PA-77812',
      cptCodes: ['97124', '97140'],
    },
    practiceId: harbor.id,
    send: true,
  });

  /** The referral as the API must show it at a point of its life. */
  const expectedReferral = (at: Json): Json => {
    const body = referralBody();
    return {
      id: referralId,
      status: at.status,
      version: at.version,
      organizationId: riverside.id,
      patientId,
      patient: { id: patientId, givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female', phone: null, email: null },
      prescriberId: dana.id,
      diagnoses: body.diagnoses,
      reason: body.reason,
      goals: body.goals,
      precautions: body.precautions,
      contraindications: body.contraindications,
      techniques: body.techniques,
      bodyRegions: body.bodyRegions,
      frequencyPerWeek: 2,
      durationWeeks: 6,
      sessionMinutes: 60,
      visitsAuthorized: 12,
      startDate: today,
      expiresOn: daysFrom(today, 90),
      priority: 'routine',
      insurance: body.insurance,
      therapistId: null,
      practiceId: harbor.id,
      network: null,
      acceptedBy: at.acceptedBy ?? null,
      // Dana prescribed for herself, so creating it signed it (SPEC §14.1); the signature never changes after.
      signature: { signedBy: dana.id, signedAt: created.signature.signedAt, method: 'physician', attestation: created.signature.attestation },
      progress: at.progress ?? { visitsUsed: 0, visitsAuthorized: 12, visitsRemaining: 12, firstPain: null, latestPain: null, latestOutcomeScores: [] },
      // A first course, not continued; a report is due every 10 visits (SPEC §14.3, §14.4), and none is late in this story.
      continuesReferralId: null,
      continuedByReferralId: null,
      reportEveryVisits: 10,
      reportDue: { afterVisit: 10, overdue: false },
      // Nothing urgent, no booking and no hold in this story; its thread's activity is checked on its own.
      activity: { lastAt: at.activityLastAt ?? null, unreadMessages: at.unreadMessages ?? 0, unacknowledgedUrgent: 0 },
      hold: null,
      nextAppointmentAt: null,
      noShows: 0,
      createdAt: created.createdAt,
      updatedAt: at.updatedAt,
    };
  };

  /** Reads the referral and checks it in full, with its ETag; returns the body. */
  const readReferral = async (t: Test, token: string, at: Json): Promise<Json> => {
    const response = await get(`/v1/referrals/${referralId}`, token);
    const body = expectStatus(t, response, 200, 'read the referral');
    t.equal(response.headers.etag, `"${at.version}"`, `ETag is "${at.version}"`);
    t.match(body.updatedAt, isoTimestamp);
    // The thread last changed no later than the referral did (a message or note moves both).
    t.ok(body.activity.lastAt === null || body.activity.lastAt <= body.updatedAt, 'activity.lastAt is null or not after updatedAt');
    t.same(body, expectedReferral({ ...at, updatedAt: body.updatedAt, activityLastAt: body.activity.lastAt }), `the referral in full: ${at.status}, version ${at.version}`);
    return body;
  };

  const visitNote = (overrides: Json) =>
    measuredVisitNoteBody({
      visitDate: today,
      subjective: 'Pain 7/10 after work shifts; stiffness on rising',
      objective: 'Taut bands and active trigger points in L lumbar paraspinals and QL',
      plan: 'Continue 2x/week; home stretching program',
      techniquesApplied: ['trigger_point', 'myofascial_release'],
      final: false,
      ...overrides,
    });

  /** Posts a visit note as Sam and checks the signed note in full. */
  const postNote = async (t: Test, payload: Json, visitNumber: number): Promise<Json> => {
    const response = await post(`/v1/referrals/${referralId}/progress-reports`, sam.token, payload);
    const body = expectStatus(t, response, 201, `visit note ${visitNumber} is signed`);
    t.match(body.signedAt, isoTimestamp);
    t.same(body, { ...payload, id: body.id, referralId, visitNumber, authorId: sam.id, signedAt: body.signedAt, addenda: [] }, `visit note ${visitNumber} as posted, numbered by the server`);
    t.equal(response.headers.location, `/v1/referrals/${referralId}/progress-reports/${body.id}`);
    reports.push(body);
    return body;
  };

  const listMessages = async (t: Test, person: Person, unread: number, what: string) => {
    const response = await get(`/v1/referrals/${referralId}/messages`, person.token);
    const body = expectStatus(t, response, 200, what);
    t.same(body, { data: messages, nextCursor: null, unread }, `${what}: the whole thread, oldest first, unread ${unread}`);
  };

  await t.test('the network admin onboards office Riverside, practice Harbor and practice Eastside with their people', async (t) => {
    const organization = async (payload: Json) => {
      const body = expectStatus(t, await post('/v1/organizations', admin, payload), 201, `create ${payload.name}`);
      t.match(body, { id: String, kind: payload.kind, name: payload.name, npi: payload.npi ?? null, location: payload.location });
      return body;
    };
    const member = async (organizationId: string, payload: Json): Promise<Person> => {
      const body = expectStatus(t, await post(`/v1/organizations/${organizationId}/users`, admin, { password: defaultPassword, ...payload }), 201, `add ${payload.name}`);
      t.match(body, { id: String, organizationId, role: payload.role, email: payload.email, name: payload.name, active: true });
      return { id: body.id, email: payload.email, token: await test.login(payload.email) };
    };

    riverside = await organization({
      kind: 'physician_office',
      name: 'Riverside Family Medicine',
      npi: nextNpi(),
      address: { line1: '12 Main St', city: 'Portland', state: 'OR', postalCode: '97201' },
      location: { lat: 45.5231, lng: -122.6765 },
    });
    harbor = await organization({
      kind: 'therapy_practice',
      name: 'Harbor Massage Therapy',
      address: { line1: '400 SW Harbor Way', city: 'Portland', state: 'OR', postalCode: '97204' },
      location: { lat: 45.5152, lng: -122.6734 },
    });
    eastside = await organization({
      kind: 'therapy_practice',
      name: 'Eastside Bodywork',
      address: { line1: '2100 E Burnside St', city: 'Portland', state: 'OR', postalCode: '97214' },
      location: { lat: 45.5229, lng: -122.6443 },
    });

    dana = await member(riverside.id, { role: 'physician', email: 'dr.lee@riverside.example', name: 'Dana Lee, MD', npi: nextNpi() });
    staff = await member(riverside.id, { role: 'office_staff', email: 'front.desk@riverside.example', name: 'Pat Kim' });
    sam = await member(harbor.id, {
      role: 'therapist',
      email: 'sam@harbor.example',
      name: 'Sam Ortiz, LMT',
      license: { number: 'MT-12345', state: 'OR', expiresOn: '2028-12-31' },
      licenseVerified: true,
      techniques: ['trigger_point', 'myofascial_release', 'deep_tissue'],
      certifications: ['CMMP'],
      acceptingReferrals: true,
      serviceRadiusKm: 25,
    });
    harborAdmin = await member(harbor.id, { role: 'practice_admin', email: 'admin@harbor.example', name: 'Jordan Wells' });
    alex = await member(eastside.id, {
      role: 'therapist',
      email: 'alex@eastside.example',
      name: 'Alex Rivera, LMT',
      license: { number: 'MT-67890', state: 'OR', expiresOn: '2028-06-30' },
      licenseVerified: true,
      techniques: ['trigger_point', 'myofascial_release', 'swedish'],
      certifications: ['CMMP'],
      acceptingReferrals: true,
      serviceRadiusKm: 25,
    });
    t.equal(new Set([dana.id, staff.id, sam.id, harborAdmin.id, alex.id]).size, 5, 'five distinct people, each signed in');
  });

  await t.test('the physician sends the referral to practice Harbor: 201 sent, version 1, 12 visits, ETag "1"; a retry with the same Idempotency-Key replays it', async (t) => {
    const headers = { 'idempotency-key': 'riverside-ehr-order-0042' };
    const response = await post('/v1/referrals', dana.token, referralBody(), headers);
    created = expectStatus(t, response, 201, 'create and send');
    referralId = created.id;
    patientId = created.patientId;
    createRequestId = response.headers['x-request-id'] as string;
    t.match(referralId, /^[0-9a-f-]{36}$/);
    t.match(patientId, /^[0-9a-f-]{36}$/);
    t.match(created.createdAt, isoTimestamp);
    t.match(created.signature, { signedAt: isoTimestamp, attestation: /sign this order/ }, 'signed as she created it, with the statement she attested');
    t.equal(response.headers.etag, '"1"', 'ETag "1"');
    t.equal(response.headers.location, `/v1/referrals/${referralId}`);
    t.same(created, expectedReferral({ status: 'sent', version: 1, updatedAt: created.updatedAt }), 'the referral in full: sent, version 1, 12 visits (2 × 6), expiring in 90 days');

    const replay = await post('/v1/referrals', dana.token, referralBody(), headers);
    t.equal(replay.statusCode, 201, 'the retry answers 201 again');
    t.equal(replay.headers['idempotent-replayed'], 'true', 'marked as a replay');
    t.equal(replay.headers.etag, '"1"');
    t.equal(replay.headers.location, `/v1/referrals/${referralId}`);
    t.same(replay.json(), created, 'the same referral, not a second one');
    t.equal((await auditEvents(test, { action: 'referral.create' })).length, 1, 'only one referral was created');
    t.equal((await auditEvents(test, { action: 'patient.create' })).length, 1, 'only one patient was registered');

    const byMrn = await get('/v1/patients?identifier=urn:riverside:mrn|MRN-0042', dana.token);
    const found = expectStatus(t, byMrn, 200, 'find the patient by MRN');
    t.same(found.data.map((patient: Json) => [patient.id, patient.organizationId, patient.identifiers]), [
      [patientId, riverside.id, [{ system: 'urn:riverside:mrn', value: 'MRN-0042' }]],
    ], 'the inline patient is registered in the office with its MRN');
  });

  await t.test('Sam pulls sent referrals, finds it, reads it with its ETag and accepts it with If-Match', async (t) => {
    // Until he accepts, Sam sees the order but not who the patient is (SPEC §14.8).
    const now = new Date();
    const ageYears = now.getUTCFullYear() - 1978 - (now.toISOString().slice(5, 10) < '04-02' ? 1 : 0);
    const beforeAcceptance = { ...created, patientId: null, patient: { limited: true, ageYears, sex: 'female', city: null }, insurance: { payer: created.insurance.payer } };
    const pulled = await get('/v1/referrals?status=sent', sam.token);
    const page = expectStatus(t, pulled, 200, 'pull sent referrals');
    t.same(page, { data: [beforeAcceptance], nextCursor: null, syncCursor: page.syncCursor }, 'exactly the referral to his practice, as sent, in the limited view');
    t.type(page.syncCursor, 'string');

    const read = await get(`/v1/referrals/${referralId}`, sam.token);
    t.same(expectStatus(t, read, 200, 'read'), beforeAcceptance, 'the therapist sees the same referral, in the limited view');
    t.equal(read.headers.etag, '"1"');

    // The order carries precautions: an accept that does not acknowledge them changes nothing (SPEC §14.2).
    const unacknowledged = await post(`/v1/referrals/${referralId}/accept`, sam.token, undefined, { 'if-match': read.headers.etag as string });
    const refusal = expectStatus(t, unacknowledged, 422, 'accept without acknowledging the precautions');
    t.equal(refusal.code, 'precautions-not-acknowledged');
    t.same(refusal.errors?.map((problem: Json) => problem.field), ['acknowledgedPrecautions']);
    t.equal((await get(`/v1/referrals/${referralId}`, sam.token)).headers.etag, '"1"', 'still version 1, still sent');

    const accepted = await post(`/v1/referrals/${referralId}/accept`, sam.token, { acknowledgedPrecautions: true }, { 'if-match': read.headers.etag as string });
    const body = expectStatus(t, accepted, 200, 'accept');
    t.equal(accepted.headers.etag, '"2"', 'ETag "2"');
    t.match(body.acceptedBy?.at, isoTimestamp);
    t.same(
      body,
      expectedReferral({ status: 'accepted', version: 2, updatedAt: body.updatedAt, acceptedBy: { therapistId: sam.id, practiceId: harbor.id, at: body.acceptedBy?.at } }),
      'accepted by Sam of Harbor, version 2',
    );
    created.acceptedBy = body.acceptedBy;
  });

  await t.test('Alex of Eastside cannot see it: read 404, accept 404, not in his list; both attempts audited as denied', async (t) => {
    const read = await get(`/v1/referrals/${referralId}`, alex.token);
    assertNotFound(t, read, `/v1/referrals/${referralId}`);
    deniedRequestIds['referral.read'] = read.headers['x-request-id'] as string;

    const accept = await post(`/v1/referrals/${referralId}/accept`, alex.token, {});
    assertNotFound(t, accept, `/v1/referrals/${referralId}/accept`);
    deniedRequestIds['referral.accept'] = accept.headers['x-request-id'] as string;

    for (const url of ['/v1/referrals', '/v1/referrals?status=sent,accepted']) {
      const list = expectStatus(t, await get(url, alex.token), 200, `Alex lists ${url}`);
      t.same(list.data, [], `${url}: nothing of Harbor's`);
    }

    const audit = await get(`/v1/audit-events?resourceId=${referralId}&outcome=denied`, admin);
    const events = expectStatus(t, audit, 200, 'denied attempts in the audit log').data as Json[];
    t.same(
      events.map((event) => [event.action, event.actor, event.resourceType, event.outcome, event.httpStatus, event.requestId]),
      [
        ['referral.read', { type: 'user', id: alex.id, organizationId: eastside.id, role: 'therapist' }, 'referral', 'denied', 404, deniedRequestIds['referral.read']],
        ['referral.accept', { type: 'user', id: alex.id, organizationId: eastside.id, role: 'therapist' }, 'referral', 'denied', 404, deniedRequestIds['referral.accept']],
      ],
      'one denied event per attempt, naming Alex, the referral and the request',
    );

    const still = await get(`/v1/referrals/${referralId}`, dana.token);
    t.match(expectStatus(t, still, 200, 'the physician reads it'), { status: 'accepted', version: 2, acceptedBy: { therapistId: sam.id } }, 'still accepted by Sam');
  });

  await t.test('Sam posts visit note 1 (pain 7→4, ODI 38): the referral is in progress; visit note 2 (pain 5→3, ODI 30)', async (t) => {
    await postNote(t, visitNote({}), 1);
    await readReferral(t, sam.token, {
      status: 'in_progress',
      version: 3,
      acceptedBy: created.acceptedBy,
      progress: {
        visitsUsed: 1,
        visitsAuthorized: 12,
        visitsRemaining: 11,
        firstPain: { visitNumber: 1, before: 7, after: 4 },
        latestPain: { visitNumber: 1, before: 7, after: 4 },
        latestOutcomeScores: [{ instrument: 'ODI', score: 38, visitNumber: 1 }],
      },
    });

    await postNote(
      t,
      visitNote({
        subjective: 'Pain 5/10; slept through the night twice',
        assessment: 'Fewer active trigger points; better lumbar flexion',
        painBefore: 5,
        painAfter: 3,
        rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 55 }],
        outcomeMeasures: [{ instrument: 'ODI', score: 30 }],
      }),
      2,
    );
    await readReferral(t, sam.token, {
      status: 'in_progress',
      version: 4,
      acceptedBy: created.acceptedBy,
      progress: {
        visitsUsed: 2,
        visitsAuthorized: 12,
        visitsRemaining: 10,
        firstPain: { visitNumber: 1, before: 7, after: 4 },
        latestPain: { visitNumber: 2, before: 5, after: 3 },
        latestOutcomeScores: [{ instrument: 'ODI', score: 30, visitNumber: 2 }],
      },
    });
  });

  await t.test('physician and therapist message each other: each sees the other\'s message unread, marks it read, unread 0', async (t) => {
    const question = await post(`/v1/referrals/${referralId}/messages`, dana.token, { body: 'How is she tolerating pressure over L4–L5? Any radicular symptoms?' });
    const asked = expectStatus(t, question, 201, 'the physician asks');
    t.match(asked.createdAt, isoTimestamp);
    t.same(asked, {
      id: asked.id,
      referralId,
      author: { type: 'user', id: dana.id, organizationId: riverside.id },
      body: 'How is she tolerating pressure over L4–L5? Any radicular symptoms?',
      priority: 'routine',
      acknowledgedAt: null,
      acknowledgedBy: null,
      escalatedAt: null,
      createdAt: asked.createdAt,
    });
    messages.push(asked);

    await listMessages(t, sam, 1, 'Sam lists the thread');
    const samRead = await post(`/v1/referrals/${referralId}/messages/read`, sam.token, { upTo: asked.id });
    t.same(expectStatus(t, samRead, 200, 'Sam marks it read'), { unread: 0, lastReadMessageId: asked.id });

    const reply = await post(`/v1/referrals/${referralId}/messages`, sam.token, { body: 'Tolerating well, no deep pressure over L4–L5 as ordered. No radicular symptoms.' });
    const answered = expectStatus(t, reply, 201, 'Sam answers');
    t.same(answered, {
      id: answered.id,
      referralId,
      author: { type: 'user', id: sam.id, organizationId: harbor.id },
      body: 'Tolerating well, no deep pressure over L4–L5 as ordered. No radicular symptoms.',
      priority: 'routine',
      acknowledgedAt: null,
      acknowledgedBy: null,
      escalatedAt: null,
      createdAt: answered.createdAt,
    });
    messages.push(answered);

    await listMessages(t, dana, 1, 'the physician lists the thread');
    const danaRead = await post(`/v1/referrals/${referralId}/messages/read`, dana.token);
    t.same(expectStatus(t, danaRead, 200, 'the physician marks the thread read'), { unread: 0, lastReadMessageId: answered.id });

    await listMessages(t, dana, 0, 'the physician lists again');
    await listMessages(t, sam, 0, 'Sam lists again');
  });

  await t.test('Sam posts the final note (pain 3→2, ODI 22): the referral is completed and takes no further note (409 referral-completed)', async (t) => {
    await postNote(
      t,
      visitNote({
        subjective: 'Pain 3/10 at worst; back to full shifts',
        assessment: 'Goals met: pain at or below 3/10, full work duties',
        plan: 'Discharge to home program',
        painBefore: 3,
        painAfter: 2,
        rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 70 }],
        outcomeMeasures: [{ instrument: 'ODI', score: 22 }],
        final: true,
      }),
      3,
    );
    const completed = await get(`/v1/referrals/${referralId}`, sam.token);
    t.match(expectStatus(t, completed, 200, 'read'), { status: 'completed', version: 5 }, 'completed, version 5');

    const url = `/v1/referrals/${referralId}/progress-reports`;
    const late = await post(url, sam.token, visitNote({ painBefore: 2, painAfter: 1 }));
    const problem = expectStatus(t, late, 409, 'a note after discharge');
    t.match(late.headers['content-type'], /^application\/problem\+json/);
    t.same(problem, {
      type: 'urn:massage-referral:problem:conflict',
      title: 'Conflict',
      status: 409,
      detail: 'The referral is completed; post an addendum to an existing note instead',
      code: 'referral-completed',
      currentStatus: 'completed',
      instance: url,
      requestId: late.headers['x-request-id'],
    });
    const notes = expectStatus(t, await get(url, sam.token), 200, 'list notes');
    t.same(notes, { data: reports, nextCursor: null }, 'still exactly the three signed notes');
  });

  await t.test('the physician reads the outcome: 3 of 12 visits, pain 7→4 at first and 3→2 at last, ODI 22; the history names who did what, in order', async (t) => {
    await readReferral(t, dana.token, {
      status: 'completed',
      version: 5,
      acceptedBy: created.acceptedBy,
      progress: {
        visitsUsed: 3,
        visitsAuthorized: 12,
        visitsRemaining: 9,
        firstPain: { visitNumber: 1, before: 7, after: 4 },
        latestPain: { visitNumber: 3, before: 3, after: 2 },
        latestOutcomeScores: [{ instrument: 'ODI', score: 22, visitNumber: 3 }],
      },
    });

    const response = await get(`/v1/referrals/${referralId}/history`, dana.token);
    const history = expectStatus(t, response, 200, 'history');
    t.equal(history.nextCursor, null);
    const physician = { type: 'user', id: dana.id, organizationId: riverside.id };
    const therapist = { type: 'user', id: sam.id, organizationId: harbor.id };
    t.same(
      history.data.map(({ id: _id, occurredAt: _at, ...event }: Json) => event),
      [
        { action: 'create', fromStatus: null, toStatus: 'draft', version: 1, actor: physician, reason: null, changes: null },
        { action: 'send', fromStatus: 'draft', toStatus: 'sent', version: 1, actor: physician, reason: null, changes: null },
        { action: 'accept', fromStatus: 'sent', toStatus: 'accepted', version: 2, actor: therapist, reason: null, changes: { therapistId: sam.id, acknowledgedPrecautions: true } },
        { action: 'start', fromStatus: 'accepted', toStatus: 'in_progress', version: 3, actor: therapist, reason: null, changes: { visitNumber: 1 } },
        { action: 'complete', fromStatus: 'in_progress', toStatus: 'completed', version: 5, actor: therapist, reason: null, changes: { visitNumber: 3 } },
      ],
      'create and send by the physician; accept, start and complete by Sam',
    );
    const ids = history.data.map((event: Json) => event.id);
    t.same(ids, [...ids].sort((a: number, b: number) => a - b), 'oldest first');
    const times = history.data.map((event: Json) => event.occurredAt);
    for (const time of times) t.match(time, isoTimestamp);
    t.same(times, [...times].sort(), 'in time order');
  });

  await t.test('the audit log shows every read and change of the patient by every actor, and Alex\'s denied attempts', async (t) => {
    const byPatient = await get(`/v1/audit-events?patientId=${patientId}&limit=200`, admin);
    const page = expectStatus(t, byPatient, 200, 'events of the patient');
    t.equal(page.nextCursor, null, 'all on one page');
    const allPatientEvents = page.data as Json[];
    t.ok(allPatientEvents.every((event) => event.patientId === patientId), 'every event names the patient');
    const ids = allPatientEvents.map((event) => event.id);
    t.same(ids, [...ids].sort((a, b) => a - b), 'oldest first');
    t.same(
      allPatientEvents.filter((event) => event.outcome !== 'success').map((event) => [event.actor.id, event.action, event.outcome, event.resourceId]),
      [
        [alex.id, 'referral.read', 'denied', referralId],
        [alex.id, 'referral.accept', 'denied', referralId],
      ],
      "the only unsuccessful accesses to the patient's records are Alex's two attempts, filed under the patient",
    );
    patientEvents = allPatientEvents.filter((event) => event.outcome === 'success');

    const count = (actor: Person, action: string) => patientEvents.filter((event) => event.actor.id === actor.id && event.action === action).length;
    const expected: [Person, string, string, number | undefined][] = [
      [dana, 'the physician', 'patient.create', 1],
      [dana, 'the physician', 'referral.create', 1],
      [dana, 'the physician', 'patient.list', 1],
      [sam, 'Sam', 'referral.list', 1],
      [sam, 'Sam', 'referral.read', 5],
      // The refused accept (422) is in the audit log as an error against the referral, not the patient's record.
      [sam, 'Sam', 'referral.accept', 1],
      [sam, 'Sam', 'progress_report.create', 3],
      [sam, 'Sam', 'progress_report.read', 3],
      [dana, 'the physician', 'message.create', 1],
      [sam, 'Sam', 'message.create', 1],
      [dana, 'the physician', 'message.list', 2],
      [sam, 'Sam', 'message.list', 2],
      [dana, 'the physician', 'message.mark_read', 1],
      [sam, 'Sam', 'message.mark_read', 1],
      [dana, 'the physician', 'referral.read', 2],
      [dana, 'the physician', 'referral.history', 1],
    ];
    for (const [actor, name, action, times] of expected) {
      const seen = count(actor, action);
      if (times === undefined) t.ok(seen >= 1, `${action} by ${name} (${seen}×)`);
      else t.equal(seen, times, `${action} by ${name}, ${times}×`);
    }
    t.same(
      new Set(patientEvents.map((event) => event.actor.id)),
      new Set([dana.id, sam.id]),
      'nobody else reached the patient: not Alex, not the admin, not the staff or practice admin',
    );

    const createEvents = patientEvents.filter((event) => event.requestId === createRequestId);
    t.same(
      createEvents.map((event) => [event.action, event.resourceType, event.resourceId, event.httpStatus, event.actor]),
      [
        ['patient.create', 'patient', patientId, 201, { type: 'user', id: dana.id, organizationId: riverside.id, role: 'physician' }],
        ['referral.create', 'referral', referralId, 201, { type: 'user', id: dana.id, organizationId: riverside.id, role: 'physician' }],
      ],
      'the create request left the patient and the referral creation, by the physician',
    );
    t.same(
      patientEvents.filter((event) => event.action === 'progress_report.create').map((event) => event.resourceId),
      reports.map((report) => report.id),
      'one progress_report.create per signed note, naming it',
    );
    t.same(
      patientEvents.filter((event) => event.action === 'message.create').map((event) => [event.actor.id, event.resourceId]),
      messages.map((message) => [message.author.id, message.id]),
      'one message.create per message, by its author',
    );

    const byResource = await get(`/v1/audit-events?resourceId=${referralId}&limit=200`, admin);
    const resourceEvents = expectStatus(t, byResource, 200, 'events of the referral').data as Json[];
    t.ok(resourceEvents.every((event) => event.resourceId === referralId), 'every event names the referral');
    const pairs = new Set(resourceEvents.map((event) => `${event.actor.id} ${event.action} ${event.outcome}`));
    for (const [actor, name, action, outcome] of [
      [dana, 'the physician', 'referral.create', 'success'],
      [dana, 'the physician', 'referral.read', 'success'],
      [dana, 'the physician', 'referral.history', 'success'],
      [sam, 'Sam', 'referral.list', 'success'],
      [sam, 'Sam', 'referral.read', 'success'],
      [sam, 'Sam', 'referral.accept', 'success'],
      [sam, 'Sam', 'referral.accept', 'error'],
      [alex, 'Alex', 'referral.read', 'denied'],
      [alex, 'Alex', 'referral.accept', 'denied'],
    ] as const) {
      t.ok(pairs.has(`${actor.id} ${action} ${outcome}`), `${action} by ${name}: ${outcome}`);
    }
    t.same(
      resourceEvents.filter((event) => event.actor.id === alex.id).map((event) => [event.action, event.outcome, event.httpStatus]),
      [
        ['referral.read', 'denied', 404],
        ['referral.accept', 'denied', 404],
      ],
      'Alex only ever failed to reach it',
    );

    const alexAll = expectStatus(t, await get(`/v1/audit-events?actorId=${alex.id}&limit=200`, admin), 200, 'everything Alex did').data as Json[];
    t.same(
      alexAll.filter((event) => event.outcome === 'denied').map((event) => [event.action, event.resourceId]),
      [
        ['referral.read', referralId],
        ['referral.accept', referralId],
      ],
      'his only denied events are the two attempts',
    );
  });

  await t.test('"who saw this patient" names exactly the physician and Sam — not Alex, not the admin', async (t) => {
    const response = await get(`/v1/audit-events/viewers?patientId=${patientId}`, admin);
    const viewers = expectStatus(t, response, 200, 'viewers');
    t.equal(viewers.patientId, patientId);
    t.same(new Set(viewers.data.map((viewer: Json) => viewer.actor.id)), new Set([dana.id, sam.id]), 'the physician and Sam');
    t.same(
      viewers.data.map((viewer: Json) => viewer.actor),
      [
        { type: 'user', id: dana.id, organizationId: riverside.id, role: 'physician' },
        { type: 'user', id: sam.id, organizationId: harbor.id, role: 'therapist' },
      ],
      'the physician first (she registered the patient), then Sam',
    );
    const [danaSaw, samSaw] = viewers.data as Json[];
    t.same(danaSaw!.actions, ['idempotency.replay', 'message.create', 'message.list', 'message.mark_read', 'patient.create', 'patient.list', 'referral.create', 'referral.history', 'referral.read']);
    t.same(samSaw!.actions, ['message.create', 'message.list', 'message.mark_read', 'progress_report.create', 'progress_report.read', 'referral.accept', 'referral.list', 'referral.read']);
    for (const [viewer, person] of [
      [danaSaw!, dana],
      [samSaw!, sam],
    ] as const) {
      const own = patientEvents.filter((event) => event.actor.id === person.id);
      t.equal(viewer.accesses, own.length, `${person.email}: one access per audited event`);
      t.equal(viewer.firstAt, own[0]!.occurredAt, `${person.email}: first access`);
      t.equal(viewer.lastAt, own.at(-1)!.occurredAt, `${person.email}: last access`);
    }
  });

  await t.test('the audit log verifies over every event, once sequenced', async (t) => {
    await test.app.auditSequencer.run({ wait: true });
    const stored = (await auditEvents(test, {})).length;
    const response = await get('/v1/audit-events/verify', admin);
    const verification = expectStatus(t, response, 200, 'verify');
    t.ok(stored > 0);
    t.strictSame(verification, { valid: true, treeSize: stored, unsequenced: 0 }, `valid, all ${stored} events checked`);
  });
});
