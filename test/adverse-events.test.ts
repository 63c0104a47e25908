// Adverse events (SPEC §14.10): the therapist side of the care team reports a reaction while the
// referral is treated; the office hears at once (adverse_event.reported), sees it in its activity and
// acknowledges it, once; both sides read it; everyone else gets the 404 of a missing referral,
// audited. A severe event that paused treatment holds the referral: visit notes are refused until
// the prescriber resumes it (referral.resumed). Unacknowledged for URGENT_ESCALATION_MINUTES, the
// worker sends urgent.unacknowledged exactly once, also with several sweeps and two apps at once.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { auditEvents, countRows } from './fixtures/database.js';
import { addApiClient, addMember, addTherapist, createOffice, createPractice, nextNpi } from './fixtures/network.js';
import { startReceiver, verified } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate, referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern, requireStatus, uuidPattern } from './fixtures/responses.js';
import { assertOutsider, makeOlder, outboxCount, outboxOf } from './fixtures/urgent.js';
import { buildWebhookApp, drain, registerEndpoint } from './fixtures/webhooks.js';
import { testConfig, testDatabaseServer, TestApp, type Json } from './helper.js';

// ROLE=api: no sweep or delivery runs unless a test runs it.
const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_TIMEOUT_MS: '2000' });
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);
// Sees referrals sent to the practice, but does not treat the patient of one a colleague accepted.
const colleague = await addTherapist(test, networkAdmin, practice.id);
const otherPhysician = await addMember(test, networkAdmin, office.id, { role: 'physician', email: `second.physician.${Date.now()}@office.example`, name: 'Second physician', npi: nextNpi() });
const officeWriter = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write']);
const officeReader = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);
const officeSigner = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:sign']);
const practiceWriter = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read', 'referrals:write']);
const practiceReader = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read']);
const escalationMinutes = test.config.urgentEscalation.afterMinutes;

const eventsUrl = (referralId: string) => `/v1/referrals/${referralId}/adverse-events`;
const eventBody = (overrides: Json = {}): Json => ({
  occurredOn: isoDate(0),
  description: 'Bruising over the left lumbar paraspinals after trigger point work',
  severity: 'moderate',
  actionTaken: 'Lighter pressure; cold compress; patient to call if it spreads',
  treatmentPaused: false,
  ...overrides,
});
const report = (referralId: string, token = practice.therapist.token, overrides: Json = {}) =>
  test.request({ method: 'POST', url: eventsUrl(referralId), token, payload: eventBody(overrides) });
const reported = async (referralId: string, overrides: Json = {}, token = practice.therapist.token): Promise<Json> =>
  requireStatus(await report(referralId, token, overrides), 201, 'report an adverse event');
const acknowledge = (referralId: string, eventId: string, token = office.staff.token) => test.request({ method: 'POST', url: `${eventsUrl(referralId)}/${eventId}/acknowledge`, token });
const list = (referralId: string, token = office.physician.token, query = '?limit=200') => test.request({ method: 'GET', url: `${eventsUrl(referralId)}${query}`, token });
const getEvent = (referralId: string, eventId: string, token = office.physician.token) => test.request({ method: 'GET', url: `${eventsUrl(referralId)}/${eventId}`, token });
const resume = (referralId: string, token = office.physician.token, payload: Json = { attestation: true }, headers: Record<string, string> = {}) =>
  test.request({ method: 'POST', url: `/v1/referrals/${referralId}/resume`, token, payload, headers });
const visitNote = (referralId: string) => test.request({ method: 'POST', url: `/v1/referrals/${referralId}/progress-reports`, token: practice.therapist.token, payload: visitNoteBody() });

async function referralOf(referralId: string, token = office.physician.token): Promise<Json> {
  return requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}`, token }), 200, 'GET referral');
}
async function historyOf(referralId: string): Promise<Json[]> {
  return requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}/history?limit=200`, token: office.physician.token }), 200, 'history').data;
}
const storedEvents = (referralId: string) => countRows(test, sql`select count(*) as n from adverse_events where referral_id = ${referralId}::uuid`);
const waiting = async (referralId: string, token: string): Promise<number> => (await referralOf(referralId, token)).activity.unacknowledgedUrgent;

async function sentReferral(): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, send: true }));
}
/** A referral sent to the practice and accepted by its therapist today. */
async function acceptedReferral(): Promise<Json> {
  const referral = await sentReferral();
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
}
const move = async (referralId: string, what: string, payload: Json, token = office.physician.token) =>
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/${what}`, token, payload }), 200, what);

t.test('POST /v1/referrals/{id}/adverse-events › the therapist side of the care team reports: 201, announced, audited', async (t) => {
  const referral = await acceptedReferral();
  const before = await referralOf(referral.id);
  const response = await report(referral.id);
  const event = expectStatus(t, response, 201, 'the accepting therapist reports');
  t.same(Object.keys(event).sort(), ['acknowledgedAt', 'acknowledgedBy', 'actionTaken', 'createdAt', 'description', 'escalatedAt', 'id', 'occurredOn', 'referralId', 'reportedBy', 'severity', 'treatmentPaused']);
  t.match(event, {
    id: uuidPattern,
    referralId: referral.id,
    ...eventBody(),
    reportedBy: { type: 'user', id: practice.therapist.id, organizationId: practice.id },
    createdAt: isoTimestampPattern,
    acknowledgedAt: null,
    acknowledgedBy: null,
    escalatedAt: null,
  });
  t.equal(response.headers.location, `${eventsUrl(referral.id)}/${event.id}`);

  const [announced, ...more] = await outboxOf(test, referral.id, 'adverse_event.reported');
  t.equal(more.length, 0, 'announced once');
  t.same(Object.keys(announced!.data).sort(), ['id', 'organizations', 'referralId', 'resource', 'status', 'url'], 'a thin payload');
  t.match(announced, { type: 'adverse_event.reported', data: { resource: 'adverse_event', id: event.id, referralId: referral.id, status: 'accepted', url: `${eventsUrl(referral.id)}/${event.id}` } });
  t.same([...announced!.data.organizations].sort(), [office.id, practice.id].sort(), 'to the office (and the practice)');
  t.notMatch(JSON.stringify(announced), /Bruising|pressure/, 'no clinical text');

  const audited = await auditEvents(test, { action: 'adverse_event.report', resourceId: event.id });
  t.match(audited, [{ outcome: 'success', httpStatus: 201, actorId: practice.therapist.id, resourceType: 'adverse_event', patientId: referral.patientId }]);
  const after = await referralOf(referral.id);
  t.equal(after.hold, null, 'a moderate event holds nothing');
  t.equal(after.version, before.version, 'nor changes the referral');
  t.ok(after.updatedAt > before.updatedAt, "the referral's updatedAt moved");

  for (const [who, caller, type] of [['the practice admin', practice.admin, 'user'], ['the practice EHR with referrals:write', practiceWriter, 'api_client']] as const) {
    const other = expectStatus(t, await report(referral.id, caller.token), 201, who);
    t.same(other.reportedBy, { type, id: caller.id, organizationId: practice.id }, `${who} reported it`);
  }
  assertProblem(t, await report(referral.id, practiceReader.token), 403, [], 'a practice EHR with referrals:read only');

  t.test('also once treatment has started', async (t) => {
    expectStatus(t, await visitNote(referral.id), 201, 'a visit');
    t.equal((await referralOf(referral.id)).status, 'in_progress');
    expectStatus(t, await report(referral.id), 201, 'reported while in progress');
  });
});

t.test('POST /v1/referrals/{id}/adverse-events › refused: outsiders and the office 404, not while untreated, bad input 400', async (t) => {
  const referral = await acceptedReferral();
  const outsiders = [
    ['the prescribing physician (the office does not report)', office.physician],
    ['office staff', office.staff],
    ['a colleague of the accepting therapist', colleague],
    ['a therapist of another practice', otherPractice.therapist],
    ['a physician of another office', otherOffice.physician],
    ['the network admin', { id: networkAdminId, token: networkAdmin }],
  ] as const;
  for (const [who, caller] of outsiders) {
    await assertOutsider(t, test, await report(referral.id, caller.token), 'adverse_event.report', caller.id, referral.id, who);
  }
  t.equal(await storedEvents(referral.id), 0, 'nothing stored');

  const pending = await sentReferral();
  t.match(assertProblem(t, await report(pending.id), 409, [], 'not yet accepted'), { code: 'not-accepted', currentStatus: 'sent' });
  const cancelled = await move((await acceptedReferral()).id, 'cancel', { reason: 'Patient moved' });
  t.match(assertProblem(t, await report(cancelled.id), 409, [], 'cancelled'), { code: 'referral-cancelled', currentStatus: 'cancelled' });
  const completed = await acceptedReferral();
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${completed.id}/progress-reports`, token: practice.therapist.token, payload: visitNoteBody({ final: true }) }), 201, 'final visit');
  t.match(assertProblem(t, await report(completed.id), 409, [], 'completed'), { code: 'referral-completed', currentStatus: 'completed' });
  const expired = await acceptedReferral();
  await test.app.database.rows(sql`update referrals set start_date = ${isoDate(-40)}, expires_on = ${isoDate(-1)} where id = ${expired.id}::uuid`);
  await test.app.expireReferrals();
  t.match(assertProblem(t, await report(expired.id, practice.therapist.token, { occurredOn: isoDate(0) }), 409, [], 'expired'), { code: 'referral-expired', currentStatus: 'expired' });
  for (const closed of [pending, cancelled, completed, expired]) t.equal(await storedEvents(closed.id), 0, 'nothing stored');

  const rejected: [string, Json, string][] = [
    ['an occurredOn in the future', { occurredOn: isoDate(1) }, 'occurredOn'],
    ['an occurredOn before the referral was accepted', { occurredOn: isoDate(-1) }, 'occurredOn'],
    ['an occurredOn that is no date', { occurredOn: '2026-02-30x' }, 'occurredOn'],
    ['an empty description', { description: '' }, 'description'],
    ['a description of 5001 characters', { description: 'x'.repeat(5001) }, 'description'],
    ['an unknown severity', { severity: 'fatal' }, 'severity'],
    ['an empty actionTaken', { actionTaken: '' }, 'actionTaken'],
    ['an actionTaken of 2001 characters', { actionTaken: 'x'.repeat(2001) }, 'actionTaken'],
    ['a treatmentPaused that is not a boolean', { treatmentPaused: 'yes' }, 'treatmentPaused'],
    ['a missing treatmentPaused', { treatmentPaused: undefined }, 'treatmentPaused'],
    ['a missing severity', { severity: undefined }, 'severity'],
    ['an unknown field', { patientName: 'Maria Gomez' }, 'patientName'],
    ['a server-owned id', { id: '00000000-0000-4000-8000-000000000000' }, 'id'],
    ['a server-owned acknowledgedAt', { acknowledgedAt: '2020-01-01T00:00:00Z' }, 'acknowledgedAt'],
    ['a server-owned reportedBy', { reportedBy: { type: 'user', id: office.physician.id } }, 'reportedBy'],
  ];
  for (const [what, overrides, field] of rejected) {
    assertProblem(t, await report(referral.id, practice.therapist.token, overrides), 400, [field], what);
  }
  t.equal(await storedEvents(referral.id), 0, 'nothing stored for any of them');
  t.equal((await referralOf(referral.id)).hold, null);
});

t.test('GET /v1/referrals/{id}/adverse-events(/{eventId}) › both sides of the care team read, each read audited', async (t) => {
  const referral = await acceptedReferral();
  const first = await reported(referral.id, { severity: 'mild' });
  const second = await reported(referral.id, { severity: 'moderate' }, practice.admin.token);
  for (const [who, caller] of [['the physician', office.physician], ['office staff', office.staff], ['the office EHR', officeReader], ['the therapist', practice.therapist], ['the practice admin', practice.admin], ['the practice EHR', practiceReader]] as const) {
    const page = expectStatus(t, await list(referral.id, caller.token), 200, who);
    t.same(page.data.map((event: Json) => event.id), [first.id, second.id], `${who}: in the order reported`);
    t.same(expectStatus(t, await getEvent(referral.id, second.id, caller.token), 200, `${who} reads one`), second);
  }
  const reads = await auditEvents(test, { action: 'adverse_event.read', actorId: office.staff.id });
  t.same(reads.map((event) => event.resourceId), [first.id, second.id, second.id], 'each event listed or read is an audited read');
  t.ok(reads.every((event) => event.patientId === referral.patientId && event.resourceType === 'adverse_event'), 'of the patient');

  const paged = expectStatus(t, await list(referral.id, office.physician.token, '?limit=1'), 200, 'limit=1');
  t.same(paged.data.map((event: Json) => event.id), [first.id]);
  const rest = expectStatus(t, await list(referral.id, office.physician.token, `?limit=1&cursor=${paged.nextCursor}`), 200, 'next page');
  t.same(rest.data.map((event: Json) => event.id), [second.id]);
  t.equal(rest.nextCursor, null);
  assertProblem(t, await list(referral.id, office.physician.token, '?limit=0'), 400, ['query.limit']);

  for (const [who, caller] of [['a colleague of the accepting therapist', colleague], ['a physician of another office', otherOffice.physician], ['a therapist of another practice', otherPractice.therapist]] as const) {
    await assertOutsider(t, test, await list(referral.id, caller.token), 'adverse_event.list', caller.id, referral.id, `${who} lists`);
    await assertOutsider(t, test, await getEvent(referral.id, first.id, caller.token), 'adverse_event.read', caller.id, referral.id, `${who} reads one`);
  }
  const other = await acceptedReferral();
  assertProblem(t, await getEvent(other.id, first.id), 404, [], 'an event of another referral');
  assertProblem(t, await getEvent(referral.id, '00000000-0000-4000-8000-000000000000'), 404, [], 'no such event');
  assertProblem(t, await getEvent(referral.id, 'nope'), 400, [/eventId/], 'an event id that is no uuid');
});

t.test('POST …/adverse-events/{eventId}/acknowledge › the office acknowledges, once; it leaves the activity', async (t) => {
  const referral = await acceptedReferral();
  const event = await reported(referral.id);
  t.equal(await waiting(referral.id, office.physician.token), 1, 'waits for the office');
  t.equal(await waiting(referral.id, office.staff.token), 1);
  t.equal(await waiting(referral.id, practice.therapist.token), 0, 'not for the side that reported it');
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: practice.therapist.token, payload: { body: 'Please call the patient', priority: 'urgent' } }), 201, 'urgent message');
  t.equal(await waiting(referral.id, office.staff.token), 2, 'with an urgent message of the therapist: two');

  for (const [who, token] of [['the therapist', practice.therapist.token], ['the practice admin', practice.admin.token], ['the practice EHR', practiceWriter.token]] as const) {
    t.match(assertProblem(t, await acknowledge(referral.id, event.id, token), 409, [], who), { code: 'own-side', currentStatus: 'accepted' });
  }
  for (const [who, caller] of [['a colleague', colleague], ['a physician of another office', otherOffice.physician]] as const) {
    await assertOutsider(t, test, await acknowledge(referral.id, event.id, caller.token), 'adverse_event.acknowledge', caller.id, referral.id, who);
  }
  assertProblem(t, await acknowledge(referral.id, event.id, officeReader.token), 403, [], 'an office EHR with referrals:read only');
  t.equal((await getEvent(referral.id, event.id)).json().acknowledgedAt, null, 'nobody acknowledged it yet');

  const first = expectStatus(t, await acknowledge(referral.id, event.id, office.staff.token), 200, 'office staff');
  t.match(first, { id: event.id, acknowledgedBy: office.staff.id, acknowledgedAt: isoTimestampPattern });
  t.same(expectStatus(t, await acknowledge(referral.id, event.id, office.physician.token), 200, 'the physician, again'), first, 'the first acknowledgement is kept');
  t.same((await getEvent(referral.id, event.id)).json(), first);
  t.equal(await waiting(referral.id, office.staff.token), 1, 'only the urgent message still waits');
  const audited = await auditEvents(test, { action: 'adverse_event.acknowledge', resourceId: event.id, outcome: 'success' });
  t.same(audited.map((entry) => entry.actorId), [office.staff.id, office.physician.id], 'each acknowledgement audited');

  for (const [who, caller] of [['the office admin', office.admin], ['the office EHR with referrals:write', officeWriter]] as const) {
    const another = await reported(referral.id);
    t.equal(expectStatus(t, await acknowledge(referral.id, another.id, caller.token), 200, who).acknowledgedBy, caller.id);
  }
  assertProblem(t, await acknowledge(referral.id, '00000000-0000-4000-8000-000000000000'), 404, [], 'no such event');
});

t.test('hold: a severe event that paused treatment holds the referral until the prescriber resumes it', async (t) => {
  const referral = await acceptedReferral();
  expectStatus(t, await visitNote(referral.id), 201, 'treatment started');
  const before = await referralOf(referral.id);
  const severe = await reported(referral.id, { severity: 'severe', treatmentPaused: true });

  const held = await referralOf(referral.id);
  t.match(held.hold, { since: isoTimestampPattern, adverseEventId: severe.id }, 'on hold, naming the event');
  t.equal(held.version, before.version + 1, 'the version bumped');
  t.equal(held.status, 'in_progress', 'the status is kept');
  t.same((await referralOf(referral.id, practice.therapist.token)).hold, held.hold, 'the therapist sees the hold');
  t.equal((await referralOf(referral.id, colleague.token)).hold, null, "a colleague, who may not know the patient, is not told of the patient's reaction");
  const holdEntry = (await historyOf(referral.id)).filter((entry) => entry.action === 'hold');
  t.match(holdEntry, [{ fromStatus: 'in_progress', toStatus: 'in_progress', version: held.version, actor: { id: practice.therapist.id }, changes: { adverseEventId: severe.id } }]);

  const refused = assertProblem(t, await visitNote(referral.id), 409, [], 'a visit note while on hold');
  t.match(refused, { code: 'referral-on-hold', currentStatus: 'in_progress' });
  t.match(refused.detail, severe.id, 'naming the adverse event');
  t.equal((await referralOf(referral.id)).progress.visitsUsed, 1, 'no visit recorded');

  const later = await reported(referral.id, { severity: 'severe', treatmentPaused: true, description: 'Dizziness after the session' });
  t.same((await referralOf(referral.id)).hold, held.hold, 'a second severe event keeps the hold of the first');
  t.equal((await historyOf(referral.id)).filter((entry) => entry.action === 'hold').length, 1, 'held once');
  expectStatus(t, await acknowledge(referral.id, severe.id), 200, 'acknowledged');
  t.same((await referralOf(referral.id)).hold, held.hold, 'acknowledging does not lift the hold');

  const current = await referralOf(referral.id);
  for (const [who, token, status] of [
    ['the therapist', practice.therapist.token, 403],
    ['office staff', office.staff.token, 403],
    ['another physician of the office', otherPhysician.token, 403],
    ['the practice EHR', practiceWriter.token, 403],
    ['a physician of another office', otherOffice.physician.token, 404],
  ] as const) {
    assertProblem(t, await resume(referral.id, token), status, [], who);
  }
  assertProblem(t, await resume(referral.id, office.physician.token, {}), 400, ['attestation'], 'without the attestation');
  assertProblem(t, await resume(referral.id, office.physician.token, { attestation: false }), 400, ['attestation'], 'attestation false');
  assertProblem(t, await resume(referral.id, office.physician.token, { attestation: true, comment: '' }), 400, ['comment'], 'an empty comment');
  assertProblem(t, await resume(referral.id, office.physician.token, { attestation: true, hold: null }), 400, ['hold'], 'an unknown field');
  assertProblem(t, await resume(referral.id, office.physician.token, { attestation: true }, { 'if-match': `"${current.version - 1}"` }), 412, [], 'a stale If-Match');
  const unchanged = await referralOf(referral.id);
  t.same([unchanged.hold, unchanged.version], [held.hold, current.version], 'still on hold, nothing changed');
  const denied = await auditEvents(test, { action: 'referral.resume', outcome: 'denied', actorId: otherPhysician.id });
  t.equal(denied.length, 1, "the other physician's attempt is audited as denied");

  const response = await resume(referral.id, office.physician.token, { attestation: true, comment: 'Seen in clinic; resume with light pressure' }, { 'if-match': `"${current.version}"` });
  const resumed = expectStatus(t, response, 200, 'the prescriber resumes');
  t.equal(resumed.hold, null, 'no longer on hold');
  t.equal(resumed.version, current.version + 1, 'the version bumped');
  t.equal(response.headers.etag, `"${resumed.version}"`);
  t.equal(resumed.status, 'in_progress');
  const resumeEntry = (await historyOf(referral.id)).filter((entry) => entry.action === 'resume');
  t.match(resumeEntry, [{ actor: { id: office.physician.id }, reason: 'Seen in clinic; resume with light pressure', version: resumed.version, changes: { adverseEventId: severe.id } }]);
  const announced = await outboxOf(test, referral.id, 'referral.resumed');
  t.match(announced, [{ type: 'referral.resumed', data: { resource: 'referral', id: referral.id, referralId: referral.id, status: 'in_progress' } }]);
  t.equal((await auditEvents(test, { action: 'referral.resume', resourceId: referral.id, outcome: 'success' })).length, 1, 'audited');

  expectStatus(t, await visitNote(referral.id), 201, 'a visit note after the resume');
  t.match(assertProblem(t, await resume(referral.id), 409, [], 'resuming again'), { code: 'not-on-hold', currentStatus: 'in_progress' });
  t.equal(later.treatmentPaused, true);
});

t.test('hold: only severe with treatmentPaused; the office EHR may resume; cancelling a held referral works and keeps the hold', async (t) => {
  for (const overrides of [{ severity: 'severe', treatmentPaused: false }, { severity: 'moderate', treatmentPaused: true }, { severity: 'mild', treatmentPaused: true }]) {
    const referral = await acceptedReferral();
    await reported(referral.id, overrides);
    t.equal((await referralOf(referral.id)).hold, null, `${overrides.severity}, paused ${overrides.treatmentPaused}: no hold`);
    expectStatus(t, await visitNote(referral.id), 201, 'visits go on');
  }

  const byEhr = await acceptedReferral();
  const paused = await reported(byEhr.id, { severity: 'severe', treatmentPaused: true }, practice.admin.token);
  t.equal((await referralOf(byEhr.id)).hold?.adverseEventId, paused.id, 'held (also on the practice admin\'s report)');
  t.match(assertProblem(t, await visitNote(byEhr.id), 409, [], 'no visit while held'), { code: 'referral-on-hold', currentStatus: 'accepted' });
  t.equal(expectStatus(t, await resume(byEhr.id, officeSigner.token), 200, "the office's EHR with referrals:sign resumes").hold, null);
  expectStatus(t, await visitNote(byEhr.id), 201, 'the first visit after it');

  const cancelled = await acceptedReferral();
  const severe = await reported(cancelled.id, { severity: 'severe', treatmentPaused: true });
  const after = await move(cancelled.id, 'cancel', { reason: 'Patient referred to a physiatrist instead' });
  t.equal(after.status, 'cancelled', 'cancelling a held referral works');
  t.equal(after.hold?.adverseEventId, severe.id, 'and clears nothing else');
});

t.test('a subscribed office endpoint receives adverse_event.reported, referral.resumed and urgent.unacknowledged', async (t) => {
  const receiver = await startReceiver(t);
  const types = ['adverse_event.reported', 'referral.resumed', 'urgent.unacknowledged'];
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: receiver.url, eventTypes: types });
  await test.app.escalateAdverseEvents();
  const referral = await acceptedReferral();
  const event = await reported(referral.id, { severity: 'severe', treatmentPaused: true });
  expectStatus(t, await resume(referral.id), 200, 'resume');
  await makeOlder(test, 'adverse_events', [event.id], escalationMinutes + 1);
  t.equal(await test.app.escalateAdverseEvents(), 1, 'escalated');
  await drain(test);
  const payloads = receiver.requests.map((delivered) => verified(t, delivered, endpoint.secret, 'office delivery')).filter((payload) => payload.data?.referralId === referral.id);
  t.same(payloads.map((payload) => payload.type), types, 'each once, in order');
  t.same(payloads.map((payload) => payload.data.id), [event.id, referral.id, event.id]);
});

t.test('urgent.unacknowledged: the worker escalates an event the office did not acknowledge in time, once', async (t) => {
  await test.app.escalateAdverseEvents();
  const referral = await acceptedReferral();
  const overdue = await reported(referral.id);
  const recent = await reported(referral.id);
  const acknowledgedInTime = await reported(referral.id);
  expectStatus(t, await acknowledge(referral.id, acknowledgedInTime.id), 200, 'acknowledged');
  await makeOlder(test, 'adverse_events', [overdue.id, acknowledgedInTime.id], escalationMinutes + 1);
  await makeOlder(test, 'adverse_events', [recent.id], escalationMinutes - 1);

  t.equal(await test.app.escalateAdverseEvents(), 1, 'the overdue one');
  t.equal(await outboxCount(test, 'urgent.unacknowledged', overdue.id), 1, 'escalated');
  for (const event of [recent, acknowledgedInTime]) t.equal(await outboxCount(test, 'urgent.unacknowledged', event.id), 0, 'not escalated');
  const [announced] = await outboxOf(test, referral.id, 'urgent.unacknowledged');
  t.match(announced, { data: { resource: 'adverse_event', id: overdue.id, referralId: referral.id, url: `${eventsUrl(referral.id)}/${overdue.id}` } });
  t.same(announced!.data.organizations, [office.id], 'to the prescribing office alone (SPEC §14.10)');
  const escalated = (await getEvent(referral.id, overdue.id)).json();
  t.match(escalated, { escalatedAt: isoTimestampPattern, acknowledgedAt: null });
  t.match(await auditEvents(test, { action: 'adverse_event.escalate', resourceId: overdue.id }), [{ actorType: 'system', outcome: 'success', resourceType: 'adverse_event', patientId: referral.patientId }]);

  t.equal(await test.app.escalateAdverseEvents(), 0, 'a second sweep finds nothing');
  t.equal(await outboxCount(test, 'urgent.unacknowledged', overdue.id), 1, 'still once');
  t.equal(expectStatus(t, await acknowledge(referral.id, overdue.id), 200, 'acknowledged after the escalation').escalatedAt, escalated.escalatedAt);
});

/** Adverse events, already overdue, spread over three referrals. */
async function overdueEvents(count: number): Promise<Json[]> {
  const referrals = await Promise.all([acceptedReferral(), acceptedReferral(), acceptedReferral()]);
  const events: Json[] = [];
  for (let index = 0; index < count; index++) events.push(await reported(referrals[index % 3]!.id));
  await makeOlder(test, 'adverse_events', events.map((event) => event.id), escalationMinutes + 1);
  return events;
}

t.test('exactly once with several sweeps at once', async (t) => {
  await test.app.escalateAdverseEvents();
  const due = await overdueEvents(9);
  const counts = await Promise.all([test.app.escalateAdverseEvents(), test.app.escalateAdverseEvents(), test.app.escalateAdverseEvents()]);
  t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `the sweeps escalated ${due.length} between them`);
  for (const event of due) {
    t.equal(await outboxCount(test, 'urgent.unacknowledged', event.id), 1, 'one event');
    t.equal((await auditEvents(test, { action: 'adverse_event.escalate', resourceId: event.id })).length, 1, 'one audit event');
  }
});

t.test('acknowledgements and sweeps at the same time: no deadlock, each event escalated at most once', async (t) => {
  await test.app.escalateAdverseEvents();
  const due = await overdueEvents(9);
  const [acknowledgements, ...counts] = await Promise.all([
    Promise.all(due.map((event) => acknowledge(event.referralId, event.id))),
    test.app.escalateAdverseEvents(),
    test.app.escalateAdverseEvents(),
  ]);
  t.same(acknowledgements.map((response) => response.statusCode), due.map(() => 200), 'every acknowledgement answered 200');
  const escalated = (await Promise.all(due.map((event) => outboxCount(test, 'urgent.unacknowledged', event.id)))).reduce((sum, count) => sum + count, 0);
  t.equal(counts.reduce((sum, count) => sum + count, 0), escalated, 'the sweeps escalated what they say');
  t.ok(escalated <= due.length, `${escalated} escalated, none twice`);
  for (const event of due) t.ok((await outboxCount(test, 'urgent.unacknowledged', event.id)) <= 1);
});

t.test('exactly once with two apps sweeping the same PostgreSQL database at once', { skip: testDatabaseServer ? false : 'PostgreSQL only: an embedded database has one process' }, async (t) => {
  const second = await buildApp({ config: testConfig({ DATABASE_URL: test.config.databaseUrl!, ROLE: 'api' }) });
  t.teardown(() => second.close());
  const secondApp = new TestApp(second, test.config);
  await test.app.escalateAdverseEvents();
  for (let round = 0; round < 3; round++) {
    const due = await overdueEvents(12);
    const counts = await Promise.all([test.app.escalateAdverseEvents(), second.escalateAdverseEvents(), test.app.escalateAdverseEvents(), second.escalateAdverseEvents()]);
    t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `round ${round}: ${due.length} escalations between the apps`);
    const ids = due.map((event) => sql`${event.id}`);
    const perEvent = await secondApp.app.database.rows<{ id: string; n: number | string }>(
      sql`select payload -> 'data' ->> 'id' as id, count(*) as n from webhook_events where type = 'urgent.unacknowledged'
        and payload -> 'data' ->> 'id' in (${sql.join(ids, sql`, `)}) group by 1`,
    );
    t.equal(perEvent.length, due.length, `round ${round}: every event escalated`);
    t.ok(perEvent.every((row) => Number(row.n) === 1), `round ${round}: each exactly once`);
  }
});
