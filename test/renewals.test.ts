// Renewal (recertification), SPEC §14.4: the accepting therapist asks for more visits or time, the
// prescriber approves (visits rise, expiresOn moves, an expired referral reopens) or denies; one
// request pending at a time; two approvals at once raise the visits once; a new course may continue
// a completed one, and both show the link.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate, measuredVisitNoteBody, referralBody } from './fixtures/referral-bodies.js';
import { expectStatus, requireStatus } from './fixtures/responses.js';
import { feedPayloads } from './fixtures/webhooks.js';
import { buildTestApp, type Json } from './helper.js';

const test = await buildTestApp(t, { env: { REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id);
const signingEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:sign']);

const request = (method: 'GET' | 'POST', url: string, token: string, payload?: Json) => test.request({ method, url, token, ...(payload ? { payload } : {}) });
const renewalsUrl = (referralId: string) => `/v1/referrals/${referralId}/renewal-requests`;
const read = async (referralId: string): Promise<Json> => requireStatus(await request('GET', `/v1/referrals/${referralId}`, office.physician.token), 200, 'read');
const history = async (referralId: string): Promise<Json[]> => (await request('GET', `/v1/referrals/${referralId}/history?limit=200`, office.physician.token)).json().data;

async function acceptedReferral(overrides: Json = {}): Promise<Json> {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, send: true, ...overrides }));
  return requireStatus(await request('POST', `/v1/referrals/${referral.id}/accept`, practice.therapist.token, {}), 200, 'accept');
}
const ask = (referralId: string, body: Json = {}, token = practice.therapist.token) =>
  request('POST', renewalsUrl(referralId), token, { additionalVisits: 6, extendWeeks: 4, justification: 'ODI 44 → 30; goal ≤ 20 not met yet', ...body });
const approve = (referralId: string, requestId: string, body: Json = {}, token = office.physician.token) =>
  request('POST', `${renewalsUrl(referralId)}/${requestId}/approve`, token, { attestation: true, ...body });
const deny = (referralId: string, requestId: string, reason = 'Re-evaluate first', token = office.physician.token) =>
  request('POST', `${renewalsUrl(referralId)}/${requestId}/deny`, token, { reason });
async function expire(referralId: string, daysAgo: number) {
  await test.app.database.rows(sql`update referrals set start_date = ${isoDate(-daysAgo - 20)}, expires_on = ${isoDate(-daysAgo)} where id = ${referralId}::uuid`);
  await test.app.expireReferrals();
}

t.test('request, approve: visits rise, expiresOn moves by the weeks, the version bumps, the history says renew', async (t) => {
  const referral = await acceptedReferral();
  const asked = await ask(referral.id);
  const created = expectStatus(t, asked, 201, 'the therapist asks');
  t.equal(asked.headers.location, `${renewalsUrl(referral.id)}/${created.id}`);
  t.match(created, { status: 'pending', requestedBy: practice.therapist.id, additionalVisits: 6, extendWeeks: 4, reportId: null, decision: null });
  const second = assertProblem(t, await ask(referral.id), 409);
  t.equal(second.code, 'renewal-pending', 'one pending at a time');

  const before = await read(referral.id);
  const approved = expectStatus(t, await approve(referral.id, created.id), 200, 'the prescriber approves');
  t.match(approved, { status: 'approved', decision: { decidedBy: office.physician.id, approvedVisits: 6, approvedWeeks: 4, reason: null, attestation: /I order the additional care/ } });
  const after = await read(referral.id);
  t.equal(after.visitsAuthorized, before.visitsAuthorized + 6);
  const moved = new Date(Date.parse(`${before.expiresOn}T00:00:00Z`) + 28 * 86_400_000).toISOString().slice(0, 10);
  t.equal(after.expiresOn, moved, 'expiresOn moved by 4 weeks');
  t.ok(after.version > before.version, 'the version bumped');
  t.equal(after.status, 'accepted', 'the status is kept');
  const renew = (await history(referral.id)).find((event) => event.action === 'renew');
  t.match(renew, { actor: { id: office.physician.id }, changes: { requestId: created.id, visitsAuthorized: { from: before.visitsAuthorized, to: after.visitsAuthorized }, expiresOn: { from: before.expiresOn, to: moved } } });
  t.equal(assertProblem(t, await approve(referral.id, created.id), 409).code, 'renewal-decided', 'decided once');
  t.equal(assertProblem(t, await deny(referral.id, created.id), 409).code, 'renewal-decided');

  // Another request may follow; the prescriber may approve fewer visits than asked.
  const next = expectStatus(t, await ask(referral.id, { additionalVisits: 10, extendWeeks: 0 }), 201, 'a second request after the first was decided');
  const fewer = expectStatus(t, await approve(referral.id, next.id, { additionalVisits: 3 }, signingEhr.token), 200, "the office's EHR approves fewer");
  t.match(fewer.decision, { approvedVisits: 3, approvedWeeks: 0, attestation: /EHR attests/ });
  t.equal((await read(referral.id)).visitsAuthorized, after.visitsAuthorized + 3);

  // The office's EHR hears of both requests and both decisions (SPEC §8: renewal.requested, renewal.decided).
  const requested = await feedPayloads(test, office.admin.token, 'renewal.requested', referral.id);
  const decided = await feedPayloads(test, office.admin.token, 'renewal.decided', referral.id);
  const told = (payloads: Json[]) => payloads.map((payload) => ({ resource: payload.data.resource, id: payload.data.id, url: payload.data.url }));
  const both = [created, next].map((renewal) => ({ resource: 'renewal_request', id: renewal.id, url: `${renewalsUrl(referral.id)}/${renewal.id}` }));
  t.same(told(requested), both, 'renewal.requested, once per request, in its events feed');
  t.same(told(decided), both, 'renewal.decided, once per decision');

  const listed = expectStatus(t, await request('GET', renewalsUrl(referral.id), practice.therapist.token), 200, 'the therapist lists');
  t.same(listed.data.map((item: Json) => item.status), ['approved', 'approved']);
  const reads = (await auditEvents(test, { action: 'renewal.read', actorId: practice.therapist.id })) as Json[];
  t.same(reads.filter((event) => event.resourceId === created.id || event.resourceId === next.id).map((event) => event.patientId), [referral.patientId, referral.patientId], 'each listed request is an audited read of the patient');
  t.same(expectStatus(t, await request('GET', `${renewalsUrl(referral.id)}/${next.id}`, office.physician.token), 200, 'read one'), fewer);
});

t.test('deny: with a reason, nothing else changes', async (t) => {
  const referral = await acceptedReferral();
  const created = expectStatus(t, await ask(referral.id), 201, 'asked');
  const before = await read(referral.id);
  const denied = expectStatus(t, await deny(referral.id, created.id, 'Refer back for re-evaluation'), 200, 'denied');
  t.match(denied, { status: 'denied', decision: { reason: 'Refer back for re-evaluation', approvedVisits: null } });
  const after = await read(referral.id);
  t.same([after.visitsAuthorized, after.expiresOn, after.status], [before.visitsAuthorized, before.expiresOn, before.status]);
  t.match((await history(referral.id)).at(-1), { action: 'deny_renewal', reason: 'Refer back for re-evaluation', changes: { requestId: created.id } });
  assertProblem(t, await request('POST', `${renewalsUrl(referral.id)}/${created.id}/deny`, office.physician.token, {}), 400, ['reason']);
});

t.test('an expired referral: renewed within 30 days and reopened as in_progress; not after', async (t) => {
  const referral = await acceptedReferral();
  await request('POST', `/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, measuredVisitNoteBody({ visitDate: isoDate(-25) }));
  await expire(referral.id, 10);
  t.equal((await read(referral.id)).status, 'expired');
  const created = expectStatus(t, await ask(referral.id, { extendWeeks: 2 }), 201, 'asked 10 days after expiry');
  expectStatus(t, await approve(referral.id, created.id), 200, 'approved');
  const reopened = await read(referral.id);
  t.equal(reopened.status, 'in_progress', 'reopened as in_progress');
  t.equal(reopened.expiresOn, isoDate(14), 'extended from today, not from the past expiry');
  t.match((await history(referral.id)).at(-1), { action: 'renew', fromStatus: 'expired', toStatus: 'in_progress' });
  expectStatus(t, await request('POST', `/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, measuredVisitNoteBody()), 201, 'visits go on');

  const stale = await acceptedReferral();
  await expire(stale.id, 31);
  const closed = assertProblem(t, await ask(stale.id), 409);
  t.match(closed, { code: 'renewal-window-closed', detail: /continuesReferralId/ });

  // Asked in time, decided after the window closed: refused then too.
  const late = await acceptedReferral();
  await expire(late.id, 29);
  const pending = expectStatus(t, await ask(late.id), 201, 'asked on day 29');
  await test.app.database.rows(sql`update referrals set start_date = ${isoDate(-60)}, expires_on = ${isoDate(-31)} where id = ${late.id}::uuid`);
  t.equal(assertProblem(t, await approve(late.id, pending.id), 409).code, 'renewal-window-closed');
});

t.test('two approvals at once raise the visits once', async (t) => {
  for (let round = 0; round < 4; round++) {
    const referral = await acceptedReferral();
    const created = expectStatus(t, await ask(referral.id), 201, 'asked');
    const before = await read(referral.id);
    const answers = await Promise.all([approve(referral.id, created.id), approve(referral.id, created.id, {}, signingEhr.token)]);
    t.same(answers.map((answer) => answer.statusCode).sort(), [200, 409], `round ${round}: one approval wins`);
    t.equal((await read(referral.id)).visitsAuthorized, before.visitsAuthorized + 6, `round ${round}: raised once`);
    t.equal((await history(referral.id)).filter((event) => event.action === 'renew').length, 1);
  }
});

t.test('who may ask and decide; outsiders get 404, audited', async (t) => {
  const referral = await acceptedReferral();
  for (const [who, token] of [
    ['a colleague of the accepting therapist', colleague.token],
    ['the practice admin', practice.admin.token],
    ['a therapist of another practice', otherPractice.therapist.token],
    ['the physician', office.physician.token],
  ] as const) {
    assertProblem(t, await ask(referral.id, {}, token), 404, [], `${who} cannot ask`);
  }
  const created = expectStatus(t, await ask(referral.id), 201, 'asked');
  assertProblem(t, await approve(referral.id, created.id, {}, practice.therapist.token), 403, [], 'the therapist cannot approve');
  assertProblem(t, await approve(referral.id, created.id, {}, office.staff.token), 403, [], 'office staff cannot approve');
  assertProblem(t, await approve(referral.id, created.id, {}, otherOffice.physician.token), 404, [], 'a physician of another office gets 404');
  assertProblem(t, await request('GET', renewalsUrl(referral.id), otherPractice.admin.token), 404, [], 'another practice cannot list');
  assertProblem(t, await request('GET', `${renewalsUrl(referral.id)}/${created.id}`, otherOffice.physician.token), 404, [], 'another office cannot read');
  assertProblem(t, await approve(referral.id, crypto.randomUUID()), 404, [], 'an unknown request');
  const denied = (await auditEvents(test, { resourceId: referral.id, outcome: 'denied' })) as Json[];
  t.ok(denied.some((event) => event.actorId === otherOffice.physician.id && event.action === 'renewal.approve'), 'the outside approval is audited');
  t.ok(denied.some((event) => event.actorId === otherPractice.therapist.id && event.action === 'renewal.request'), 'the outside request is audited');

  for (const [what, body, fields] of [
    ['0 additional visits', { additionalVisits: 0 }, ['additionalVisits']],
    ['101 additional visits', { additionalVisits: 101 }, ['additionalVisits']],
    ['53 weeks', { extendWeeks: 53 }, ['extendWeeks']],
    ['no justification', { justification: '' }, ['justification']],
    ['a report of another referral', { reportId: crypto.randomUUID() }, ['reportId']],
  ] as const) {
    assertProblem(t, await ask(referral.id, body), 400, [...fields], what);
  }
  assertProblem(t, await approve(referral.id, created.id, { attestation: false }), 400, ['attestation']);
  assertProblem(t, await approve(referral.id, created.id, { additionalVisits: 0 }), 400, ['additionalVisits']);
  t.equal((await read(referral.id)).visitsAuthorized, referral.visitsAuthorized, 'nothing changed');
});

t.test('a request may name a report of the referral that backs it', async (t) => {
  const referral = await acceptedReferral();
  const report = expectStatus(t, await request('POST', `/v1/referrals/${referral.id}/reports`, practice.therapist.token, {
    kind: 'progress', summary: 'Improving', goals: [{ description: 'Reduce disability', status: 'progressing' }], recommendation: 'continue',
  }), 201, 'a progress report');
  const created = expectStatus(t, await ask(referral.id, { reportId: report.id }), 201, 'asked with the report');
  t.equal(created.reportId, report.id);
});

t.test('continuesReferralId: a new course continues a completed one of the same patient; both show the link', async (t) => {
  const first = await acceptedReferral();
  await request('POST', `/v1/referrals/${first.id}/reports`, practice.therapist.token, {
    kind: 'discharge', summary: 'Plateau', goals: [{ description: 'Reduce disability', status: 'not_met' }], recommendation: 'modify', reason: 'plateau',
  });
  t.equal((await read(first.id)).status, 'completed');
  const body = (overrides: Json) => referralBody({ patient: undefined, patientId: first.patientId, practiceId: practice.id, continuesReferralId: first.id, ...overrides });
  const second = await test.create('/v1/referrals', office.physician.token, body({}));
  t.equal(second.continuesReferralId, first.id);
  const earlier = await read(first.id);
  t.equal(earlier.continuedByReferralId, second.id, 'the earlier course shows the link');
  t.ok(earlier.version > first.version, "the earlier course's version moved, so syncing clients see the link");
  t.match((await history(first.id)).at(-1), { action: 'continue', changes: { continuedByReferralId: second.id } });
  t.equal(assertProblem(t, await request('POST', '/v1/referrals', office.physician.token, body({})), 409).code, 'already-continued', 'a course is continued once');

  const open = await acceptedReferral();
  assertProblem(t, await request('POST', '/v1/referrals', office.physician.token, body({ patientId: open.patientId, continuesReferralId: open.id })), 400, ['continuesReferralId'], 'an open course');
  const otherPatient = await test.create('/v1/patients', office.physician.token, { givenName: 'Ana', familyName: 'Lima', birthDate: '1990-05-05', sex: 'female' });
  assertProblem(t, await request('POST', '/v1/referrals', office.physician.token, body({ patientId: otherPatient.id })), 400, ['continuesReferralId'], 'another patient');
  assertProblem(t, await request('POST', '/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, continuesReferralId: first.id })), 400, ['continuesReferralId'], 'an inline new patient');
  const foreign = await test.create('/v1/patients', otherOffice.physician.token, { givenName: 'Ola', familyName: 'Berg', birthDate: '1960-01-01', sex: 'male' });
  assertProblem(t, await request('POST', '/v1/referrals', otherOffice.physician.token, referralBody({ patient: undefined, patientId: foreign.id, practiceId: practice.id, continuesReferralId: first.id })), 400, ['continuesReferralId'], 'a referral of another office');
});

t.test('If-Match: an approval against a stale version of the referral is 412 and changes nothing', async (t) => {
  const referral = await acceptedReferral();
  const created = expectStatus(t, await ask(referral.id), 201, 'asked');
  const current = await read(referral.id);
  const stale = await test.request({ method: 'POST', url: `${renewalsUrl(referral.id)}/${created.id}/approve`, token: office.physician.token, headers: { 'if-match': '"99"' }, payload: { attestation: true } });
  t.equal(assertProblem(t, stale, 412).currentVersion, current.version);
  t.equal((await read(referral.id)).visitsAuthorized, current.visitsAuthorized, 'nothing raised');
  t.equal((await request('GET', `${renewalsUrl(referral.id)}/${created.id}`, office.physician.token)).json().status, 'pending', 'still pending');
  const fresh = await test.request({ method: 'POST', url: `${renewalsUrl(referral.id)}/${created.id}/approve`, token: office.physician.token, headers: { 'if-match': `"${current.version}"` }, payload: { attestation: true } });
  expectStatus(t, fresh, 200, 'approved against the current version');
});
