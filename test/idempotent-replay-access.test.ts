// A replay of an Idempotency-Key re-checks that the caller may still see what the first answer was
// about (issue 12 item 5): access lost since then answers the 404 a fresh request gets, audited as
// denied; a caller who still sees the record still gets the replay.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { createOffice, createPractice } from './fixtures/network.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { auditEvents, buildTestApp, type Json, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const second = await createPractice(test, networkAdmin);

const newKey = () => `key-${randomBytes(8).toString('hex')}`;
const reason = `Chronic low back pain ${randomBytes(3).toString('hex')}`;
const patient = { givenName: 'Rosalind', familyName: `Quist-${randomBytes(3).toString('hex')}`, birthDate: '1961-09-17', sex: 'female' };

function post(url: string, token: string, payload?: Json, key?: string): Promise<Response> {
  return test.request({ method: 'POST', url, token, ...(payload ? { payload } : {}), headers: key ? { 'idempotency-key': key } : {} });
}

/** A referral from the office sent straight to the practice's therapist. */
async function sentToTherapist(): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ patient, reason, therapistId: practice.therapist.id, send: true }));
}

function assertNothingOfTheReferral(t: Test, response: Response) {
  t.notOk(response.body.includes(reason), 'nothing of the order is shown');
  t.notOk(response.body.includes(patient.familyName), 'the patient is not named');
  t.notOk(response.body.includes(patient.birthDate), 'nor their birth date shown');
}

t.test('POST /v1/referrals/{id}/decline › a replay after the office rerouted the referral away is the 404 a fresh call gets, audited as denied', async (t) => {
  const referral = await sentToTherapist();
  const key = newKey();
  const decline = (withKey?: string) => post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'Fully booked' }, withKey);
  const declined = await decline(key);
  t.equal(declined.statusCode, 200, 'the therapist declines');
  t.ok(declined.body.includes(reason), 'the first answer shows the order, as it may');

  const rerouted = await post(`/v1/referrals/${referral.id}/reroute`, office.physician.token, { practiceId: second.id });
  t.equal(rerouted.statusCode, 200, 'the office reroutes to another practice');
  const read = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: practice.therapist.token });
  t.equal(read.statusCode, 404, 'the therapist no longer sees the referral');

  const replay = await decline(key);
  t.equal(replay.statusCode, 404, `the replay answers 404 (got ${replay.statusCode})`);
  t.match(replay.headers['content-type'], /^application\/problem\+json/);
  t.equal(replay.headers['idempotent-replayed'], undefined, 'not a replay of the first answer');
  assertNothingOfTheReferral(t, replay);

  const denied = await auditEvents(test, { action: 'referral.decline', outcome: 'denied', actorId: practice.therapist.id, resourceId: referral.id });
  t.equal(denied.length, 1, 'the attempt is audited as denied');
  t.equal(denied[0]?.httpStatus, 404);
  t.equal(denied[0]?.patientId, referral.patientId, 'against the patient whose data it would have shown');
  const replays = await auditEvents(test, { action: 'idempotency.replay', actorId: practice.therapist.id, resourceId: referral.id });
  t.equal(replays.length, 0, 'no replay was shown');

  const fresh = await decline();
  t.equal(fresh.statusCode, 404, 'a fresh decline is 404 too');
  const { requestId: _a, ...replayProblem } = replay.json();
  const { requestId: _b, ...freshProblem } = fresh.json();
  t.same(replayProblem, freshProblem, 'the same problem a fresh call answers');
});

t.test('POST /v1/referrals/{id}/decline › a replay while the therapist still sees the referral replays the first answer', async (t) => {
  const referral = await sentToTherapist();
  const key = newKey();
  const first = await post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'Fully booked' }, key);
  const replay = await post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'Fully booked' }, key);
  t.equal(replay.statusCode, 200);
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(replay.body, first.body, 'the first answer, byte for byte');
});

t.test('POST /v1/referrals/{id}/reroute › the office, which still sees the referral, gets its replay after the change', async (t) => {
  const referral = await sentToTherapist();
  await post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'Fully booked' });
  const key = newKey();
  const first = await post(`/v1/referrals/${referral.id}/reroute`, office.physician.token, { practiceId: second.id }, key);
  t.equal(first.statusCode, 200);
  const replay = await post(`/v1/referrals/${referral.id}/reroute`, office.physician.token, { practiceId: second.id }, key);
  t.equal(replay.statusCode, 200);
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(replay.body, first.body);
  t.equal((await auditEvents(test, { action: 'idempotency.replay', outcome: 'success', actorId: office.physician.id, resourceId: referral.id })).length, 1, 'the replay is audited');
});

t.test('POST /v1/webhook-endpoints/{id}/test › the same check covers other records: a replay after the endpoint was deleted is 404', async (t) => {
  const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, { url: 'https://ehr.example/hooks', eventTypes: ['referral.sent'] });
  const key = newKey();
  const ping = () => post(`/v1/webhook-endpoints/${endpoint.id}/test`, office.admin.token, undefined, key);
  const first = await ping();
  t.equal(first.statusCode, 202);
  const stillThere = await ping();
  t.equal(stillThere.headers['idempotent-replayed'], 'true', 'replayed while the endpoint exists');
  t.equal(stillThere.body, first.body);

  const deleted = await test.request({ method: 'DELETE', url: `/v1/webhook-endpoints/${endpoint.id}`, token: office.admin.token });
  t.equal(deleted.statusCode, 204);
  const replay = await ping();
  t.equal(replay.statusCode, 404, `404 once it is gone (got ${replay.statusCode})`);
  t.equal(replay.headers['idempotent-replayed'], undefined);
  const denied = await auditEvents(test, { action: 'webhook_endpoint.test', outcome: 'denied', actorId: office.admin.id, resourceId: endpoint.id });
  t.equal(denied.length, 1, 'audited as denied');
});
