// Idempotency-Key on every POST (SPEC §10): a repeat with the same key and body replays the first
// response and does not act twice; the same key with another body is 422; keys are per caller;
// the token endpoint is left out.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, defaultPassword, type Json, type TestResponse as Response } from './helper.js';
import { withParametersInline } from './fixtures/openapi-parameters.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

/** An API client of `office` that may write referrals and patients, signed in. */
const client = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write', 'patients:read', 'patients:write'], 'Partner EHR');

const newKey = () => `key-${randomBytes(8).toString('hex')}`;
const tag = () => randomBytes(4).toString('hex');

function post(url: string, token: string, payload: Json | undefined, key?: string): Promise<Response> {
  return test.request({
    method: 'POST',
    url,
    token,
    ...(payload === undefined ? {} : { payload }),
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });
}

/** A referral body whose reason carries a unique marker, so the referrals it made can be counted. */
const markedReferral = (marker: string, overrides: Json = {}): Json =>
  referralBody({
    patient: { givenName: 'Maria', familyName: `Gomez-${marker}`, birthDate: '1978-04-02', sex: 'female' },
    reason: `Chronic low back pain ${marker}`,
    practiceId: practice.id,
    send: true,
    ...overrides,
  });

const count = async (query: ReturnType<typeof sql>) => Number((await test.app.database.rows<{ n: number }>(query))[0]!.n);
const referralsWith = (marker: string) => count(sql`select count(*)::int as n from referrals where reason = ${`Chronic low back pain ${marker}`}`);
const patientsWith = (marker: string) => count(sql`select count(*)::int as n from patients where family_name = ${`Gomez-${marker}`}`);

/** A referral from `office` to `practice`, sent (or a draft). */
async function referral(send = true): Promise<Json> {
  return requireStatus(await post('/v1/referrals', office.physician.token, markedReferral(tag(), { send })), 201, 'create referral');
}

async function accepted(): Promise<Json> {
  const sent = await referral();
  return requireStatus(await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {}), 200, 'accept');
}

async function history(referralId: string): Promise<string[]> {
  const page = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}/history?limit=200`, token: office.physician.token }), 200, 'history');
  return page.data.map((event: Json) => event.action);
}

/** Asserts the second response is a replay of the first: same status, bytes and headers, marked replayed. */
function assertReplay(t: Test, first: Response, second: Response) {
  t.equal(second.statusCode, first.statusCode, `same status ${first.statusCode}`);
  t.equal(second.body, first.body, 'byte-equal body');
  for (const header of ['content-type', 'location', 'etag']) t.equal(second.headers[header], first.headers[header], `same ${header}`);
  t.equal(second.headers['idempotent-replayed'], 'true', 'marked idempotent-replayed: true');
  t.equal(first.headers['idempotent-replayed'], undefined, 'the first response is not marked replayed');
}

function assertFresh(t: Test, response: Response, status: number) {
  t.equal(response.statusCode, status, `answers ${status} (${response.body.slice(0, 200)})`);
  t.equal(response.headers['idempotent-replayed'], undefined, 'not a replay');
}

t.test('POST /v1/referrals with an Idempotency-Key: a repeat replays the first 201 and creates nothing', async (t) => {
  const marker = tag();
  const key = newKey();
  const first = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
  assertFresh(t, first, 201);
  const created = first.json();
  t.equal(first.headers.location, `/v1/referrals/${created.id}`);
  t.ok(first.headers.etag, 'with an ETag');

  const second = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
  assertReplay(t, first, second);
  const third = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
  assertReplay(t, first, third);

  t.equal(await referralsWith(marker), 1, 'one referral in the database');
  t.equal(await patientsWith(marker), 1, 'one inline patient registered');
  const listed = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals?limit=200&patientId=${created.patientId}`, token: office.physician.token }), 200, 'list');
  t.same(listed.data.map((row: Json) => row.id), [created.id], 'the list shows the one referral');
  t.equal((await auditEvents(test, { action: 'referral.create', resourceId: created.id })).length, 1, 'created (and audited) once');

  t.test('the same body with its keys in another order is the same request', async (t) => {
    const reordered = Object.fromEntries(Object.entries(markedReferral(marker)).reverse());
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, reordered, key));
  });

  t.test('a replay shows patient data again, so it is audited', async (t) => {
    const before = await auditEvents(test, { action: 'idempotency.replay', actorId: office.physician.id });
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
    const after = await auditEvents(test, { action: 'idempotency.replay', actorId: office.physician.id });
    // One per record the first request was audited against: the patient it registered and the referral.
    t.equal(after.length, before.length + 2, 'one idempotency.replay event per record shown');
    t.ok(
      after.some((event) => event.outcome === 'success' && event.httpStatus === 201 && event.resourceId?.includes(created.id)),
      'a success naming the referral it shows',
    );
  });

  t.test('a replay is found under the patient whose data it shows', async (t) => {
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
    const replays = (await auditEvents(test, { action: 'idempotency.replay', actorId: office.physician.id })).filter((event) => event.resourceId?.includes(created.id));
    t.ok(replays.length > 0, 'the replays are audited');
    t.ok(replays.every((event) => event.patientId === created.patientId), 'each names the patient');
    t.ok(replays.every((event) => event.resourceType === 'referral' && event.resourceId === created.id), 'and the referral, as its other events do');
  });
});

t.test('the same key with another request is 422 and changes nothing', async (t) => {
  const marker = tag();
  const key = newKey();
  const first = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
  assertFresh(t, first, 201);

  const otherMarker = tag();
  const different = await post('/v1/referrals', office.physician.token, markedReferral(otherMarker), key);
  assertProblem(t, different, 422);
  t.equal(different.headers['idempotent-replayed'], undefined);
  t.match(different.json().detail, key, 'naming the key');
  t.equal(await referralsWith(otherMarker), 0, 'the other body created no referral');
  t.equal(await patientsWith(otherMarker), 0, 'nor a patient');

  t.test('the same key on another route is another request too', async (t) => {
    const onPatients = await post('/v1/patients', office.physician.token, { givenName: 'Ana', familyName: `Other-${otherMarker}`, birthDate: '1980-01-01', sex: 'female' }, key);
    assertProblem(t, onPatients, 422);
    t.equal(await count(sql`select count(*)::int as n from patients where family_name = ${`Other-${otherMarker}`}`), 0);
  });

  t.test('the key still replays its first response', async (t) => {
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
    t.equal(await referralsWith(marker), 1);
  });
});

t.test('keys are scoped to the caller: another user or an API client with the same key and body gets its own 201', async (t) => {
  const marker = tag();
  const key = newKey();
  // Drafts: only the physician's own order is signed, and only a signed one may be sent at once.
  const body = markedReferral(marker, { prescriberId: office.physician.id, send: false });
  const byPhysician = await post('/v1/referrals', office.physician.token, body, key);
  const byStaff = await post('/v1/referrals', office.staff.token, body, key);
  const byClient = await post('/v1/referrals', client.token, body, key);
  for (const response of [byPhysician, byStaff, byClient]) assertFresh(t, response, 201);
  const ids = [byPhysician, byStaff, byClient].map((response) => response.json().id);
  t.equal(new Set(ids).size, 3, 'three different referrals');
  t.equal(await referralsWith(marker), 3);
  const creators = await test.app.database.rows<{ id: string; created_by: string }>(sql`select id, created_by from referrals where id in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`);
  t.same(
    ids.map((id) => creators.find((row) => row.id === id)?.created_by),
    [office.physician.id, office.staff.id, client.id],
    'each made by its own caller',
  );

  t.test('and each caller replays its own first response', async (t) => {
    assertReplay(t, byStaff, await post('/v1/referrals', office.staff.token, body, key));
    assertReplay(t, byClient, await post('/v1/referrals', client.token, body, key));
    assertReplay(t, byPhysician, await post('/v1/referrals', office.physician.token, body, key));
    t.equal(await referralsWith(marker), 3);
  });
});

t.test('every POST of the referral workflow replays instead of acting twice', async (t) => {
  t.test('send: a draft is sent once', async (t) => {
    const draft = await referral(false);
    const key = newKey();
    const first = await post(`/v1/referrals/${draft.id}/send`, office.physician.token, undefined, key);
    assertFresh(t, first, 200);
    t.equal(first.json().status, 'sent');
    assertReplay(t, first, await post(`/v1/referrals/${draft.id}/send`, office.physician.token, undefined, key));
    t.same(await history(draft.id), ['create', 'send']);
  });

  t.test('sign: a repeat returns the first 200, not 409 already-signed; signed and sent once', async (t) => {
    // A draft the office staff prepared for the physician: unsigned until the physician signs (SPEC §14.1).
    const draft = requireStatus(await post('/v1/referrals', office.staff.token, markedReferral(tag(), { prescriberId: office.physician.id, send: false })), 201, 'staff draft');
    t.equal(draft.signature, null, 'the draft is unsigned');
    const key = newKey();
    const payload = { attestation: true, send: true };
    const first = await post(`/v1/referrals/${draft.id}/sign`, office.physician.token, payload, key);
    assertFresh(t, first, 200);
    t.match(first.json(), { status: 'sent', signature: { signedBy: office.physician.id, method: 'physician' } });
    assertReplay(t, first, await post(`/v1/referrals/${draft.id}/sign`, office.physician.token, payload, key));
    t.same(await history(draft.id), ['create', 'sign', 'send']);
    const withoutKey = await post(`/v1/referrals/${draft.id}/sign`, office.physician.token, payload);
    assertProblem(t, withoutKey, 409);
    t.equal(withoutKey.json().code, 'already-signed', 'without the key the repeat is a second signature');
  });

  t.test('accept: a repeat returns the first 200, not a 409', async (t) => {
    const sent = await referral();
    const key = newKey();
    const first = await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {}, key);
    assertFresh(t, first, 200);
    t.equal(first.json().status, 'accepted');
    assertReplay(t, first, await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {}, key));
    t.same(await history(sent.id), ['create', 'send', 'accept']);
    const withoutKey = await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {});
    assertProblem(t, withoutKey, 409);
    t.equal(withoutKey.json().code, 'illegal-transition', 'without the key the repeat is an illegal move');
  });

  t.test('decline, then reroute: each applied once', async (t) => {
    const sent = await referral();
    const declineKey = newKey();
    const declined = await post(`/v1/referrals/${sent.id}/decline`, practice.therapist.token, { reason: 'No availability this month' }, declineKey);
    assertFresh(t, declined, 200);
    t.equal(declined.json().status, 'declined');
    assertReplay(t, declined, await post(`/v1/referrals/${sent.id}/decline`, practice.therapist.token, { reason: 'No availability this month' }, declineKey));

    const rerouteKey = newKey();
    const rerouted = await post(`/v1/referrals/${sent.id}/reroute`, office.physician.token, { practiceId: practice.id, reason: 'Try again next month' }, rerouteKey);
    assertFresh(t, rerouted, 200);
    t.equal(rerouted.json().status, 'sent');
    assertReplay(t, rerouted, await post(`/v1/referrals/${sent.id}/reroute`, office.physician.token, { practiceId: practice.id, reason: 'Try again next month' }, rerouteKey));
    t.same(await history(sent.id), ['create', 'send', 'decline', 'reroute']);
    t.equal(rerouted.json().version, declined.json().version + 1, 'one version step each');
  });

  t.test('cancel: cancelled once', async (t) => {
    const sent = await referral();
    const key = newKey();
    const first = await post(`/v1/referrals/${sent.id}/cancel`, office.physician.token, { reason: 'Patient moved' }, key);
    assertFresh(t, first, 200);
    assertReplay(t, first, await post(`/v1/referrals/${sent.id}/cancel`, office.physician.token, { reason: 'Patient moved' }, key));
    t.same(await history(sent.id), ['create', 'send', 'cancel']);
  });

  t.test('progress-reports: a repeated visit note makes one visit, not two', async (t) => {
    const current = await accepted();
    const note = visitNoteBody();
    const url = `/v1/referrals/${current.id}/progress-reports`;
    const key = newKey();
    const first = await post(url, practice.therapist.token, note, key);
    assertFresh(t, first, 201);
    t.equal(first.json().visitNumber, 1);
    assertReplay(t, first, await post(url, practice.therapist.token, note, key));
    const notes = requireStatus(await test.request({ method: 'GET', url, token: office.physician.token }), 200, 'notes');
    t.same(notes.data.map((report: Json) => report.visitNumber), [1], 'one visit');
    const summary = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${current.id}`, token: office.physician.token }), 200, 'referral');
    t.equal(summary.status, 'in_progress');
    const again = await post(url, practice.therapist.token, note);
    assertFresh(t, again, 201);
    t.equal(again.json().visitNumber, 2, 'without the key the same note is a second visit');

    t.test('addenda: a repeated correction is attached once', async (t) => {
      const addendaUrl = `${url}/${first.json().id}/addenda`;
      const key = newKey();
      const added = await post(addendaUrl, practice.therapist.token, { text: 'Correction: pain after was 3/10' }, key);
      assertFresh(t, added, 201);
      assertReplay(t, added, await post(addendaUrl, practice.therapist.token, { text: 'Correction: pain after was 3/10' }, key));
      const listed = requireStatus(await test.request({ method: 'GET', url, token: office.physician.token }), 200, 'notes');
      t.same(listed.data.find((report: Json) => report.id === first.json().id).addenda.map((addendum: Json) => addendum.id), [added.json().id]);
    });
  });

  t.test('messages: a repeated message is posted once; messages/read replays', async (t) => {
    const current = await accepted();
    const url = `/v1/referrals/${current.id}/messages`;
    const key = newKey();
    const first = await post(url, office.physician.token, { body: 'Please call the patient before the first visit' }, key);
    assertFresh(t, first, 201);
    assertReplay(t, first, await post(url, office.physician.token, { body: 'Please call the patient before the first visit' }, key));
    const thread = requireStatus(await test.request({ method: 'GET', url, token: practice.therapist.token }), 200, 'thread');
    t.same(thread.data.map((message: Json) => message.id), [first.json().id], 'one message in the thread');
    t.equal(thread.unread, 1);

    const readKey = newKey();
    const read = await post(`${url}/read`, practice.therapist.token, {}, readKey);
    assertFresh(t, read, 200);
    t.match(read.json(), { unread: 0, lastReadMessageId: first.json().id });
    assertReplay(t, read, await post(`${url}/read`, practice.therapist.token, {}, readKey));
    const marks = await auditEvents(test, { action: 'message.mark_read', actorId: practice.therapist.id, resourceId: current.id });
    t.equal(marks.length, 1, 'marked read once');
  });

  t.test('POST /v1/patients: a repeat returns the first patient and registers no second', async (t) => {
    const marker = tag();
    const body = { givenName: 'Ana', familyName: `Gomez-${marker}`, birthDate: '1980-01-01', sex: 'female' };
    const key = newKey();
    const first = await post('/v1/patients', office.staff.token, body, key);
    assertFresh(t, first, 201);
    assertReplay(t, first, await post('/v1/patients', office.staff.token, body, key));
    t.equal(await patientsWith(marker), 1);
  });
});

t.test('error responses are kept and replayed too', async (t) => {
  t.test('a 409 illegal transition replays as the same 409', async (t) => {
    const sent = await referral();
    requireStatus(await post(`/v1/referrals/${sent.id}/cancel`, office.physician.token, { reason: 'Patient moved' }), 200, 'cancel');
    const key = newKey();
    const first = await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {}, key);
    assertProblem(t, first, 409);
    t.equal(first.json().code, 'illegal-transition');
    const second = await post(`/v1/referrals/${sent.id}/accept`, practice.therapist.token, {}, key);
    assertReplay(t, first, second);
    t.match(second.headers['content-type'], /^application\/problem\+json/);
  });

  t.test("a 404 for a referral outside the caller's reach replays as the same 404", async (t) => {
    const key = newKey();
    const url = '/v1/referrals/00000000-0000-4000-8000-000000000000/cancel';
    const first = await post(url, office.physician.token, { reason: 'x' }, key);
    assertProblem(t, first, 404);
    assertReplay(t, first, await post(url, office.physician.token, { reason: 'x' }, key));
  });

  t.test('a request refused by schema validation (400) never claims its key', async (t) => {
    const marker = tag();
    const key = newKey();
    assertProblem(t, await post('/v1/referrals', office.physician.token, markedReferral(marker, { frequencyPerWeek: 9 }), key), 400, ['frequencyPerWeek']);
    const corrected = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
    assertFresh(t, corrected, 201);
    t.equal(await referralsWith(marker), 1);
  });
});

t.test('a 5xx is not kept: a retry with the same key runs again', async (t) => {
  const current = await accepted();
  const url = `/v1/referrals/${current.id}/messages`;
  const body = { body: `Simulated outage ${tag()}` };
  const key = newKey();
  const rows = (query: ReturnType<typeof sql>) => test.app.database.rows(query);
  // A database failure on this one insert, as an outage would cause.
  await rows(sql`create function fail_message_insert() returns trigger language plpgsql as $$ begin raise exception 'simulated outage'; end $$`);
  await rows(sql`create trigger fail_message_insert before insert on messages for each row execute function fail_message_insert()`);
  let failed: Response;
  try {
    failed = await post(url, office.physician.token, body, key);
  } finally {
    await rows(sql`drop trigger fail_message_insert on messages`);
    await rows(sql`drop function fail_message_insert()`);
  }
  assertProblem(t, failed, 500);
  t.notMatch(failed.body, /simulated outage/, 'the cause is not shown');
  t.equal(await count(sql`select count(*)::int as n from idempotency_records where key = ${key}`), 0, 'no record of the key is kept');

  const retried = await post(url, office.physician.token, body, key);
  assertFresh(t, retried, 201);
  const thread = requireStatus(await test.request({ method: 'GET', url, token: office.physician.token }), 200, 'thread');
  t.same(thread.data.map((message: Json) => message.id), [retried.json().id], 'one message, from the retry');
  assertReplay(t, retried, await post(url, office.physician.token, body, key));
});

t.test('the same key fired 5 times at once creates exactly one referral', async (t) => {
  const marker = tag();
  const key = newKey();
  const responses = await Promise.all(Array.from({ length: 5 }, () => post('/v1/referrals', office.physician.token, markedReferral(marker), key)));
  const created = responses.filter((response) => response.statusCode === 201);
  const busy = responses.filter((response) => response.statusCode === 409);
  t.equal(created.length + busy.length, 5, `every answer is a 201 or a 409 (got ${responses.map((response) => response.statusCode)})`);
  t.ok(created.length >= 1, 'at least one 201');
  t.equal(created.filter((response) => response.headers['idempotent-replayed'] === undefined).length, 1, 'exactly one ran');
  t.equal(new Set(created.map((response) => response.body)).size, 1, 'every 201 is the same response');
  for (const response of busy) {
    t.match(response.headers['content-type'], /^application\/problem\+json/);
    t.equal(response.json().code, 'idempotency-in-progress');
    t.equal(response.headers['retry-after'], '1', 'asks to retry shortly');
  }
  t.equal(await referralsWith(marker), 1, 'one referral');
  t.equal(await patientsWith(marker), 1, 'one patient');
  const retried = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
  assertReplay(t, created[0]!, retried);
});

t.test('claims that are stale or abandoned', async (t) => {
  const setRecord = (key: string, changes: ReturnType<typeof sql>) =>
    test.app.database.rows(sql`update idempotency_records set ${changes} where key = ${key} and caller_key = ${`user:${office.physician.id}`}`);

  t.test('a claim still in progress answers 409 idempotency-in-progress with Retry-After', async (t) => {
    const marker = tag();
    const key = newKey();
    assertFresh(t, await post('/v1/referrals', office.physician.token, markedReferral(marker), key), 201);
    await setRecord(key, sql`state = 'in_progress', status_code = null, response_body = null, response_headers = null`);
    const busy = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
    assertProblem(t, busy, 409);
    t.equal(busy.json().code, 'idempotency-in-progress');
    t.equal(busy.headers['retry-after'], '1');
    t.equal(await referralsWith(marker), 1);

    t.test('one abandoned for over 5 minutes is taken over: the request runs again', async (t) => {
      await setRecord(key, sql`created_at = now() - interval '6 minutes'`);
      const rerun = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
      assertFresh(t, rerun, 201);
      t.equal(await referralsWith(marker), 2);
      assertReplay(t, rerun, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
    });
  });

  t.test('a completed response is kept for the TTL (24 h), then the key is fresh again', async (t) => {
    const marker = tag();
    const key = newKey();
    const first = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
    assertFresh(t, first, 201);
    await setRecord(key, sql`created_at = now() - interval '23 hours'`);
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
    await setRecord(key, sql`created_at = now() - interval '25 hours'`);
    const otherMarker = tag();
    const reused = await post('/v1/referrals', office.physician.token, markedReferral(otherMarker), key);
    assertFresh(t, reused, 201);
    t.equal(await referralsWith(otherMarker), 1, 'an expired key may carry a new request');
  });
});

t.test('bad keys are refused with 400 naming headers.idempotency-key, creating nothing', async (t) => {
  const bad: [string, string][] = [
    ['256 characters', 'k'.repeat(256)],
    ['a space', 'has space'],
    ['non-ASCII characters', 'ключ-1'],
    ['a tab', 'tab\tkey'],
    ['nothing', ''],
  ];
  for (const [what, key] of bad) {
    t.test(`a key of ${what}`, async (t) => {
      const marker = tag();
      assertProblem(t, await post('/v1/referrals', office.physician.token, markedReferral(marker), key), 400, ['headers.idempotency-key']);
      t.equal(await referralsWith(marker), 0);
    });
  }
  t.test('a key of 255 visible ASCII characters is fine', async (t) => {
    const key = `${'~!'.repeat(127)}x`;
    const marker = tag();
    const first = await post('/v1/referrals', office.physician.token, markedReferral(marker), key);
    assertFresh(t, first, 201);
    assertReplay(t, first, await post('/v1/referrals', office.physician.token, markedReferral(marker), key));
  });
});

t.test('without the header, repeats create duplicates', async (t) => {
  const marker = tag();
  const first = await post('/v1/referrals', office.physician.token, markedReferral(marker));
  const second = await post('/v1/referrals', office.physician.token, markedReferral(marker));
  assertFresh(t, first, 201);
  assertFresh(t, second, 201);
  t.not(first.json().id, second.json().id);
  t.equal(await referralsWith(marker), 2);
});

t.test('the token endpoint ignores the header', async (t) => {
  const key = newKey();
  const login = () =>
    test.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', username: practice.admin.email, password: defaultPassword },
      headers: { 'idempotency-key': key },
    });
  const first = await login();
  // Access tokens carry their issue time in seconds: cross a second so two fresh ones differ.
  await sleep(1100 - (Date.now() % 1000));
  const second = await login();
  assertFresh(t, first, 200);
  assertFresh(t, second, 200);
  t.not(second.json().refresh_token, first.json().refresh_token, 'a fresh refresh token');
  t.not(second.json().access_token, first.json().access_token, 'a fresh access token');

  t.test('a refresh grant repeated with the same key runs again (and is caught as reuse)', async (t) => {
    const refreshKey = newKey();
    const refresh = () =>
      test.request({
        method: 'POST',
        url: '/v1/auth/token',
        payload: { grant_type: 'refresh_token', refresh_token: first.json().refresh_token },
        headers: { 'idempotency-key': refreshKey },
      });
    const rotated = await refresh();
    assertFresh(t, rotated, 200);
    const reused = await refresh();
    assertFresh(t, reused, 400);
    t.equal(reused.json().error, 'invalid_grant', 'the old refresh token is not handed out again');
  });
});

t.test('the OpenAPI document describes the header on POSTs, not on the token endpoint', async (t) => {
  const document = withParametersInline(requireStatus(await test.request({ method: 'GET', url: '/openapi.json' }), 200, 'openapi'));
  const headerOf = (path: string, method = 'post') =>
    ((document.paths[path]?.[method]?.parameters ?? []) as Json[]).find((parameter) => parameter.in === 'header' && parameter.name === 'idempotency-key');
  const onCreate = headerOf('/v1/referrals');
  t.ok(onCreate, 'POST /v1/referrals documents idempotency-key');
  t.match(onCreate, { in: 'header', name: 'idempotency-key', schema: { type: 'string', maxLength: 255 } });
  t.match(onCreate?.description ?? onCreate?.schema?.description, /replays the first response/);
  t.ok(document.paths['/v1/referrals'].post.responses['422'], 'and its 422');
  for (const path of ['/v1/patients', '/v1/referrals/{id}/accept', '/v1/referrals/{id}/messages', '/v1/referrals/{id}/progress-reports']) {
    t.ok(headerOf(path), `POST ${path} documents it too`);
  }
  t.notOk(headerOf('/v1/auth/token'), 'the token endpoint does not');
  t.notOk(headerOf('/v1/referrals', 'get'), 'GET does not');
});

t.test('a change that committed is answered 201 even when its response cannot be kept for replay', async (t) => {
  // As if the database went away between the change's commit and the keeping of its response.
  await test.app.database.rows(sql.raw(`alter table idempotency_records add constraint refuse_completion check (state <> 'completed') not valid`));
  t.teardown(() => test.app.database.rows(sql.raw('alter table idempotency_records drop constraint if exists refuse_completion')));
  const key = newKey();
  const payload = { givenName: 'Kept', familyName: `Answer${tag()}`, birthDate: '1980-01-01', sex: 'female' };
  const first = await post('/v1/patients', office.physician.token, payload, key);
  t.equal(first.statusCode, 201, 'the client hears that the patient was registered');
  const [stored] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from patients where id = ${first.json().id}`);
  t.equal(stored!.n, 1, 'and it was');
  const repeat = await post('/v1/patients', office.physician.token, payload, key);
  t.equal(repeat.statusCode, 409, 'a repeat of the key is told to retry later, not made a second time');
  const [count] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from patients where family_name = ${payload.familyName}`);
  t.equal(count!.n, 1, 'one patient only');
});
