// Appointments (SPEC §14.5): the therapist side of the care team books visits and records what
// became of them, both sides read them, everyone else gets the 404 of a missing referral (audited);
// appointment.scheduled and appointment.no_show reach the outbox and subscribed endpoints; and the
// worker's sweep sends referral.not_scheduled once per referral accepted SCHEDULE_ALERT_DAYS ago
// with nothing booked and no visit, also with several sweeps (and two apps) at once.
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { auditEvents, countRows } from './fixtures/database.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { startReceiver, verified } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern, requireStatus, uuidPattern } from './fixtures/responses.js';
import { buildWebhookApp, drain, feedPayloads, registerEndpoint } from './fixtures/webhooks.js';
import { testConfig, testDatabaseServer, TestApp, type Json, type TestResponse } from './helper.js';

// ROLE=api: no sweep or delivery runs unless a test runs it.
const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_TIMEOUT_MS: '2000' });
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id);
// Two practices in Salem, far from the others: an open offer near Salem goes to their therapists only.
const salem = { lat: 44.9429, lng: -123.0351 };
const salemWinner = await createPractice(test, networkAdmin, { location: salem });
const salemLoser = await createPractice(test, networkAdmin, { location: salem });
const practiceWriter = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read', 'referrals:write']);
const practiceReader = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read']);
const officeWriter = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write']);
const officeReader = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);

const hoursFromNow = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString();
const run = (query: ReturnType<typeof sql>) => test.app.database.rows(query);
const appointmentsUrl = (referralId: string) => `/v1/referrals/${referralId}/appointments`;

const book = (referralId: string, payload: Json = {}, token = practice.therapist.token, headers: Record<string, string> = {}) =>
  test.request({ method: 'POST', url: appointmentsUrl(referralId), token, payload: { startsAt: hoursFromNow(48), minutes: 60, ...payload }, headers });
const setStatus = (referralId: string, appointmentId: string, payload: Json, token = practice.therapist.token) =>
  test.request({ method: 'PATCH', url: `${appointmentsUrl(referralId)}/${appointmentId}`, token, payload });
const list = (referralId: string, token = office.physician.token, query = '') => test.request({ method: 'GET', url: `${appointmentsUrl(referralId)}${query}`, token });

/** Books an appointment that must be taken; returns it. */
async function booked(referralId: string, payload: Json = {}, token = practice.therapist.token): Promise<Json> {
  return requireStatus(await book(referralId, payload, token), 201, 'book');
}
async function allAppointments(referralId: string): Promise<Json[]> {
  return requireStatus(await list(referralId, office.physician.token, '?limit=200'), 200, 'list').data;
}
async function referralOf(referralId: string, token = office.physician.token): Promise<Json> {
  return requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}`, token }), 200, 'GET referral');
}

async function sentReferral(target: Json = { practiceId: practice.id }, send = true): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ send, ...target }));
}
async function accept(referralId: string, token = practice.therapist.token): Promise<Json> {
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/accept`, token, payload: {} }), 200, 'accept');
}
/** A referral to `practice`, accepted by practice.therapist, `daysAgo` days ago (moved back in the database). */
async function acceptedReferral(daysAgo = 0): Promise<Json> {
  const referral = await accept((await sentReferral()).id);
  if (daysAgo > 0) await acceptedAgo(referral.id, `${daysAgo} days`);
  return referral;
}
const acceptedAgo = (referralId: string, interval: string) => run(sql`update referrals set accepted_at = now() - ${interval}::interval where id = ${referralId}::uuid`);
const postVisit = (referralId: string, payload: Json = {}) =>
  test.request({ method: 'POST', url: `/v1/referrals/${referralId}/progress-reports`, token: practice.therapist.token, payload: visitNoteBody(payload) });

/** The outbox events of one type about one referral, oldest first, as partners will receive them. */
/** What the office's events feed announced of one type for the referral (what its endpoints were sent). */
const outbox = (referralId: string, type: string) => feedPayloads(test, office.admin.token, type, referralId);
const appointmentRows = (referralId: string) => countRows(test, sql`select count(*) as n from appointments where referral_id = ${referralId}::uuid`);

/** The refusal of an outsider: 404 exactly as for a missing referral, and the attempt audited as denied. */
async function assertOutsider(t: Test, response: TestResponse, action: string, actorId: string, referralId: string, who: string) {
  assertProblem(t, response, 404, [], who);
  const denied = await auditEvents(test, { action, outcome: 'denied', actorId, resourceId: referralId });
  t.equal(denied.length, 1, `${who}: the attempt is audited as denied`);
  t.match(denied[0], { httpStatus: 404, resourceType: 'referral' }, `${who}: against the referral`);
}

t.test('POST /v1/referrals/{id}/appointments', async (t) => {
  t.test('the accepting therapist books: 201, in UTC, announced, audited, and the referral moves', async (t) => {
    const referral = await acceptedReferral();
    const before = await referralOf(referral.id);
    const startsAt = new Date(Date.now() + 50 * 3_600_000);
    startsAt.setUTCMilliseconds(0);
    // Given with an offset, answered in UTC.
    const local = new Date(startsAt.getTime() + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
    const response = await book(referral.id, { startsAt: local, minutes: 45 });
    const appointment = expectStatus(t, response, 201, 'booked');
    t.same(Object.keys(appointment).sort(), ['createdAt', 'createdBy', 'id', 'minutes', 'referralId', 'startsAt', 'status', 'updatedAt']);
    t.match(appointment, { id: uuidPattern, referralId: referral.id, startsAt: startsAt.toISOString(), minutes: 45, status: 'scheduled', createdBy: practice.therapist.id });
    t.match(appointment.createdAt, isoTimestampPattern);
    t.same(await allAppointments(referral.id), [appointment], 'listed');

    const [event, ...more] = await outbox(referral.id, 'appointment.scheduled');
    t.equal(more.length, 0, 'one appointment.scheduled');
    const { organizations, ...data } = event?.data ?? {};
    t.same(data, { resource: 'appointment', id: appointment.id, referralId: referral.id, status: 'accepted', url: `/v1/referrals/${referral.id}/appointments` }, 'a thin event naming the appointment and the referral');
    t.same([...(organizations ?? [])].sort(), [office.id, practice.id].sort(), 'to the office and the practice');

    const audited = await auditEvents(test, { action: 'appointment.create', resourceId: appointment.id });
    t.equal(audited.length, 1, 'audited');
    t.match(audited[0], { outcome: 'success', httpStatus: 201, resourceType: 'appointment', actorId: practice.therapist.id, patientId: referral.patientId });

    const after = await referralOf(referral.id);
    t.ok(Date.parse(after.updatedAt) > Date.parse(before.updatedAt), "the referral's updatedAt moved");
    t.equal(after.nextAppointmentAt, appointment.startsAt, 'nextAppointmentAt is the booked visit');
    t.equal(after.noShows, 0);
  });

  t.test("the accepting practice's admin and its API client with referrals:write book too; a client without it is refused with 403", async (t) => {
    const referral = await acceptedReferral();
    t.match(await booked(referral.id, {}, practice.admin.token), { createdBy: practice.admin.id });
    t.match(await booked(referral.id, {}, practiceWriter.token), { createdBy: practiceWriter.id });
    assertProblem(t, await book(referral.id, {}, practiceReader.token), 403, [], 'referrals:read alone');
    t.equal(await appointmentRows(referral.id), 2);
  });

  t.test('an in_progress referral takes bookings; nextAppointmentAt is the earliest visit still scheduled from now on', async (t) => {
    const referral = await acceptedReferral(3);
    expectStatus(t, await postVisit(referral.id), 201, 'a first visit');
    const late = await booked(referral.id, { startsAt: hoursFromNow(24 * 9) });
    const soon = await booked(referral.id, { startsAt: hoursFromNow(24 * 2) });
    await booked(referral.id, { startsAt: hoursFromNow(-24) });
    const sooner = await booked(referral.id, { startsAt: hoursFromNow(24) });
    expectStatus(t, await setStatus(referral.id, sooner.id, { status: 'cancelled_by_patient' }), 200, 'the soonest is cancelled');
    const after = await referralOf(referral.id);
    t.equal(after.status, 'in_progress');
    t.equal(after.nextAppointmentAt, soon.startsAt, 'not the past one, not the cancelled one');
    t.not(after.nextAppointmentAt, late.startsAt);
  });

  t.test('an Idempotency-Key replays the booking instead of booking twice', async (t) => {
    const referral = await acceptedReferral();
    const headers = { 'idempotency-key': `book-${crypto.randomUUID()}` };
    const payload = { startsAt: hoursFromNow(30), minutes: 50 };
    const first = expectStatus(t, await book(referral.id, payload, practice.therapist.token, headers), 201, 'first');
    const again = await book(referral.id, payload, practice.therapist.token, headers);
    t.same(expectStatus(t, again, 201, 'the repeat'), first, 'the same appointment');
    t.equal(again.headers['idempotent-replayed'], 'true', 'replayed');
    assertProblem(t, await book(referral.id, { ...payload, minutes: 55 }, practice.therapist.token, headers), 422, [], 'the same key with another body');
    t.equal(await appointmentRows(referral.id), 1, 'one appointment');
  });

  t.test('a bad body is a 400 naming the field, and nothing is booked', async (t) => {
    const referral = await acceptedReferral();
    const cases: [string, Json, string][] = [
      ['startsAt not a time', { startsAt: 'tomorrow' }, 'startsAt'],
      ['startsAt without an offset', { startsAt: '2030-05-01T10:00:00' }, 'startsAt'],
      ['startsAt an impossible date', { startsAt: '2030-02-30T10:00:00Z' }, 'startsAt'],
      ['startsAt a number', { startsAt: 1_900_000_000 }, 'startsAt'],
      ['minutes below 5', { minutes: 4 }, 'minutes'],
      ['minutes above 480', { minutes: 481 }, 'minutes'],
      ['minutes not whole', { minutes: 30.5 }, 'minutes'],
      ['minutes as text', { minutes: '60' }, 'minutes'],
      ['an unknown field', { room: 'B' }, 'room'],
      ['a server-owned field', { status: 'attended' }, 'status'],
      ['a server-owned id', { id: crypto.randomUUID() }, 'id'],
      ['startsAt before the referral was accepted', { startsAt: hoursFromNow(-24 * 3) }, 'startsAt'],
      ['startsAt more than 366 days ahead', { startsAt: hoursFromNow(24 * 368) }, 'startsAt'],
    ];
    for (const [what, payload, field] of cases) assertProblem(t, await book(referral.id, payload), 400, [field], what);
    for (const field of ['startsAt', 'minutes']) {
      const rest: Json = { startsAt: hoursFromNow(5), minutes: 60 };
      delete rest[field];
      assertProblem(t, await test.request({ method: 'POST', url: appointmentsUrl(referral.id), token: practice.therapist.token, payload: rest }), 400, [field], `without ${field}`);
    }
    assertProblem(t, await test.request({ method: 'POST', url: appointmentsUrl(referral.id), token: practice.therapist.token }), 400, [], 'no body');
    t.equal(await appointmentRows(referral.id), 0, 'nothing was booked');
    t.same(await outbox(referral.id, 'appointment.scheduled'), [], 'nothing announced');
    // The bounds themselves are taken: a visit on the acceptance day already held, and one 365 days ahead.
    await acceptedAgo(referral.id, '2 days');
    expectStatus(t, await book(referral.id, { startsAt: hoursFromNow(-24) }), 201, 'a visit held yesterday, entered today');
    expectStatus(t, await book(referral.id, { startsAt: hoursFromNow(24 * 365) }), 201, 'a year ahead');
    expectStatus(t, await book(referral.id, { minutes: 5 }), 201, '5 minutes');
    expectStatus(t, await book(referral.id, { minutes: 480 }), 201, '480 minutes');
  });

  t.test('409 with the current status unless the referral is accepted or in progress; a draft is no business of the practice (404)', async (t) => {
    const sent = await sentReferral({ therapistId: practice.therapist.id });
    let problem = assertProblem(t, await book(sent.id), 409, [], 'sent to the therapist, not accepted yet');
    t.match(problem, { code: 'not-accepted', currentStatus: 'sent' });
    problem = assertProblem(t, await book(sent.id, {}, practice.admin.token), 409, [], 'the targeted practice before it accepts');
    t.match(problem, { code: 'not-accepted', currentStatus: 'sent' });

    const completed = await acceptedReferral();
    expectStatus(t, await postVisit(completed.id, { final: true }), 201, 'a final visit');
    problem = assertProblem(t, await book(completed.id), 409, [], 'completed');
    t.match(problem, { code: 'referral-completed', currentStatus: 'completed' });

    const cancelled = await acceptedReferral();
    requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${cancelled.id}/cancel`, token: office.physician.token, payload: { reason: 'Patient moved' } }), 200, 'cancel');
    t.match(assertProblem(t, await book(cancelled.id), 409, [], 'cancelled'), { code: 'referral-cancelled', currentStatus: 'cancelled' });

    // Past its expiresOn while the expiry sweep has not run yet.
    const overdue = await acceptedReferral(20);
    await run(sql`update referrals set start_date = current_date - 30, expires_on = current_date - 1 where id = ${overdue.id}::uuid`);
    t.match(assertProblem(t, await book(overdue.id), 409, [], 'past its expiresOn'), { code: 'referral-expired', currentStatus: 'accepted' });

    const draft = await sentReferral({ therapistId: practice.therapist.id }, false);
    assertProblem(t, await book(draft.id), 404, [], 'a draft the therapist cannot see');
    for (const referral of [sent, completed, cancelled, overdue, draft]) t.equal(await appointmentRows(referral.id), 0, 'nothing booked');
    const refused = await auditEvents(test, { action: 'appointment.create', resourceId: completed.id });
    t.match(refused, [{ outcome: 'error', httpStatus: 409 }], 'the refused change is audited');
  });
});

t.test('PATCH /v1/referrals/{id}/appointments/{appointmentId}', async (t) => {
  t.test('no_show once the visit has begun: announced once, counted on the referral; the same status again changes nothing', async (t) => {
    const referral = await acceptedReferral(2);
    const appointment = await booked(referral.id, { startsAt: hoursFromNow(-2) });
    const before = await referralOf(referral.id);
    const missed = expectStatus(t, await setStatus(referral.id, appointment.id, { status: 'no_show' }), 200, 'no_show');
    t.match(missed, { id: appointment.id, status: 'no_show', startsAt: appointment.startsAt, createdAt: appointment.createdAt });
    t.ok(Date.parse(missed.updatedAt) >= Date.parse(appointment.updatedAt));
    const events = await outbox(referral.id, 'appointment.no_show');
    t.equal(events.length, 1, 'one appointment.no_show');
    t.match(events[0]?.data, { resource: 'appointment', id: appointment.id, referralId: referral.id, status: 'accepted', url: `/v1/referrals/${referral.id}/appointments` });
    const after = await referralOf(referral.id);
    t.equal(after.noShows, 1, 'noShows counts it');
    t.ok(Date.parse(after.updatedAt) > Date.parse(before.updatedAt), "the referral's updatedAt moved");

    const again = expectStatus(t, await setStatus(referral.id, appointment.id, { status: 'no_show' }), 200, 'no_show again');
    t.same(again, missed, 'unchanged');
    t.equal((await outbox(referral.id, 'appointment.no_show')).length, 1, 'not announced again');
    t.equal((await referralOf(referral.id)).updatedAt, after.updatedAt, "the referral's updatedAt stays");
    const audited = await auditEvents(test, { action: 'appointment.update', resourceId: appointment.id });
    t.same(audited.map((event) => [event.outcome, event.httpStatus, event.patientId]), [['success', 200, referral.patientId], ['success', 200, referral.patientId]], 'both requests audited');
  });

  t.test('an outcome may be corrected to the other; attended and no_show wait until the visit has begun', async (t) => {
    const referral = await acceptedReferral(2);
    const past = await booked(referral.id, { startsAt: hoursFromNow(-3) });
    expectStatus(t, await setStatus(referral.id, past.id, { status: 'attended' }), 200, 'attended');
    t.same(await outbox(referral.id, 'appointment.no_show'), [], 'attended announces no no-show');
    expectStatus(t, await setStatus(referral.id, past.id, { status: 'no_show' }), 200, 'corrected to no_show');
    t.equal((await outbox(referral.id, 'appointment.no_show')).length, 1, 'announced');
    expectStatus(t, await setStatus(referral.id, past.id, { status: 'attended' }), 200, 'corrected back to attended');
    t.equal((await referralOf(referral.id)).noShows, 0, 'no longer counted');

    const future = await booked(referral.id, { startsAt: hoursFromNow(20) });
    for (const status of ['attended', 'no_show']) {
      const problem = assertProblem(t, await setStatus(referral.id, future.id, { status }), 409, [], `${status} before it begins`);
      t.match(problem, { code: 'appointment-not-started', currentStatus: 'scheduled' });
    }
    t.equal((await allAppointments(referral.id)).find((item) => item.id === future.id)?.status, 'scheduled', 'still scheduled');
  });

  t.test('a cancellation is final, nothing returns to scheduled, and a visit held or missed is not cancelled afterwards', async (t) => {
    const referral = await acceptedReferral(2);
    const cancelled = await booked(referral.id, { startsAt: hoursFromNow(-1) });
    expectStatus(t, await setStatus(referral.id, cancelled.id, { status: 'cancelled_by_patient' }), 200, 'cancelled by the patient');
    for (const status of ['attended', 'no_show', 'scheduled', 'cancelled_by_practice']) {
      const problem = assertProblem(t, await setStatus(referral.id, cancelled.id, { status }), 409, [], `cancelled → ${status}`);
      t.match(problem, { code: 'illegal-transition', currentStatus: 'cancelled_by_patient', detail: /stays cancelled/ });
    }
    expectStatus(t, await setStatus(referral.id, cancelled.id, { status: 'cancelled_by_patient' }), 200, 'the same cancellation again');

    const attended = await booked(referral.id, { startsAt: hoursFromNow(-5) });
    expectStatus(t, await setStatus(referral.id, attended.id, { status: 'attended' }), 200, 'attended');
    for (const status of ['scheduled', 'cancelled_by_patient', 'cancelled_by_practice']) {
      t.match(assertProblem(t, await setStatus(referral.id, attended.id, { status }), 409, [], `attended → ${status}`), { code: 'illegal-transition', currentStatus: 'attended' });
    }
    const refused = await auditEvents(test, { action: 'appointment.update', outcome: 'error', resourceId: referral.id });
    // Identical refusals in a row are summarised by the denial aggregator, so at least the first of each kind is there.
    t.ok(refused.length >= 2, 'the refused changes are audited against the referral');
    t.match(refused[0], { httpStatus: 409, resourceType: 'referral', actorId: practice.therapist.id });
    t.same((await allAppointments(referral.id)).map((item) => item.status).sort(), ['attended', 'cancelled_by_patient']);
  });

  t.test('after the referral ended, its scheduled visits are still cancelled by the practice', async (t) => {
    const referral = await acceptedReferral();
    const appointment = await booked(referral.id);
    requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/cancel`, token: office.physician.token, payload: { reason: 'Surgery scheduled' } }), 200, 'cancel');
    t.match(expectStatus(t, await setStatus(referral.id, appointment.id, { status: 'cancelled_by_practice' }, practice.admin.token), 200, 'cancelled'), { status: 'cancelled_by_practice' });
    t.equal((await referralOf(referral.id)).nextAppointmentAt, null, 'nothing ahead');
  });

  t.test('a bad body is a 400 naming the field; an unknown appointment, or one of another referral, is a 404', async (t) => {
    const referral = await acceptedReferral();
    const appointment = await booked(referral.id);
    assertProblem(t, await setStatus(referral.id, appointment.id, { status: 'missed' }), 400, ['status'], 'an unknown status');
    assertProblem(t, await setStatus(referral.id, appointment.id, { status: null }), 400, ['status'], 'a null status');
    assertProblem(t, await setStatus(referral.id, appointment.id, {}), 400, ['status'], 'no status');
    assertProblem(t, await setStatus(referral.id, appointment.id, { status: 'cancelled_by_patient', startsAt: hoursFromNow(3) }), 400, ['startsAt'], 'another field besides');
    assertProblem(t, await setStatus(referral.id, appointment.id, { status: 'cancelled_by_patient', minutes: 30 }), 400, ['minutes'], 'minutes are not changed here');
    assertProblem(t, await test.request({ method: 'PATCH', url: `${appointmentsUrl(referral.id)}/not-a-uuid`, token: practice.therapist.token, payload: { status: 'attended' } }), 400, [/appointmentId/], 'a malformed id');
    t.match(await allAppointments(referral.id), [{ id: appointment.id, status: 'scheduled', minutes: 60 }], 'unchanged');

    assertProblem(t, await setStatus(referral.id, crypto.randomUUID(), { status: 'cancelled_by_patient' }), 404, [], 'an unknown appointment');
    const other = await acceptedReferral();
    assertProblem(t, await setStatus(other.id, appointment.id, { status: 'cancelled_by_patient' }), 404, [], "an appointment under another referral's id");
    t.match(await allAppointments(referral.id), [{ id: appointment.id, status: 'scheduled' }], 'still unchanged');
  });
});

t.test('GET /v1/referrals/{id}/appointments', async (t) => {
  const referral = await acceptedReferral();
  const times = [72, 24, 48, 96, 24];
  const made: Json[] = [];
  for (const hours of times) made.push(await booked(referral.id, { startsAt: hoursFromNow(hours) }));
  // Two at the same time are ordered by id.
  const expected = [...made].sort((a, b) => a.startsAt.localeCompare(b.startsAt) || a.id.localeCompare(b.id)).map((item) => item.id);

  t.test('by start time, page by page, for both sides of the care team', async (t) => {
    for (const [who, token] of [
      ['the physician', office.physician.token],
      ['office staff', office.staff.token],
      ["the office's EHR with referrals:read", officeReader.token],
      ['the accepting therapist', practice.therapist.token],
      ['the practice admin', practice.admin.token],
      ["the practice's EHR with referrals:read", practiceReader.token],
    ] as const) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Json = expectStatus(t, await list(referral.id, token, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`), 200, `${who}: a page`);
        seen.push(...page.data.map((item: Json) => item.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      t.same(seen, expected, `${who}: every appointment once, by startsAt then id`);
      t.equal(pages, 3, `${who}: in three pages`);
    }
  });

  t.test('each listing is audited as a read of the patient', async (t) => {
    const before = (await auditEvents(test, { action: 'appointment.list', actorId: office.staff.id, resourceId: referral.id })).length;
    await list(referral.id, office.staff.token);
    const after = await auditEvents(test, { action: 'appointment.list', actorId: office.staff.id, resourceId: referral.id });
    t.equal(after.length, before + 1);
    t.match(after.at(-1), { outcome: 'success', httpStatus: 200, resourceType: 'referral', patientId: referral.patientId });
  });

  t.test('a forged cursor or a bad limit is a 400 naming it', async (t) => {
    assertProblem(t, await list(referral.id, office.physician.token, '?cursor=bm90LWEtY3Vyc29y'), 400, ['query.cursor']);
    assertProblem(t, await list(referral.id, office.physician.token, '?limit=0'), 400, ['query.limit']);
    assertProblem(t, await list(referral.id, office.physician.token, '?sort=desc'), 400, [/sort/]);
  });

  t.test('a referral with none lists none', async (t) => {
    const empty = await acceptedReferral();
    t.same(requireStatus(await list(empty.id), 200, 'list'), { data: [], nextCursor: null });
  });
});

t.test('who may book, change and list: everyone outside the care team gets 404, audited', async (t) => {
  const referral = await acceptedReferral();
  const appointment = await booked(referral.id);
  // An open offer near Salem, taken by one practice's therapist: the other's offer is gone with it.
  const offered = await sentReferral({ network: { near: salem, radiusKm: 5 } });
  await accept(offered.id, salemWinner.therapist.token);
  const offeredAppointment = await booked(offered.id, {}, salemWinner.therapist.token);

  const outsiders = {
    'a physician of another office': { id: otherOffice.physician.id, token: otherOffice.physician.token },
    'the admin of another office': { id: otherOffice.admin.id, token: otherOffice.admin.token },
    'a therapist of another practice': { id: otherPractice.therapist.id, token: otherPractice.therapist.token },
    'the admin of another practice': { id: otherPractice.admin.id, token: otherPractice.admin.token },
    'a colleague of the accepting therapist': { id: colleague.id, token: colleague.token },
    'a network admin': { id: networkAdminId, token: networkAdmin },
  };
  for (const [who, caller] of Object.entries(outsiders)) {
    await assertOutsider(t, await book(referral.id, {}, caller.token), 'appointment.create', caller.id, referral.id, `${who} books`);
    await assertOutsider(t, await setStatus(referral.id, appointment.id, { status: 'cancelled_by_practice' }, caller.token), 'appointment.update', caller.id, referral.id, `${who} cancels`);
    await assertOutsider(t, await list(referral.id, caller.token), 'appointment.list', caller.id, referral.id, `${who} lists`);
  }
  const loser = { id: salemLoser.therapist.id, token: salemLoser.therapist.token };
  await assertOutsider(t, await book(offered.id, {}, loser.token), 'appointment.create', loser.id, offered.id, 'a therapist whose offer another took, books');
  await assertOutsider(t, await setStatus(offered.id, offeredAppointment.id, { status: 'cancelled_by_practice' }, loser.token), 'appointment.update', loser.id, offered.id, 'the offer holder cancels');
  await assertOutsider(t, await list(offered.id, loser.token), 'appointment.list', loser.id, offered.id, 'the offer holder lists');
  await assertOutsider(t, await list(offered.id, salemLoser.admin.token), 'appointment.list', salemLoser.admin.id, offered.id, "the offer holder's practice admin lists");

  t.test('the office reads the appointments but neither books nor changes them: the 404 of visit notes, audited', async (t) => {
    for (const [who, caller] of [
      ['the physician', office.physician],
      ['office staff', office.staff],
      ["the office's EHR with referrals:write", officeWriter],
    ] as const) {
      await assertOutsider(t, await book(referral.id, {}, caller.token), 'appointment.create', caller.id, referral.id, `${who} books`);
      await assertOutsider(t, await setStatus(referral.id, appointment.id, { status: 'cancelled_by_patient' }, caller.token), 'appointment.update', caller.id, referral.id, `${who} cancels`);
      expectStatus(t, await list(referral.id, caller.token), 200, `${who} lists`);
    }
  });

  t.test('the answer is the same as for a referral that does not exist', async (t) => {
    const missing = assertProblem(t, await book(crypto.randomUUID()), 404);
    const foreign = assertProblem(t, await book(referral.id, {}, otherPractice.therapist.token), 404);
    t.same([foreign.type, foreign.title, foreign.detail.replace(referral.id, '')], [missing.type, missing.title, missing.detail.replace(/[0-9a-f-]{36}/, '')]);
  });

  t.test('nothing changed', async (t) => {
    t.match(await allAppointments(referral.id), [{ id: appointment.id, status: 'scheduled' }]);
    t.equal(await appointmentRows(referral.id), 1);
    t.match(await allAppointments(offered.id), [{ id: offeredAppointment.id, status: 'scheduled' }]);
  });
});

t.test('appointment.scheduled and appointment.no_show reach the endpoints of both sides that subscribed to them, signed and thin', async (t) => {
  const types = ['appointment.scheduled', 'appointment.no_show'];
  const officeReceiver = await startReceiver(t);
  const practiceReceiver = await startReceiver(t);
  const bystanderReceiver = await startReceiver(t);
  const officeEndpoint = await registerEndpoint(t, test, office.admin.token, { url: officeReceiver.url, eventTypes: types });
  const practiceEndpoint = await registerEndpoint(t, test, practice.admin.token, { url: practiceReceiver.url, eventTypes: ['appointment.no_show'] });
  await registerEndpoint(t, test, otherPractice.admin.token, { url: bystanderReceiver.url, eventTypes: types });

  const referral = await acceptedReferral(1);
  const appointment = await booked(referral.id, { startsAt: hoursFromNow(-1) });
  expectStatus(t, await setStatus(referral.id, appointment.id, { status: 'no_show' }), 200, 'no_show');
  await drain(test);

  const officePayloads = officeReceiver.requests.map((delivered) => verified(t, delivered, officeEndpoint.secret, 'office delivery'));
  const ours = officePayloads.filter((payload) => payload.data?.referralId === referral.id);
  t.same(ours.map((payload) => payload.type), types, 'the office: scheduled, then no_show');
  for (const payload of ours) {
    t.same(Object.keys(payload.data).sort(), ['id', 'organizations', 'referralId', 'resource', 'status', 'url'], `${payload.type}: thin`);
    t.match(payload.data, { resource: 'appointment', id: appointment.id, status: 'accepted' });
  }
  const practicePayloads = practiceReceiver.requests.map((delivered) => verified(t, delivered, practiceEndpoint.secret, 'practice delivery'));
  t.same(practicePayloads.filter((payload) => payload.data?.referralId === referral.id).map((payload) => payload.type), ['appointment.no_show'], 'the practice: what it subscribed to');
  t.equal(bystanderReceiver.requests.length, 0, 'a practice taking no part receives nothing');
});

t.test('referral.not_scheduled: the sweep of the worker', async (t) => {
  const alerts = (referralId: string) => outbox(referralId, 'referral.not_scheduled');
  const alertRows = (referralId: string) => countRows(test, sql`select count(*) as n from scheduling_alerts where referral_id = ${referralId}::uuid`);

  t.test(`not before SCHEDULE_ALERT_DAYS (${test.config.scheduling.alertAfterDays}); then once, by the system, audited`, async (t) => {
    const referral = await acceptedReferral();
    await acceptedAgo(referral.id, '6 days 23 hours');
    await test.app.sendSchedulingAlerts();
    t.same(await alerts(referral.id), [], 'not yet');

    await acceptedAgo(referral.id, '7 days 1 minute');
    t.ok((await test.app.sendSchedulingAlerts()) >= 1, 'the sweep reports what it sent');
    const sent = await alerts(referral.id);
    t.equal(sent.length, 1, 'sent');
    t.match(sent[0], { type: 'referral.not_scheduled', data: { resource: 'referral', id: referral.id, referralId: referral.id, status: 'accepted', url: `/v1/referrals/${referral.id}` } });
    t.same([...sent[0]!.data.organizations].sort(), [office.id, practice.id].sort(), 'to both sides');
    const audited = await auditEvents(test, { action: 'referral.not_scheduled', resourceId: referral.id });
    t.equal(audited.length, 1, 'audited once');
    t.match(audited[0], { actorType: 'system', outcome: 'success', resourceType: 'referral', patientId: referral.patientId });

    await test.app.sendSchedulingAlerts();
    await acceptedAgo(referral.id, '30 days');
    await test.app.sendSchedulingAlerts();
    t.equal((await alerts(referral.id)).length, 1, 'never again');
    t.equal(await alertRows(referral.id), 1);
  });

  t.test('not when a visit is booked, held or missed, nor once treatment started; a cancelled booking books nothing', async (t) => {
    const scheduled = await acceptedReferral(8);
    await booked(scheduled.id);
    const attended = await acceptedReferral(8);
    expectStatus(t, await setStatus(attended.id, (await booked(attended.id, { startsAt: hoursFromNow(-24 * 6) })).id, { status: 'attended' }), 200, 'attended');
    const missed = await acceptedReferral(8);
    expectStatus(t, await setStatus(missed.id, (await booked(missed.id, { startsAt: hoursFromNow(-24 * 6) })).id, { status: 'no_show' }), 200, 'no_show');
    const visited = await acceptedReferral(8);
    expectStatus(t, await postVisit(visited.id), 201, 'a visit');
    const cancelledOnly = await acceptedReferral(8);
    expectStatus(t, await setStatus(cancelledOnly.id, (await booked(cancelledOnly.id)).id, { status: 'cancelled_by_patient' }), 200, 'cancelled');
    const closed = await acceptedReferral(8);
    requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${closed.id}/cancel`, token: office.physician.token, payload: { reason: 'Patient moved' } }), 200, 'cancel');
    const neverAccepted = await sentReferral();
    await run(sql`update referrals set created_at = now() - interval '30 days' where id = ${neverAccepted.id}::uuid`);

    await test.app.sendSchedulingAlerts();
    for (const [what, referral] of [['booked', scheduled], ['attended', attended], ['missed', missed], ['visited', visited], ['cancelled', closed], ['sent', neverAccepted]] as const) {
      t.same(await alerts(referral.id), [], `no alert: ${what}`);
    }
    t.equal((await alerts(cancelledOnly.id)).length, 1, 'its only booking cancelled: alerted');
  });

  t.test('exactly once with several sweeps at once', async (t) => {
    await test.app.sendSchedulingAlerts();
    const due = await Promise.all(Array.from({ length: 8 }, () => acceptedReferral(10)));
    const counts = await Promise.all([test.app.sendSchedulingAlerts(), test.app.sendSchedulingAlerts(), test.app.sendSchedulingAlerts()]);
    t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `the sweeps sent ${due.length} alerts between them`);
    for (const referral of due) {
      t.equal(await countRows(test, sql`select count(*) as n from webhook_events where type = 'referral.not_scheduled' and referral_id = ${referral.id}::uuid`), 1, 'one event');
      t.equal((await auditEvents(test, { action: 'referral.not_scheduled', resourceId: referral.id })).length, 1, 'one audit event');
    }
  });

  t.test('exactly once with two apps sweeping the same PostgreSQL database at once', { skip: testDatabaseServer ? false : 'PostgreSQL only: an embedded database has one process' }, async (t) => {
    const second = await buildApp({ config: testConfig({ DATABASE_URL: test.config.databaseUrl!, ROLE: 'api' }) });
    t.teardown(() => second.close());
    const secondApp = new TestApp(second, test.config);
    await test.app.sendSchedulingAlerts();
    for (let round = 0; round < 3; round++) {
      const due = await Promise.all(Array.from({ length: 10 }, () => acceptedReferral(10)));
      const counts = await Promise.all([
        test.app.sendSchedulingAlerts(),
        second.sendSchedulingAlerts(),
        test.app.sendSchedulingAlerts(),
        second.sendSchedulingAlerts(),
      ]);
      t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `round ${round}: ${due.length} alerts between the apps`);
      const ids = due.map((referral) => sql`${referral.id}::uuid`);
      const perReferral = await secondApp.app.database.rows<{ referral_id: string; n: number | string }>(
        sql`select referral_id, count(*) as n from webhook_events where type = 'referral.not_scheduled' and referral_id in (${sql.join(ids, sql`, `)}) group by referral_id`,
      );
      t.equal(perReferral.length, due.length, `round ${round}: every referral alerted`);
      t.ok(perReferral.every((row) => Number(row.n) === 1), `round ${round}: each exactly once`);
    }
  });
});
