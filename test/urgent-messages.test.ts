// Urgent messages (SPEC §14.10): a message may be urgent; it announces message.urgent besides
// message.created, counts in the activity of the side that must acknowledge it (the other side: the
// office for the therapist side's, the therapist side of the care team for the office's) until that
// side acknowledges it, once; and when nobody does within URGENT_ESCALATION_MINUTES the worker sends
// urgent.unacknowledged, exactly once, also with several sweeps and two apps at once.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { auditEvents } from './fixtures/database.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { startReceiver, verified } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern, requireStatus } from './fixtures/responses.js';
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
// Reads the thread of referrals sent to the practice, but is not the accepting therapist.
const colleague = await addTherapist(test, networkAdmin, practice.id);
const officeWriter = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write']);
const officeReader = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);
const practiceWriter = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read', 'referrals:write']);
const escalationMinutes = test.config.urgentEscalation.afterMinutes;

const messagesUrl = (referralId: string) => `/v1/referrals/${referralId}/messages`;
const post = (referralId: string, token: string, payload: Json) => test.request({ method: 'POST', url: messagesUrl(referralId), token, payload });
const acknowledge = (referralId: string, messageId: string, token: string) =>
  test.request({ method: 'POST', url: `${messagesUrl(referralId)}/${messageId}/acknowledge`, token });

/** Posts a message that must be taken (urgent unless told otherwise; null: no priority given) and returns it. */
async function say(referralId: string, token: string, priority: 'urgent' | 'routine' | null = 'urgent'): Promise<Json> {
  return requireStatus(await post(referralId, token, { body: `A ${priority ?? 'plain'} note`, ...(priority ? { priority } : {}) }), 201, 'post a message');
}
async function thread(referralId: string, token = office.physician.token): Promise<Json[]> {
  return requireStatus(await test.request({ method: 'GET', url: `${messagesUrl(referralId)}?limit=200`, token }), 200, 'GET messages').data;
}
const messageIn = async (referralId: string, messageId: string) => (await thread(referralId)).find((message) => message.id === messageId)!;
async function referralOf(referralId: string, token: string): Promise<Json> {
  return requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}`, token }), 200, 'GET referral');
}
const waiting = async (referralId: string, token: string): Promise<number> => (await referralOf(referralId, token)).activity.unacknowledgedUrgent;

async function sentReferral(): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, send: true }));
}
/** A referral sent to the practice and accepted by its therapist; the colleague still reads its thread. */
async function acceptedReferral(): Promise<Json> {
  const referral = await sentReferral();
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
}

t.test('POST /v1/referrals/{id}/messages › priority', async (t) => {
  const referral = await acceptedReferral();

  t.test('routine by default: no flags, message.created only', async (t) => {
    const message = await say(referral.id, practice.therapist.token, null);
    t.match(message, { priority: 'routine', acknowledgedAt: null, acknowledgedBy: null, escalatedAt: null });
    t.equal(await outboxCount(test, 'message.created', message.id), 1, 'message.created');
    t.equal(await outboxCount(test, 'message.urgent', message.id), 0, 'no message.urgent');
  });

  t.test('urgent: message.created and message.urgent in the same change, thin, to both sides', async (t) => {
    const message = await say(referral.id, practice.therapist.token);
    t.match(message, { priority: 'urgent', acknowledgedAt: null, acknowledgedBy: null, escalatedAt: null });
    t.same((await messageIn(referral.id, message.id)).priority, 'urgent', 'the thread shows it urgent');
    const created = (await outboxOf(test, referral.id, 'message.created')).filter((event) => event.data.id === message.id);
    const urgent = (await outboxOf(test, referral.id, 'message.urgent')).filter((event) => event.data.id === message.id);
    t.equal(created.length, 1);
    t.equal(urgent.length, 1);
    t.same(Object.keys(urgent[0]!.data).sort(), ['id', 'organizations', 'referralId', 'resource', 'status', 'url'], 'a thin payload');
    t.match(urgent[0], { type: 'message.urgent', data: { resource: 'message', id: message.id, referralId: referral.id, url: messagesUrl(referral.id) } });
    t.same([...urgent[0]!.data.organizations].sort(), [office.id, practice.id].sort());
    t.notMatch(JSON.stringify(urgent[0]), /A urgent note/, 'no clinical text');
  });

  for (const [what, priority] of [['an unknown priority', 'critical'], ['a null priority', null], ['a priority that is not text', 1]] as const) {
    t.test(`rejects ${what} with 400 naming priority, posting nothing`, async (t) => {
      const before = (await thread(referral.id)).length;
      assertProblem(t, await post(referral.id, practice.therapist.token, { body: 'hi', priority }), 400, ['priority']);
      t.equal((await thread(referral.id)).length, before, 'nothing was posted');
    });
  }
});

t.test('POST …/messages/{messageId}/acknowledge › the office acknowledges the therapist side’s urgent messages', async (t) => {
  const referral = await acceptedReferral();
  const message = await say(referral.id, practice.therapist.token);
  const before = await referralOf(referral.id, office.physician.token);

  const first = expectStatus(t, await acknowledge(referral.id, message.id, office.staff.token), 200, 'office staff acknowledge');
  t.match(first, { id: message.id, priority: 'urgent', acknowledgedBy: office.staff.id, acknowledgedAt: isoTimestampPattern });
  t.ok(Math.abs(Date.parse(first.acknowledgedAt) - Date.now()) < 60_000, 'acknowledged now');
  const again = expectStatus(t, await acknowledge(referral.id, message.id, office.physician.token), 200, 'the physician acknowledges again');
  t.same(again, first, 'the first acknowledgement is kept');
  t.same(await messageIn(referral.id, message.id), first, 'the thread shows it');
  const after = await referralOf(referral.id, office.physician.token);
  t.ok(after.updatedAt > before.updatedAt, "the referral's updatedAt moved with the acknowledgement");

  const audited = await auditEvents(test, { action: 'message.acknowledge', resourceId: message.id });
  t.same(audited.map((event) => [event.actorId, event.outcome]), [[office.staff.id, 'success'], [office.physician.id, 'success']], 'each acknowledgement is audited');
  t.equal(audited[0]!.patientId, referral.patientId);

  t.test('every office role and the office’s EHR with referrals:write; not an EHR that only reads', async (t) => {
    for (const [who, caller] of [['the office admin', office.admin], ['the office EHR', officeWriter]] as const) {
      const urgent = await say(referral.id, practice.admin.token);
      expectStatus(t, await acknowledge(referral.id, urgent.id, caller.token), 200, who);
    }
    const unread = await say(referral.id, practiceWriter.token);
    assertProblem(t, await acknowledge(referral.id, unread.id, officeReader.token), 403, [], 'an EHR with referrals:read only');
    t.equal((await messageIn(referral.id, unread.id)).acknowledgedAt, null, 'not acknowledged');
  });

  t.test('the therapist side cannot acknowledge its own: 409 own-side', async (t) => {
    const urgent = await say(referral.id, practice.therapist.token);
    for (const [who, token] of [['the author', practice.therapist.token], ['their practice admin', practice.admin.token], ['their practice EHR', practiceWriter.token]] as const) {
      t.equal(assertProblem(t, await acknowledge(referral.id, urgent.id, token), 409, [], who).code, 'own-side', who);
    }
    t.equal((await messageIn(referral.id, urgent.id)).acknowledgedAt, null, 'still waiting for the office');
  });
});

t.test('POST …/messages/{messageId}/acknowledge › the therapist side of the care team acknowledges the office’s', async (t) => {
  const referral = await acceptedReferral();
  for (const [who, caller] of [['the accepting therapist', practice.therapist], ['the practice admin', practice.admin], ['the practice EHR', practiceWriter]] as const) {
    const urgent = await say(referral.id, office.physician.token);
    const acknowledged = expectStatus(t, await acknowledge(referral.id, urgent.id, caller.token), 200, who);
    t.equal(acknowledged.acknowledgedBy, caller.id, `${who} acknowledged it`);
  }

  const urgent = await say(referral.id, office.staff.token);
  t.equal(assertProblem(t, await acknowledge(referral.id, urgent.id, office.physician.token), 409, [], 'the office').code, 'own-side', 'the office cannot acknowledge its own');

  const routine = await say(referral.id, office.staff.token, 'routine');
  const notUrgent = assertProblem(t, await acknowledge(referral.id, routine.id, practice.therapist.token), 409, [], 'a routine message');
  t.match(notUrgent, { code: 'not-urgent', currentStatus: 'accepted' });
  t.same(await messageIn(referral.id, routine.id), routine, 'the routine message is unchanged');

  await assertOutsider(t, test, await acknowledge(referral.id, urgent.id, colleague.token), 'message.acknowledge', colleague.id, referral.id, 'a colleague of the accepting therapist');
  t.equal((await messageIn(referral.id, urgent.id)).acknowledgedAt, null, 'still waiting for the care team');

  t.test('before anyone accepts, the practice it was sent to is told to accept first', async (t) => {
    const pending = await sentReferral();
    const early = await say(pending.id, office.physician.token);
    for (const [who, token] of [['the practice admin', practice.admin.token], ['a therapist of the practice', practice.therapist.token]] as const) {
      t.match(assertProblem(t, await acknowledge(pending.id, early.id, token), 409, [], who), { code: 'not-accepted', currentStatus: 'sent' });
    }
    // Once accepted, the care team acknowledges what was waiting.
    requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${pending.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
    expectStatus(t, await acknowledge(pending.id, early.id, practice.therapist.token), 200, 'after acceptance');
  });
});

t.test('POST …/messages/{messageId}/acknowledge › outsiders get the 404 of a missing referral, audited; bad ids are 400', async (t) => {
  const referral = await acceptedReferral();
  const urgent = await say(referral.id, practice.therapist.token);
  const outsiders = [
    ['a physician of another office', otherOffice.physician],
    ['a therapist of another practice', otherPractice.therapist],
    ['the network admin', { id: networkAdminId, token: networkAdmin }],
  ] as const;
  for (const [who, caller] of outsiders) {
    await assertOutsider(t, test, await acknowledge(referral.id, urgent.id, caller.token), 'message.acknowledge', caller.id, referral.id, who);
  }
  t.equal((await messageIn(referral.id, urgent.id)).acknowledgedAt, null, 'nobody acknowledged it');

  const other = await acceptedReferral();
  assertProblem(t, await acknowledge(other.id, urgent.id, office.staff.token), 404, [], 'a message of another referral');
  assertProblem(t, await acknowledge(referral.id, '00000000-0000-4000-8000-000000000000', office.staff.token), 404, [], 'no such message');
  assertProblem(t, await acknowledge('00000000-0000-4000-8000-000000000000', urgent.id, office.staff.token), 404, [], 'no such referral');
  assertProblem(t, await acknowledge(referral.id, 'not-a-uuid', office.staff.token), 400, [/messageId/], 'a message id that is no uuid');
  t.equal((await messageIn(referral.id, urgent.id)).acknowledgedAt, null, 'still unacknowledged');
});

t.test('activity.unacknowledgedUrgent counts what waits for the caller’s side', async (t) => {
  const referral = await acceptedReferral();
  const counts = async () => ({
    physician: await waiting(referral.id, office.physician.token),
    staff: await waiting(referral.id, office.staff.token),
    therapist: await waiting(referral.id, practice.therapist.token),
    practiceAdmin: await waiting(referral.id, practice.admin.token),
    practiceEhr: await waiting(referral.id, practiceWriter.token),
    colleague: await waiting(referral.id, colleague.token),
  });
  t.same(await counts(), { physician: 0, staff: 0, therapist: 0, practiceAdmin: 0, practiceEhr: 0, colleague: 0 }, 'nothing at first');

  const fromTherapist = await say(referral.id, practice.therapist.token);
  await say(referral.id, practice.therapist.token, 'routine');
  t.same(await counts(), { physician: 1, staff: 1, therapist: 0, practiceAdmin: 0, practiceEhr: 0, colleague: 0 }, "the therapist's urgent message waits for the office");

  const fromOffice = [await say(referral.id, office.physician.token), await say(referral.id, office.staff.token)];
  await say(referral.id, office.staff.token, 'routine');
  t.same(await counts(), { physician: 1, staff: 1, therapist: 2, practiceAdmin: 2, practiceEhr: 2, colleague: 0 }, "the office's wait for the care team, not the colleague");
  const listed = requireStatus(await test.request({ method: 'GET', url: '/v1/referrals?limit=200', token: practice.therapist.token }), 200, 'list');
  t.equal(listed.data.find((item: Json) => item.id === referral.id)?.activity.unacknowledgedUrgent, 2, 'the sync feed shows the same count');

  expectStatus(t, await acknowledge(referral.id, fromTherapist.id, office.staff.token), 200, 'office');
  expectStatus(t, await acknowledge(referral.id, fromOffice[0]!.id, practice.therapist.token), 200, 'therapist');
  t.same(await counts(), { physician: 0, staff: 0, therapist: 1, practiceAdmin: 1, practiceEhr: 1, colleague: 0 }, 'acknowledged ones no longer count, for the whole side');
  expectStatus(t, await acknowledge(referral.id, fromOffice[1]!.id, practice.admin.token), 200, 'practice admin');
  t.same(await counts(), { physician: 0, staff: 0, therapist: 0, practiceAdmin: 0, practiceEhr: 0, colleague: 0 }, 'all acknowledged');
});

t.test('urgent.unacknowledged: the worker escalates an urgent message nobody acknowledged in time, once', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: receiver.url, eventTypes: ['message.urgent', 'urgent.unacknowledged'] });
  await test.app.escalateUrgentMessages();
  const referral = await acceptedReferral();
  const overdueFromTherapist = await say(referral.id, practice.therapist.token);
  const overdueFromOffice = await say(referral.id, office.physician.token);
  const recent = await say(referral.id, practice.therapist.token);
  const oldRoutine = await say(referral.id, practice.therapist.token, 'routine');
  const acknowledgedInTime = await say(referral.id, practice.therapist.token);
  expectStatus(t, await acknowledge(referral.id, acknowledgedInTime.id, office.staff.token), 200, 'acknowledged');
  const overdue = [overdueFromTherapist, overdueFromOffice];
  await makeOlder(test, 'messages', [...overdue, oldRoutine, acknowledgedInTime].map((message) => message.id), escalationMinutes + 1);
  await makeOlder(test, 'messages', [recent.id], escalationMinutes - 1);

  t.equal(await test.app.escalateUrgentMessages(), 2, 'the sweep escalates the two overdue');
  for (const message of overdue) t.equal(await outboxCount(test, 'urgent.unacknowledged', message.id), 1, 'escalated once');
  for (const message of [recent, oldRoutine, acknowledgedInTime]) t.equal(await outboxCount(test, 'urgent.unacknowledged', message.id), 0, 'not escalated');
  const [event] = (await outboxOf(test, referral.id, 'urgent.unacknowledged')).filter((payload) => payload.data.id === overdueFromTherapist.id);
  t.match(event, { data: { resource: 'message', id: overdueFromTherapist.id, referralId: referral.id, url: messagesUrl(referral.id) } });
  t.same(event!.data.organizations, [office.id], 'to the prescribing office alone (SPEC §14.10)');
  const escalated = await messageIn(referral.id, overdueFromTherapist.id);
  t.match(escalated, { escalatedAt: isoTimestampPattern, acknowledgedAt: null });
  const audited = await auditEvents(test, { action: 'message.escalate', resourceId: overdueFromTherapist.id });
  t.equal(audited.length, 1, 'audited once');
  t.match(audited[0], { actorType: 'system', outcome: 'success', resourceType: 'message', patientId: referral.patientId });

  t.equal(await test.app.escalateUrgentMessages(), 0, 'a second sweep finds nothing');
  await makeOlder(test, 'messages', [recent.id], escalationMinutes + 5);
  t.equal(await test.app.escalateUrgentMessages(), 1, 'the other once it is overdue too');
  for (const message of [...overdue, recent]) t.equal(await outboxCount(test, 'urgent.unacknowledged', message.id), 1, 'still once each');

  const late = expectStatus(t, await acknowledge(referral.id, overdueFromTherapist.id, office.staff.token), 200, 'acknowledged after the escalation');
  t.equal(late.escalatedAt, escalated.escalatedAt, 'the escalation stays on record');
  t.equal(await waiting(referral.id, office.staff.token), 1, 'only the other overdue message of the therapist still waits for the office');

  await drain(test);
  const payloads = receiver.requests.map((delivered) => verified(t, delivered, endpoint.secret, 'office delivery')).filter((payload) => payload.data?.referralId === referral.id);
  t.same(
    payloads.map((payload) => `${payload.type} ${payload.data.id}`).sort(),
    [
      ...[overdueFromTherapist, overdueFromOffice, recent, acknowledgedInTime].map((message) => `message.urgent ${message.id}`),
      ...[overdueFromTherapist, overdueFromOffice, recent].map((message) => `urgent.unacknowledged ${message.id}`),
    ].sort(),
    "the office's endpoint receives what it subscribed to, once each",
  );
});

/** Urgent messages, already overdue, spread over three referrals. */
async function overdueMessages(count: number): Promise<Json[]> {
  const referrals = await Promise.all([acceptedReferral(), acceptedReferral(), acceptedReferral()]);
  const messages: Json[] = [];
  for (let index = 0; index < count; index++) messages.push(await say(referrals[index % 3]!.id, index % 2 ? office.staff.token : practice.therapist.token));
  await makeOlder(test, 'messages', messages.map((message) => message.id), escalationMinutes + 1);
  return messages;
}

t.test('exactly once with several sweeps at once', async (t) => {
  await test.app.escalateUrgentMessages();
  const due = await overdueMessages(9);
  const counts = await Promise.all([test.app.escalateUrgentMessages(), test.app.escalateUrgentMessages(), test.app.escalateUrgentMessages()]);
  t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `the sweeps escalated ${due.length} between them`);
  for (const message of due) {
    t.equal(await outboxCount(test, 'urgent.unacknowledged', message.id), 1, 'one event');
    t.equal((await auditEvents(test, { action: 'message.escalate', resourceId: message.id })).length, 1, 'one audit event');
  }
});

t.test('exactly once with two apps sweeping the same PostgreSQL database at once', { skip: testDatabaseServer ? false : 'PostgreSQL only: an embedded database has one process' }, async (t) => {
  const second = await buildApp({ config: testConfig({ DATABASE_URL: test.config.databaseUrl!, ROLE: 'api' }) });
  t.teardown(() => second.close());
  const secondApp = new TestApp(second, test.config);
  await test.app.escalateUrgentMessages();
  for (let round = 0; round < 3; round++) {
    const due = await overdueMessages(12);
    const counts = await Promise.all([test.app.escalateUrgentMessages(), second.escalateUrgentMessages(), test.app.escalateUrgentMessages(), second.escalateUrgentMessages()]);
    t.equal(counts.reduce((sum, count) => sum + count, 0), due.length, `round ${round}: ${due.length} escalations between the apps`);
    const ids = due.map((message) => sql`${message.id}`);
    const perMessage = await secondApp.app.database.rows<{ id: string; n: number | string }>(
      sql`select payload -> 'data' ->> 'id' as id, count(*) as n from webhook_events where type = 'urgent.unacknowledged'
        and payload -> 'data' ->> 'id' in (${sql.join(ids, sql`, `)}) group by 1`,
    );
    t.equal(perMessage.length, due.length, `round ${round}: every message escalated`);
    t.ok(perMessage.every((row) => Number(row.n) === 1), `round ${round}: each exactly once`);
  }
});
