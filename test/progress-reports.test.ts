// /v1/referrals/{id}/progress-reports: signed visit notes by the accepting therapist, their addenda,
// and the progress summary they feed (SPEC §3, §4, §6).
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate, measuredVisitNoteBody, referralBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, type Json, type TestResponse as Response } from './helper.js';

// The timer of the expiry sweep is off, so "expiresOn passed but not yet swept" stays that way until a test sweeps.
const test = await buildTestApp(t, { env: { REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);
/** A second therapist of `practice`, who did not accept the referrals of this file. */
const colleague = await addTherapist(test, networkAdmin, practice.id);

const today = () => isoDate(0);

/** A referral from `office` to `practice`, sent at once. */
const sentReferral = (overrides: Json = {}): Promise<Json> =>
  test.create('/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, send: true, ...overrides }));

/** A referral accepted by practice.therapist. */
async function acceptedReferral(overrides: Json = {}): Promise<Json> {
  const referral = await sentReferral(overrides);
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
}

const noteBody = (overrides: Json = {}): Json => measuredVisitNoteBody({ final: false, ...overrides });

const notesUrl = (referralId: string) => `/v1/referrals/${referralId}/progress-reports`;
const postNote = (referralId: string, body: Json = noteBody(), token = practice.therapist.token) =>
  test.request({ method: 'POST', url: notesUrl(referralId), token, payload: body });
const get = (url: string, token: string) => test.request({ method: 'GET', url, token });

/** Posts a note that must succeed and returns it. */
async function note(referralId: string, overrides: Json = {}): Promise<Json> {
  const response = await postNote(referralId, noteBody(overrides));
  if (response.statusCode !== 201) throw new Error(`posting a note failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

async function referralAs(referralId: string, token = office.physician.token): Promise<Json> {
  const response = await get(`/v1/referrals/${referralId}`, token);
  if (response.statusCode !== 200) throw new Error(`GET referral failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

async function historyActions(referralId: string): Promise<Json[]> {
  const response = await get(`/v1/referrals/${referralId}/history?limit=200`, office.physician.token);
  return response.json().data;
}

/** Every note of a referral, in one big page. */
async function notes(referralId: string, token = office.physician.token): Promise<Json[]> {
  const response = await get(`${notesUrl(referralId)}?limit=200`, token);
  if (response.statusCode !== 200) throw new Error(`GET notes failed: ${response.statusCode} ${response.body}`);
  return response.json().data;
}

const run = (query: ReturnType<typeof sql>) => test.app.database.rows(query);

/** Asserts a 409 carrying this machine-readable code. */
function assertConflict(t: Test, response: Response, code: string, currentStatus?: string) {
  assertProblem(t, response, 409);
  t.equal(response.json().code, code, `code is ${code}`);
  if (currentStatus) t.equal(response.json().currentStatus, currentStatus, `currentStatus is ${currentStatus}`);
}

t.test('POST /v1/referrals/{id}/progress-reports', async (t) => {
  t.test('assigns visit numbers 1, 2, 3 and signs each note as posted', async (t) => {
    const referral = await acceptedReferral();
    const posted: Json[] = [];
    for (const pain of [7, 6, 5]) {
      const body = noteBody({ painBefore: pain, painAfter: pain - 3 });
      const response = await postNote(referral.id, body);
      t.equal(response.statusCode, 201);
      const report = response.json();
      const { final: _final, ...echoed } = body;
      t.match(report, { ...echoed, final: false, referralId: referral.id, authorId: practice.therapist.id, addenda: [] });
      t.ok(Date.parse(report.signedAt) <= Date.now(), 'signedAt is set by the server');
      t.equal(response.headers.location, `/v1/referrals/${referral.id}/progress-reports/${report.id}`);
      posted.push(report);
    }
    t.same(posted.map((report) => report.visitNumber), [1, 2, 3]);
    t.same((await notes(referral.id)).map((report) => [report.id, report.visitNumber]), posted.map((report) => [report.id, report.visitNumber]));
    t.equal((await referralAs(referral.id)).progress.visitsUsed, 3);
  });

  t.test('each note is audited as progress_report.create with its id and the patient id', async (t) => {
    const referral = await acceptedReferral();
    const report = await note(referral.id);
    const events = await auditEvents(test, { action: 'progress_report.create', resourceId: report.id });
    t.equal(events.length, 1, 'exactly one audit event');
    t.match(events[0], { outcome: 'success', resourceType: 'progress_report', patientId: referral.patientId, actorId: practice.therapist.id, httpStatus: 201 });
  });

  for (const field of ['visitNumber', 'id', 'signedAt', 'authorId', 'referralId']) {
    t.test(`rejects a server-owned ${field} in the body with 400 as unrecognised, creating nothing`, async (t) => {
      const referral = await acceptedReferral();
      const value = field === 'visitNumber' ? 7 : field === 'signedAt' ? new Date().toISOString() : field === 'referralId' ? referral.id : colleague.id;
      const response = await postNote(referral.id, noteBody({ [field]: value }));
      assertProblem(t, response, 400, [field]);
      t.match(response.json().errors.find((problem: Json) => problem.field === field), { message: /not a recognised field/ });
      t.same(await notes(referral.id), [], 'no note was created');
      t.equal((await referralAs(referral.id)).status, 'accepted', 'the referral did not start');
    });
  }

  t.test('the first note moves accepted → in_progress, recorded once as start', async (t) => {
    const referral = await acceptedReferral();
    t.equal(referral.status, 'accepted');
    await note(referral.id);
    t.equal((await referralAs(referral.id)).status, 'in_progress');
    await note(referral.id);
    t.equal((await referralAs(referral.id)).status, 'in_progress');
    const starts = (await historyActions(referral.id)).filter((event) => event.action === 'start');
    t.equal(starts.length, 1, 'one start event, for the first note only');
    t.match(starts[0], { fromStatus: 'accepted', toStatus: 'in_progress', actor: { type: 'user', id: practice.therapist.id }, changes: { visitNumber: 1 } });
  });

  t.test('a final note moves in_progress → completed, recorded as complete', async (t) => {
    const referral = await acceptedReferral();
    await note(referral.id);
    const final = await note(referral.id, { final: true, plan: 'Discharged: goals met' });
    t.equal(final.final, true);
    t.equal(final.visitNumber, 2);
    t.equal((await referralAs(referral.id)).status, 'completed');
    const events = (await historyActions(referral.id)).filter((event) => event.action === 'start' || event.action === 'complete');
    t.match(events, [
      { action: 'start', fromStatus: 'accepted', toStatus: 'in_progress' },
      { action: 'complete', fromStatus: 'in_progress', toStatus: 'completed', changes: { visitNumber: 2 } },
    ]);
    t.equal(events.length, 2);
  });

  t.test('a final first note both starts and completes the referral', async (t) => {
    const referral = await acceptedReferral();
    const report = await note(referral.id, { final: true });
    t.equal(report.visitNumber, 1);
    t.equal((await referralAs(referral.id)).status, 'completed');
    const events = (await historyActions(referral.id)).filter((event) => event.action === 'start' || event.action === 'complete');
    t.match(events, [
      { action: 'start', fromStatus: 'accepted', toStatus: 'in_progress' },
      { action: 'complete', fromStatus: 'in_progress', toStatus: 'completed' },
    ]);
    t.equal(events.length, 2);
  });

  t.test('refuses a note before acceptance with 409 not-accepted', async (t) => {
    const referral = await sentReferral();
    assertConflict(t, await postNote(referral.id), 'not-accepted', 'sent');
    t.equal((await referralAs(referral.id)).status, 'sent', 'the referral is unchanged');
    t.same(await notes(referral.id), []);
  });

  t.test('refuses a note past visitsAuthorized with visits-exhausted, and takes it again once the physician raises visitsAuthorized', async (t) => {
    const referral = await acceptedReferral({ visitsAuthorized: 2 });
    await note(referral.id);
    await note(referral.id);
    assertConflict(t, await postNote(referral.id), 'visits-exhausted', 'in_progress');
    t.equal((await notes(referral.id)).length, 2, 'no third note was stored');

    const amended = await test.request({ method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, payload: { visitsAuthorized: 3 } });
    t.equal(amended.statusCode, 200);
    t.equal(amended.json().visitsAuthorized, 3);
    const third = await postNote(referral.id);
    t.equal(third.statusCode, 201);
    t.equal(third.json().visitNumber, 3);
    assertConflict(t, await postNote(referral.id), 'visits-exhausted');
    t.match((await referralAs(referral.id)).progress, { visitsUsed: 3, visitsAuthorized: 3, visitsRemaining: 0 });
  });

  t.test('refuses a note on an expired referral with referral-expired', async (t) => {
    const referral = await acceptedReferral();
    await note(referral.id);
    await run(sql`update referrals set start_date = ${isoDate(-20)}, expires_on = ${isoDate(-1)} where id = ${referral.id}`);
    t.ok((await test.app.expireReferrals()) >= 1, 'the sweep expired it');
    t.equal((await referralAs(referral.id)).status, 'expired');
    assertConflict(t, await postNote(referral.id), 'referral-expired', 'expired');
    t.equal((await notes(referral.id)).length, 1);
  });

  t.test('refuses a note with referral-expired once expiresOn has passed, before the sweep has run', async (t) => {
    const referral = await acceptedReferral();
    await note(referral.id);
    await run(sql`update referrals set start_date = ${isoDate(-20)}, expires_on = ${isoDate(-1)} where id = ${referral.id}`);
    t.equal((await referralAs(referral.id)).status, 'in_progress', 'not swept yet');
    assertConflict(t, await postNote(referral.id), 'referral-expired', 'in_progress');
    t.equal((await notes(referral.id)).length, 1);
    // The last day itself is still treatable.
    await run(sql`update referrals set expires_on = ${today()} where id = ${referral.id}`);
    t.equal((await postNote(referral.id)).statusCode, 201, 'a note on the expiry day itself is taken');
  });

  t.test('refuses a note once the referral is completed with referral-completed', async (t) => {
    const referral = await acceptedReferral();
    await note(referral.id, { final: true });
    assertConflict(t, await postNote(referral.id), 'referral-completed', 'completed');
    t.equal((await notes(referral.id)).length, 1);
  });

  t.test('refuses a note once the referral is cancelled with referral-cancelled', async (t) => {
    const referral = await acceptedReferral();
    await note(referral.id);
    const cancelled = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/cancel`, token: office.physician.token, payload: { reason: 'Patient moved' } });
    t.equal(cancelled.statusCode, 200);
    assertConflict(t, await postNote(referral.id), 'referral-cancelled', 'cancelled');
    t.equal((await notes(referral.id)).length, 1);
  });

  t.test('validation', async (t) => {
    const referral = await acceptedReferral({ visitsAuthorized: 40 });
    const without = (field: string) => {
      const body = noteBody();
      delete body[field];
      return body;
    };
    const rejected: [string, Json, string][] = [
      ['a visitDate in the future', noteBody({ visitDate: isoDate(1) }), 'visitDate'],
      ['a visitDate before the referral was accepted', noteBody({ visitDate: isoDate(-2) }), 'visitDate'],
      ['a visitDate that is not a date', noteBody({ visitDate: '2026-02-30' }), 'visitDate'],
      ['painBefore above 10', noteBody({ painBefore: 11 }), 'painBefore'],
      ['painAfter below 0', noteBody({ painAfter: -1 }), 'painAfter'],
      ['a non-integer painBefore', noteBody({ painBefore: 3.5 }), 'painBefore'],
      ['a pain score given as text', noteBody({ painAfter: '4' }), 'painAfter'],
      ['an unknown technique', noteBody({ techniquesApplied: ['hot_stones'] }), 'techniquesApplied[0]'],
      ['no technique', noteBody({ techniquesApplied: [] }), 'techniquesApplied'],
      ['minutes of 0', noteBody({ minutes: 0 }), 'minutes'],
      ['minutes of 241', noteBody({ minutes: 241 }), 'minutes'],
      ['a CPT code of 4 digits', noteBody({ billing: [{ cpt: '9712', units: 1 }] }), 'billing[0].cpt'],
      ['a CPT code of 6 digits', noteBody({ billing: [{ cpt: '971240', units: 1 }] }), 'billing[0].cpt'],
      ['a CPT code with letters', noteBody({ billing: [{ cpt: '9712A', units: 1 }] }), 'billing[0].cpt'],
      ['0 units', noteBody({ billing: [{ cpt: '97124', units: 0 }] }), 'billing[0].units'],
      ['13 units', noteBody({ billing: [{ cpt: '97140', units: 1 }, { cpt: '97124', units: 13 }] }), 'billing[1].units'],
      ['a lower-case modifier', noteBody({ billing: [{ cpt: '97124', units: 1, modifiers: ['gp'] }] }), 'billing[0].modifiers[0]'],
      ['a modifier of 3 characters', noteBody({ billing: [{ cpt: '97124', units: 1, modifiers: ['GP', 'GPX'] }] }), 'billing[0].modifiers[1]'],
      ['a modifier with a symbol', noteBody({ billing: [{ cpt: '97124', units: 1, modifiers: ['5-'] }] }), 'billing[0].modifiers[0]'],
      ['five modifiers', noteBody({ billing: [{ cpt: '97124', units: 1, modifiers: ['GP', '59', 'KX', 'XS', 'XU'] }] }), 'billing[0].modifiers'],
      ['a modifier given twice', noteBody({ billing: [{ cpt: '97124', units: 1, modifiers: ['GP', 'GP'] }] }), 'billing[0].modifiers'],
      ['a diagnosis pointer of 0', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [0] }] }), 'billing[0].diagnosisPointers[0]'],
      ['a diagnosis pointer of 13', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [1, 13] }] }), 'billing[0].diagnosisPointers[1]'],
      ['a diagnosis pointer that is not an integer', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [1.5] }] }), 'billing[0].diagnosisPointers[0]'],
      ['five diagnosis pointers', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [1, 2, 3, 4, 5] }] }), 'billing[0].diagnosisPointers'],
      ['an empty list of diagnosis pointers', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [] }] }), 'billing[0].diagnosisPointers'],
      ['a diagnosis pointer given twice', noteBody({ billing: [{ cpt: '97124', units: 1, diagnosisPointers: [1, 1] }] }), 'billing[0].diagnosisPointers'],
      // The referral of this test has one diagnosis.
      ['a diagnosis pointer past the referral\'s diagnoses', noteBody({ billing: [{ cpt: '97140', units: 1, diagnosisPointers: [1] }, { cpt: '97124', units: 1, diagnosisPointers: [1, 2] }] }), 'billing[1].diagnosisPointers'],
      ['an unknown billing field', noteBody({ billing: [{ cpt: '97124', units: 1, charge: 120 }] }), 'billing[0].charge'],
      ['an outcome instrument outside NDI|ODI|LEFS|DASH|PSFS|other', noteBody({ outcomeMeasures: [{ instrument: 'VAS', score: 3 }] }), 'outcomeMeasures[0].instrument'],
      ['instrument other without a name', noteBody({ outcomeMeasures: [{ instrument: 'other', score: 12 }] }), 'outcomeMeasures[0].name'],
      ['range of motion below 0 degrees', noteBody({ rangeOfMotion: [{ joint: 'knee_left', movement: 'flexion', degrees: -1 }] }), 'rangeOfMotion[0].degrees'],
      ['range of motion above 360 degrees', noteBody({ rangeOfMotion: [{ joint: 'knee_left', movement: 'flexion', degrees: 361 }] }), 'rangeOfMotion[0].degrees'],
      ['a missing subjective', without('subjective'), 'subjective'],
      ['a missing objective', without('objective'), 'objective'],
      ['a missing assessment', without('assessment'), 'assessment'],
      ['a missing plan', without('plan'), 'plan'],
      ['an empty plan', noteBody({ plan: '' }), 'plan'],
      ['a missing visitDate', without('visitDate'), 'visitDate'],
      ['an unknown field', noteBody({ mood: 'good' }), 'mood'],
    ];
    for (const [what, body, field] of rejected) {
      t.test(`rejects ${what} with 400 naming ${field}, creating nothing`, async (t) => {
        assertProblem(t, await postNote(referral.id, body), 400, [field]);
        t.same(await notes(referral.id), [], 'no note was created');
      });
    }
    t.test('the referral is still accepted, with no visit used', async (t) => {
      t.match(await referralAs(referral.id), { status: 'accepted', progress: { visitsUsed: 0 } });
    });
  });

  t.test('takes the boundary values of every rule', async (t) => {
    const referral = await acceptedReferral();
    const response = await postNote(
      referral.id,
      noteBody({
        visitDate: today(),
        painBefore: 10,
        painAfter: 0,
        minutes: 240,
        billing: [
          { cpt: '97124', units: 1 },
          { cpt: '97140', units: 12 },
        ],
        rangeOfMotion: [
          { joint: 'cervical_spine', movement: 'rotation', degrees: 0 },
          { joint: 'shoulder_left', movement: 'abduction', degrees: 360 },
        ],
        outcomeMeasures: ['NDI', 'ODI', 'LEFS', 'DASH', 'PSFS'].map((instrument, index) => ({ instrument, score: index * 10 })).concat([{ instrument: 'other', name: 'VAS', score: 5 } as never]),
      }),
    );
    t.equal(response.statusCode, 201, response.body.slice(0, 300));
    const minimal = noteBody({ minutes: 1 });
    for (const optional of ['rangeOfMotion', 'outcomeMeasures', 'billing', 'final']) delete minimal[optional];
    const second = await postNote(referral.id, minimal);
    t.equal(second.statusCode, 201, 'the optional lists and final may be left out');
    t.match(second.json(), { rangeOfMotion: [], outcomeMeasures: [], billing: [], final: false, minutes: 1 });
  });

  // SPEC §14.9: what a claim line needs besides the code and units.
  t.test('takes modifiers and diagnosis pointers on billing lines and shows them on the note, as posted', async (t) => {
    const referral = await acceptedReferral({
      diagnoses: [
        { code: 'M54.50', display: 'Low back pain, unspecified' },
        { code: 'M62.830', display: 'Muscle spasm of back' },
      ],
    });
    const billing = [
      { cpt: '97124', units: 2, modifiers: ['GP'], diagnosisPointers: [1, 2] },
      { cpt: '97140', units: 1, modifiers: ['GP', '59', 'KX', 'XS'], diagnosisPointers: [2, 1] },
      { cpt: '97112', units: 1, modifiers: [] },
    ];
    const response = await postNote(referral.id, noteBody({ billing }));
    t.equal(response.statusCode, 201, response.body.slice(0, 300));
    t.same(response.json().billing, billing);
    t.same((await notes(referral.id))[0]?.billing, billing, 'the list shows them too');
  });

  t.test('notes without modifiers or pointers (as every note before them) read as before', async (t) => {
    const referral = await acceptedReferral();
    const billing = [{ cpt: '97140', units: 2 }];
    t.equal((await postNote(referral.id, noteBody({ billing }))).statusCode, 201);
    // As a note written before the fields existed is stored: the lines' jsonb has cpt and units only.
    const [stored] = await run(sql`select billing from progress_reports where referral_id = ${referral.id}`);
    t.same((stored as Json).billing, billing);
    t.same((await notes(referral.id))[0]?.billing, billing);
  });

  t.test('takes a visit date before today once the referral was accepted earlier', async (t) => {
    const referral = await acceptedReferral({ startDate: isoDate(-10) });
    assertProblem(t, await postNote(referral.id, noteBody({ visitDate: isoDate(-3) })), 400, ['visitDate']);
    await run(sql`update referrals set accepted_at = now() - interval '5 days' where id = ${referral.id}`);
    const onAcceptanceDay = await postNote(referral.id, noteBody({ visitDate: isoDate(-5) }));
    t.equal(onAcceptanceDay.statusCode, 201, 'the acceptance day itself is taken');
    const later = await postNote(referral.id, noteBody({ visitDate: isoDate(-3) }));
    t.equal(later.statusCode, 201);
    t.equal(later.json().visitDate, isoDate(-3));
    assertProblem(t, await postNote(referral.id, noteBody({ visitDate: isoDate(-6) })), 400, ['visitDate']);
  });

  t.test('only the accepting therapist posts', async (t) => {
    const referral = await acceptedReferral();
    const outsiders = {
      'another therapist of the same practice': colleague,
      'the prescribing physician': office.physician,
      'office staff of the prescribing office': office.staff,
      'the practice admin': practice.admin,
      'a therapist of another practice': otherPractice.therapist,
      'a network admin': { id: networkAdminId, token: networkAdmin },
    };
    for (const [who, caller] of Object.entries(outsiders)) {
      t.test(`answers ${who} with 404, audited as denied`, async (t) => {
        assertProblem(t, await postNote(referral.id, noteBody(), caller.token), 404);
        const denied = await auditEvents(test, { action: 'progress_report.create', outcome: 'denied', actorId: caller.id, resourceId: referral.id });
        t.equal(denied.length, 1, 'one denied event');
        t.match(denied[0], { httpStatus: 404, resourceType: 'referral' });
      });
    }
    t.test('nothing was posted and the referral did not start', async (t) => {
      t.same(await notes(referral.id), []);
      t.equal((await referralAs(referral.id)).status, 'accepted');
    });
    t.test('answers a referral that does not exist with 404', async (t) => {
      assertProblem(t, await postNote('00000000-0000-4000-8000-000000000000'), 404);
    });
  });

  t.test(
    'answers another therapist of the same practice with 404, audited as denied, also when the referral is completed or cancelled',
    async (t) => {
      const completed = await acceptedReferral();
      await note(completed.id, { final: true });
      const cancelled = await acceptedReferral();
      await test.request({ method: 'POST', url: `/v1/referrals/${cancelled.id}/cancel`, token: office.physician.token, payload: { reason: 'Patient moved' } });
      const exhausted = await acceptedReferral({ visitsAuthorized: 1 });
      await note(exhausted.id);
      for (const referral of [completed, cancelled, exhausted]) {
        assertProblem(t, await postNote(referral.id, noteBody(), colleague.token), 404);
        const denied = await auditEvents(test, { action: 'progress_report.create', outcome: 'denied', actorId: colleague.id, resourceId: referral.id });
        t.equal(denied.length, 1, 'the attempt is audited as denied');
      }
    },
  );

  t.test(
    'answers another therapist of the same practice with 404, audited as denied, also when their note is invalid',
    async (t) => {
      const referral = await acceptedReferral();
      assertProblem(t, await postNote(referral.id, noteBody({ visitDate: isoDate(3) }), colleague.token), 404);
      const denied = await auditEvents(test, { action: 'progress_report.create', outcome: 'denied', actorId: colleague.id, resourceId: referral.id });
      t.equal(denied.length, 1, 'the attempt is audited as denied');
    },
  );

  t.test('5 notes posted at once on a referral with visitsAuthorized 3: exactly 3 succeed, numbered 1, 2, 3', async (t) => {
    const referral = await acceptedReferral({ visitsAuthorized: 3 });
    const responses = await Promise.all(Array.from({ length: 5 }, () => postNote(referral.id)));
    const created = responses.filter((response) => response.statusCode === 201);
    const refused = responses.filter((response) => response.statusCode !== 201);
    t.equal(created.length, 3, 'three notes created');
    t.same(created.map((response) => response.json().visitNumber).sort(), [1, 2, 3]);
    t.equal(refused.length, 2);
    for (const response of refused) assertConflict(t, response, 'visits-exhausted');
    t.same((await notes(referral.id)).map((report) => report.visitNumber), [1, 2, 3]);
    t.match((await referralAs(referral.id)).progress, { visitsUsed: 3, visitsRemaining: 0 });
    t.equal((await historyActions(referral.id)).filter((event) => event.action === 'start').length, 1, 'started once');
  });
});

t.test('progress reports never change', async (t) => {
  const referral = await acceptedReferral();
  const report = await note(referral.id, { plan: 'Continue 2x/week' });
  const reportUrl = `${notesUrl(referral.id)}/${report.id}`;

  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    t.test(`${method} on a note has no route (404 or 405)`, async (t) => {
      const response = await test.request({ method, url: reportUrl, token: practice.therapist.token, payload: method === 'DELETE' ? undefined : noteBody({ plan: 'x' }) });
      t.ok([404, 405].includes(response.statusCode), `answers ${response.statusCode}`);
    });
  }

  t.test('a direct SQL update of a note is refused by the database', async (t) => {
    await t.rejects(run(sql`update progress_reports set plan = 'x' where id = ${report.id}`));
  });

  t.test('a direct SQL delete of a note is refused by the database', async (t) => {
    await t.rejects(run(sql`delete from progress_reports where id = ${report.id}`));
  });

  t.test('the note reads back exactly as signed', async (t) => {
    const [stored] = await notes(referral.id);
    t.same(stored, report);
  });
});

t.test('POST /v1/referrals/{id}/progress-reports/{reportId}/addenda', async (t) => {
  const referral = await acceptedReferral();
  const report = await note(referral.id, { painAfter: 4 });
  const addendaUrl = (reportId = report.id, referralId = referral.id) => `${notesUrl(referralId)}/${reportId}/addenda`;
  const postAddendum = (token: string, payload: Json, url = addendaUrl()) => test.request({ method: 'POST', url, token, payload });

  t.test('the author attaches a correction: 201, listed under the note, the note itself unchanged', async (t) => {
    const response = await postAddendum(practice.therapist.token, { text: 'Correction: pain after the session was 3/10, not 4/10.' });
    t.equal(response.statusCode, 201);
    const addendum = response.json();
    t.match(addendum, { reportId: report.id, authorId: practice.therapist.id, text: 'Correction: pain after the session was 3/10, not 4/10.' });
    t.ok(addendum.id && addendum.createdAt);
    const second = (await postAddendum(practice.therapist.token, { text: 'Second correction' })).json();
    const listed = (await notes(referral.id))[0]!;
    t.same(listed.addenda, [addendum, second], 'addenda in order, oldest first');
    const { addenda: _addenda, ...rest } = listed;
    const { addenda: _none, ...original } = report;
    t.same(rest, original, 'the note is unchanged');
    const events = await auditEvents(test, { action: 'progress_report.addendum', outcome: 'success', resourceId: report.id });
    t.equal(events.length, 2);
    t.match(events[0], { patientId: referral.patientId, actorId: practice.therapist.id, resourceType: 'progress_report' });
  });

  const outsiders = {
    'another therapist of the same practice': colleague,
    'the prescribing physician': office.physician,
    'the practice admin': practice.admin,
    'a therapist of another practice': otherPractice.therapist,
  };
  for (const [who, caller] of Object.entries(outsiders)) {
    t.test(`answers ${who} with 404, audited as denied`, async (t) => {
      assertProblem(t, await postAddendum(caller.token, { text: 'Not mine to correct' }), 404);
      const denied = await auditEvents(test, { action: 'progress_report.addendum', outcome: 'denied', actorId: caller.id });
      t.equal(denied.length, 1);
      t.match(denied[0], { httpStatus: 404 });
      t.notOk((await notes(referral.id))[0]!.addenda.some((addendum: Json) => addendum.text === 'Not mine to correct'));
    });
  }

  t.test('answers a report id of another referral with 404', async (t) => {
    const other = await acceptedReferral();
    const otherReport = await note(other.id);
    assertProblem(t, await postAddendum(practice.therapist.token, { text: 'Wrong thread' }, addendaUrl(otherReport.id, referral.id)), 404);
    assertProblem(t, await postAddendum(practice.therapist.token, { text: 'Missing' }, addendaUrl('00000000-0000-4000-8000-000000000000')), 404);
  });

  t.test('rejects an empty text or an unknown field with 400 naming it', async (t) => {
    assertProblem(t, await postAddendum(practice.therapist.token, { text: '' }), 400, ['text']);
    assertProblem(t, await postAddendum(practice.therapist.token, { text: 'ok', authorId: colleague.id }), 400, ['authorId']);
  });

  t.test('is allowed on a completed referral', async (t) => {
    const done = await acceptedReferral();
    const final = await note(done.id, { final: true });
    t.equal((await referralAs(done.id)).status, 'completed');
    const response = await postAddendum(practice.therapist.token, { text: 'Late correction to the discharge summary' }, addendaUrl(final.id, done.id));
    t.equal(response.statusCode, 201);
    t.equal((await notes(done.id))[0]!.addenda.length, 1);
  });

  t.test('addenda are append-only in the database too', async (t) => {
    await t.rejects(run(sql`update progress_report_addenda set text = 'x' where report_id = ${report.id}`));
    await t.rejects(run(sql`delete from progress_report_addenda where report_id = ${report.id}`));
  });
});

t.test('GET /v1/referrals/{id}/progress-reports', async (t) => {
  const referral = await acceptedReferral();
  const first = await note(referral.id);
  const second = await note(referral.id);
  const third = await note(referral.id);
  await test.create(`${notesUrl(referral.id)}/${second.id}/addenda`, practice.therapist.token, { text: 'Correction to visit 2' });

  const readers = {
    'the prescribing physician': office.physician,
    'office staff': office.staff,
    'the office admin': office.admin,
    'the accepting therapist': practice.therapist,
    'the practice admin': practice.admin,
  };
  for (const [who, reader] of Object.entries(readers)) {
    t.test(`${who} reads every note by visit number, with addenda, each read audited`, async (t) => {
      const listed = await notes(referral.id, reader.token);
      t.same(listed.map((report) => report.id), [first.id, second.id, third.id]);
      t.same(listed.map((report) => report.addenda.length), [0, 1, 0]);
      t.match(listed[1]!.addenda[0], { text: 'Correction to visit 2', authorId: practice.therapist.id });
      const reads = await auditEvents(test, { action: 'progress_report.read', actorId: reader.id, resourceId: second.id });
      t.equal(reads.length, 1);
      t.match(reads[0], { outcome: 'success', patientId: referral.patientId, resourceType: 'progress_report' });
    });
  }

  t.test('limit=1 walks every note once, in visit order, addenda included', async (t) => {
    const walked: Json[] = [];
    let cursor: string | null = null;
    do {
      const response = await get(`${notesUrl(referral.id)}?limit=1${cursor ? `&cursor=${cursor}` : ''}`, practice.therapist.token);
      t.equal(response.statusCode, 200);
      const page: Json = response.json();
      t.ok(page.data.length <= 1);
      walked.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor !== null && walked.length <= 3);
    t.same(walked.map((report) => report.visitNumber), [1, 2, 3]);
    t.equal(walked[1]!.addenda.length, 1);
  });

  t.test('rejects a forged cursor with 400 naming query.cursor', async (t) => {
    const cursor = Buffer.from(JSON.stringify(['1'])).toString('base64url');
    assertProblem(t, await get(`${notesUrl(referral.id)}?cursor=${cursor}`, office.physician.token), 400, ['query.cursor']);
  });

  const strangers = {
    'a therapist of another practice': otherPractice.therapist,
    'the admin of another practice': otherPractice.admin,
    'a physician of another office': otherOffice.physician,
    'a network admin': { id: networkAdminId, token: networkAdmin },
  };
  for (const [who, caller] of Object.entries(strangers)) {
    t.test(`answers ${who} with 404, audited as denied`, async (t) => {
      assertProblem(t, await get(notesUrl(referral.id), caller.token), 404);
      const denied = await auditEvents(test, { action: 'progress_report.list', outcome: 'denied', actorId: caller.id, resourceId: referral.id });
      t.equal(denied.length, 1);
    });
  }
});

t.test('GET /v1/referrals/{id} › progress summary', async (t) => {
  const referral = await acceptedReferral({ visitsAuthorized: 10 });

  t.test('before any note: nothing used, no pain, no scores', async (t) => {
    t.same((await referralAs(referral.id)).progress, {
      visitsUsed: 0,
      visitsAuthorized: 10,
      visitsRemaining: 10,
      firstPain: null,
      latestPain: null,
      latestOutcomeScores: [],
    });
  });

  t.test('after three notes: visits used and remaining, first and latest pain, the latest score of each instrument', async (t) => {
    await note(referral.id, { painBefore: 7, painAfter: 5, outcomeMeasures: [{ instrument: 'ODI', score: 40 }, { instrument: 'NDI', score: 30 }] });
    await note(referral.id, { painBefore: 6, painAfter: 4, outcomeMeasures: [{ instrument: 'ODI', score: 34 }] });
    await note(referral.id, { painBefore: 5, painAfter: 2, outcomeMeasures: [{ instrument: 'other', name: 'VAS', score: 20 }] });
    const byInstrument = (a: Json, b: Json) => `${a.instrument}${a.name ?? ''}`.localeCompare(`${b.instrument}${b.name ?? ''}`);
    for (const token of [office.physician.token, practice.therapist.token]) {
      const { progress } = await referralAs(referral.id, token);
      t.match(progress, {
        visitsUsed: 3,
        visitsAuthorized: 10,
        visitsRemaining: 7,
        firstPain: { visitNumber: 1, before: 7, after: 5 },
        latestPain: { visitNumber: 3, before: 5, after: 2 },
      });
      t.same([...progress.latestOutcomeScores].sort(byInstrument), [
        { instrument: 'NDI', score: 30, visitNumber: 1 },
        { instrument: 'ODI', score: 34, visitNumber: 2 },
        { instrument: 'other', name: 'VAS', score: 20, visitNumber: 3 },
      ]);
    }
  });

  t.test('raising visitsAuthorized raises visitsRemaining', async (t) => {
    const amended = await test.request({ method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, payload: { visitsAuthorized: 12 } });
    t.equal(amended.statusCode, 200);
    t.match((await referralAs(referral.id)).progress, { visitsUsed: 3, visitsAuthorized: 12, visitsRemaining: 9 });
  });
});

