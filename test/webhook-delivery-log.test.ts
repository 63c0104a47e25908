// What becomes of a partner EHR's deliveries (SPEC §8, issue 4): a later change waits while an
// earlier one to the same endpoint is retried; access is checked again when the worker runs; the
// delivery log shows every attempt, with resend and range recovery, and is closed to other
// organizations; and a name resolving to loopback is delivered to when private targets are allowed.
// Receivers are node:http servers on 127.0.0.1 (test/fixtures/partner-ehr.ts); DNS answers come
// from an injected resolver.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { fakeDns } from './fixtures/fake-dns.js';
import { createOffice, createPractice, type OfficeFixture } from './fixtures/network.js';
import { startReceiver, verified, type Delivered } from './fixtures/partner-ehr.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern as isoTimestamp, uuidPattern as uuid } from './fixtures/responses.js';
import { buildWebhookApp, deliveriesOf, drain, endpointUrl, registerEndpoint, specEventTypes } from './fixtures/webhooks.js';
import { auditEvents, type Json, type TestApp } from './helper.js';
import { assertRetryIn, makeDue } from './fixtures/webhooks.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => randomBytes(3).toString('hex');
const blockedAnswerMessage = 'the organization no longer takes part in this referral';

// Loopback receivers allowed; a failed attempt is retried once, about 30 s later.
const loopbackDns = fakeDns();
const loopback = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,30', WEBHOOK_TIMEOUT_MS: '2000' }, loopbackDns.resolve);

// Every organization is made before any test runs: the app closes when the tests end. An office,
// the practice its referrals go to, a second practice to reroute to, and an office that takes no part.
const lAdmin = await loopback.loginAsAdmin();
const [lOffice, lPractice, lSecond, lOtherOffice] = await Promise.all([
  createOffice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createOffice(loopback, lAdmin),
]);

async function sentReferral(app: TestApp, office: OfficeFixture, target: Json): Promise<Json> {
  return app.create('/v1/referrals', office.physician.token, referralBody({ reason: `Chronic lumbar paraspinal trigger points, case ${unique()}`, send: true, ...target }));
}

async function post(app: TestApp, url: string, token: string, payload?: Json): Promise<Json> {
  const response = await app.request({ method: 'POST', url, token, ...(payload ? { payload } : {}) });
  if (response.statusCode >= 300) throw new Error(`POST ${url} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

const amend = (app: TestApp, referralId: string, office: OfficeFixture, visitsAuthorized: number) =>
  app.request({ method: 'PATCH', url: `/v1/referrals/${referralId}`, token: office.physician.token, payload: { visitsAuthorized, reason: `Extra visits for persistent sciatica ${unique()}` } });

const payloadOf = (delivered: Delivered): Json => JSON.parse(delivered.body);

t.test('in order per referral: a later change waits while an earlier delivery to the same endpoint is retried; other referrals do not wait', async (t) => {
  let failing = true;
  const receiver = await startReceiver(t, () => (failing ? { status: 503, body: 'maintenance' } : { status: 200 }));
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent', 'referral.amended', 'referral.cancelled'] });

  const blocked = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'the send was tried once');
  const [firstDelivery] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(firstDelivery, { status: 'pending', attempts: 1, lastStatusCode: 503 }, 'and waits for its retry');

  failing = false;
  t.equal((await amend(loopback, blocked.id, lOffice, 20)).statusCode, 200);
  await post(loopback, `/v1/referrals/${blocked.id}/cancel`, lOffice.physician.token, { reason: `Duplicate order ${unique()}` });
  const other = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.same(
    receiver.requests.slice(1).map((delivered) => [payloadOf(delivered).type, payloadOf(delivered).data.referralId]),
    [['referral.sent', other.id]],
    "the other referral's event is delivered; the amendment and cancellation wait behind the failed send",
  );
  const waiting = (await deliveriesOf(loopback, endpoint.id, lOffice.admin.token, '&status=pending')).filter((delivery) => delivery.referralId === blocked.id);
  t.same(waiting.map((delivery) => [delivery.eventType, delivery.attempts]).reverse(), [['referral.sent', 1], ['referral.amended', 0], ['referral.cancelled', 0]], 'all three pending; the later two never tried');

  await makeDue(loopback, [firstDelivery!.id]);
  await drain(loopback);
  const arrived = receiver.requests.slice(2).map((delivered) => verified(t, delivered, endpoint.secret));
  t.same(
    arrived.map((payload) => [payload.type, payload.data.referralId, payload.data.status]),
    [
      ['referral.sent', blocked.id, 'sent'],
      ['referral.amended', blocked.id, 'sent'],
      ['referral.cancelled', blocked.id, 'cancelled'],
    ],
    'once the send succeeds, the three arrive in the order they were made',
  );
  t.equal(receiver.requests[2]!.headers['webhook-id'], receiver.requests[0]!.headers['webhook-id'], 'the retry is the same event (same webhook-id)');
});

t.test("access at delivery time: a practice that lost the referral before the worker ran gets none of it; its pending deliveries end dead", async (t) => {
  const office = await startReceiver(t);
  const first = await startReceiver(t);
  const second = await startReceiver(t);
  const officeEndpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: office.url, eventTypes: specEventTypes });
  const firstEndpoint = await registerEndpoint(t, loopback, lPractice.admin.token, { url: first.url, eventTypes: specEventTypes });
  const secondEndpoint = await registerEndpoint(t, loopback, lSecond.admin.token, { url: second.url, eventTypes: specEventTypes });

  const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  const declineReason = `We have no therapist trained in oncology massage ${unique()}`;
  await post(loopback, `/v1/referrals/${referral.id}/decline`, lPractice.therapist.token, { reason: declineReason });
  await post(loopback, `/v1/referrals/${referral.id}/reroute`, lOffice.physician.token, { practiceId: lSecond.id, reason: `Rerouted to oncology-trained practice ${unique()}` });
  expectStatus(t, await loopback.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: lPractice.admin.token }), 404, 'the first practice can no longer see the referral');

  const queued = await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token);
  t.same(queued.map((delivery) => delivery.eventType), ['referral.declined', 'referral.sent'], 'the first practice was queued the send and the decline, made while it took part (not the reroute)');
  await drain(loopback);

  t.equal(first.requests.length, 0, 'the first practice receives nothing');
  t.equal(first.connections, 0, 'not even a connection');
  const deliveries = await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token);
  t.same(
    deliveries.map((delivery) => [delivery.eventType, delivery.status, delivery.attempts, delivery.lastStatusCode, delivery.lastError, delivery.attemptLog]),
    [
      ['referral.declined', 'dead', 1, null, blockedAnswerMessage, []],
      ['referral.sent', 'dead', 1, null, blockedAnswerMessage, []],
    ],
    'both dead, saying the organization no longer takes part, with no HTTP attempt',
  );
  for (const delivery of deliveries) {
    const audited = await auditEvents(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
    t.same(audited.map((event) => [event.resourceType, event.outcome]), [['webhook_delivery', 'error']], `the refused ${delivery.eventType} is audited`);
  }
  t.same(await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token, '&status=pending'), [], 'nothing of it is left to send');

  t.same(
    second.requests.map((delivered) => {
      const payload = verified(t, delivered, secondEndpoint.secret, 'the new practice\'s delivery');
      return [payload.type, payload.data.status, [...payload.data.organizations].sort()];
    }),
    [['referral.sent', 'sent', [lOffice.id, lSecond.id].sort()]],
    'the new practice gets the rerouted send, naming the office and itself',
  );
  t.same(
    office.requests.map((delivered) => {
      const payload = verified(t, delivered, officeEndpoint.secret, "the office's delivery");
      return [payload.type, payload.data.status];
    }),
    [
      ['referral.sent', 'sent'],
      ['referral.declined', 'declined'],
      ['referral.sent', 'sent'],
    ],
    'the office, still taking part, gets all three in order',
  );
  t.notOk([...office.requests, ...second.requests].some((delivered) => delivered.body.includes(declineReason)), 'the decline reason is in no payload');
});

t.test('the delivery log: each delivery with its attempts, filtered by status; resend and range recovery; closed to other organizations', async (t) => {
  let failing = false;
  const receiver = await startReceiver(t, () => (failing ? { status: 500, body: 'receiver exploded' } : { status: 200, body: 'thanks' }));
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent', 'referral.amended'] });
  const token = lOffice.admin.token;
  const startedAt = new Date(Date.now() - 1000).toISOString();
  const ids = (list: Json[]) => list.map((delivery) => delivery.id);

  // A success.
  const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  const [succeeded] = await deliveriesOf(loopback, endpoint.id, token);
  t.same(Object.keys(succeeded!).sort(), ['attemptLog', 'attempts', 'createdAt', 'endpointId', 'eventId', 'eventType', 'id', 'lastError', 'lastStatusCode', 'nextAttemptAt', 'referralId', 'status'], 'a delivery names its event, state and attempts');
  t.match(succeeded, { endpointId: endpoint.id, eventType: 'referral.sent', referralId: referral.id, status: 'succeeded', attempts: 1, lastStatusCode: 200, lastError: null });
  t.equal(succeeded!.attemptLog.length, 1);
  const attempt = succeeded!.attemptLog[0];
  t.same(Object.keys(attempt).sort(), ['attemptedAt', 'error', 'latencyMs', 'responseExcerpt', 'statusCode']);
  t.match(attempt, { statusCode: 200, error: null, responseExcerpt: 'thanks' }, 'the attempt: 200, the response excerpt');
  t.match(attempt.attemptedAt, isoTimestamp);
  t.ok(Number.isInteger(attempt.latencyMs) && attempt.latencyMs >= 0 && attempt.latencyMs < 2000, `latency in ms (${attempt.latencyMs})`);
  t.equal(succeeded!.eventId, receiver.requests[0]!.headers['webhook-id'], 'the event id is the webhook-id the receiver saw');

  // A failure, retried, then dead.
  failing = true;
  t.equal((await amend(loopback, referral.id, lOffice, 13)).statusCode, 200);
  const failedAt = Date.now();
  await drain(loopback);
  const failedDone = Date.now();
  const [retrying] = await deliveriesOf(loopback, endpoint.id, token);
  t.match(retrying, { eventType: 'referral.amended', status: 'pending', attempts: 1, lastStatusCode: 500, lastError: 'the receiver answered 500' }, 'pending after a 500');
  t.match(retrying!.attemptLog, [{ statusCode: 500, error: 'the receiver answered 500', responseExcerpt: 'receiver exploded' }], 'the attempt: 500, the error, the excerpt');
  assertRetryIn(t, retrying!.nextAttemptAt, failedAt, failedDone, 30, 'the retry is scheduled per the schedule: 30 s ± 10% later');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=pending')), [retrying!.id], 'status=pending: the failing one');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=succeeded')), [succeeded!.id], 'status=succeeded: the first');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=dead')), [], 'status=dead: none yet');
  expectStatus(t, await loopback.request({ method: 'GET', url: `${endpointUrl(endpoint.id)}/deliveries?status=lost`, token }), 400, 'an unknown status');

  await makeDue(loopback, [retrying!.id]);
  await drain(loopback);
  const [deadOne] = await deliveriesOf(loopback, endpoint.id, token, '&status=dead');
  t.match(deadOne, { id: retrying!.id, status: 'dead', attempts: 2, lastStatusCode: 500 }, 'dead after the last scheduled attempt');
  t.equal(deadOne!.attemptLog.length, 2, 'both attempts logged, oldest first');
  t.ok(Date.parse(deadOne!.attemptLog[0].attemptedAt) <= Date.parse(deadOne!.attemptLog[1].attemptedAt));

  // Another dead one, later.
  await sleep(20);
  const between = new Date().toISOString();
  await sleep(20);
  t.equal((await amend(loopback, referral.id, lOffice, 14)).statusCode, 200);
  await drain(loopback);
  const [laterFailure] = await deliveriesOf(loopback, endpoint.id, token, '&status=pending');
  await makeDue(loopback, [laterFailure!.id]);
  await drain(loopback);
  const dead = await deliveriesOf(loopback, endpoint.id, token, '&status=dead');
  t.same(ids(dead), [laterFailure!.id, deadOne!.id], 'two dead deliveries, newest first');

  failing = false;
  await t.test('resend: 202, and a new delivery of the same event arrives with the same webhook-id and payload', async (t) => {
    const before = receiver.requests.length;
    const response = await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token });
    t.equal(response.statusCode, 202, `resend the first delivery: 202 (got ${response.statusCode}: ${response.body.slice(0, 200)})`);
    // What follows checks the resent delivery, once there is one.
    if (response.statusCode !== 202) return;
    const resent = response.json();
    t.match(resent, { queued: 1, deliveryIds: [uuid] });
    t.not(resent.deliveryIds[0], succeeded!.id, 'a new delivery');
    t.same(
      (await auditEvents(loopback, { action: 'webhook_delivery.resend', outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [[lOffice.admin.id, 202]],
      'the resend is audited',
    );
    await drain(loopback);
    t.equal(receiver.requests.length, before + 1, 'sent once more');
    const again = receiver.requests.at(-1)!;
    t.equal(again.headers['webhook-id'], receiver.requests[0]!.headers['webhook-id'], 'with the same webhook-id as the original');
    t.equal(again.body, receiver.requests[0]!.body, 'and the same payload');
    verified(t, again, endpoint.secret, 'the resent delivery');
    const all = await deliveriesOf(loopback, endpoint.id, token);
    t.match(all.find((delivery) => delivery.id === resent.deliveryIds[0]), { eventId: succeeded!.eventId, status: 'succeeded', attempts: 1 }, 'the new delivery succeeded');
    t.match(all.find((delivery) => delivery.id === succeeded!.id), { status: 'succeeded', attempts: 1 }, 'the original stays as it was');
  });

  const recover = (payload: Json, by = token) => loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/recover`, token: by, payload });

  await t.test('recover {from, to}: every dead delivery created in the range is queued again and delivered under its webhook-id', async (t) => {
    const before = receiver.requests.length;
    t.same(expectStatus(t, await recover({ from: new Date(Date.now() + 3_600_000).toISOString() }), 202, 'a range in the future'), { queued: 0, deliveryIds: [] }, 'queues nothing');
    const late = expectStatus(t, await recover({ from: between, to: new Date(Date.now() + 60_000).toISOString() }), 202, 'recover the later range');
    t.match(late, { queued: 1, deliveryIds: [uuid] }, 'one dead delivery in the later range');
    const early = expectStatus(t, await recover({ from: startedAt, to: between }), 202, 'recover the earlier range');
    t.match(early, { queued: 1, deliveryIds: [uuid] }, 'one dead delivery in the earlier range');
    await drain(loopback);
    const recovered = receiver.requests.slice(before);
    t.same(
      recovered.map((delivered) => delivered.headers['webhook-id']).sort(),
      [laterFailure!.eventId, deadOne!.eventId].sort(),
      'both dead events are delivered again, under their webhook-ids',
    );
    for (const delivered of recovered) verified(t, delivered, endpoint.secret, 'a recovered delivery');
    const afterRecovery = await deliveriesOf(loopback, endpoint.id, token);
    t.same(
      [...late.deliveryIds, ...early.deliveryIds].map((id: string) => {
        const delivery = afterRecovery.find((row) => row.id === id);
        return [delivery?.eventId, delivery?.status];
      }),
      [
        [laterFailure!.eventId, 'succeeded'],
        [deadOne!.eventId, 'succeeded'],
      ],
      'the new deliveries carry the dead events and succeeded',
    );
    t.same(
      (await auditEvents(loopback, { action: 'webhook_endpoint.recover', resourceId: endpoint.id, outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [
        [lOffice.admin.id, 202],
        [lOffice.admin.id, 202],
        [lOffice.admin.id, 202],
      ],
      'each recovery is audited',
    );
  });

  await t.test('every attempt is audited as webhook.attempt on its webhook_delivery, with its outcome and status', async (t) => {
    const deliveries = await deliveriesOf(loopback, endpoint.id, token);
    t.ok(deliveries.length >= 5, `${deliveries.length} deliveries`);
    for (const delivery of deliveries) {
      const audited = await auditEvents(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
      t.same(
        audited.map((event) => [event.resourceType, event.actorType, event.outcome, event.httpStatus]),
        delivery.attemptLog.map((logged: Json) => ['webhook_delivery', 'system', logged.statusCode === 200 ? 'success' : 'error', logged.statusCode]),
        `${delivery.eventType} (${delivery.status}): one audit event per attempt`,
      );
    }
  });

  await t.test("another organization's admin gets 404 for the log, resend and recovery, each audited as denied", async (t) => {
    for (const outsider of [lOtherOffice.admin, lPractice.admin]) {
      const list = await loopback.request({ method: 'GET', url: `${endpointUrl(endpoint.id)}/deliveries`, token: outsider.token });
      expectStatus(t, list, 404, 'the log');
      const resend = await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: outsider.token });
      t.match(expectStatus(t, resend, 404, 'resend'), { detail: 'Webhook delivery not found' });
      expectStatus(t, await recover({ from: startedAt }, outsider.token), 404, 'recover');
      t.same(
        (await auditEvents(loopback, { actorId: outsider.id, outcome: 'denied' }))
          .filter((event) => event.action.startsWith('webhook'))
          .map((event) => [event.action, event.resourceType, event.resourceId, event.httpStatus]),
        [
          ['webhook_delivery.list', 'webhook_endpoint', endpoint.id, 404],
          ['webhook_delivery.resend', 'webhook_delivery', succeeded!.id, 404],
          ['webhook_endpoint.recover', 'webhook_endpoint', endpoint.id, 404],
        ],
        'each refusal is audited as denied',
      );
    }
    const requestsBefore = receiver.requests.length;
    await drain(loopback);
    t.equal(receiver.requests.length, requestsBefore, 'nothing was queued by the refused calls');
    expectStatus(t, await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: lOffice.physician.token }), 403, 'a physician may not resend');
    t.equal(
      (await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: lAdmin })).statusCode,
      202,
      'the network admin may resend',
    );
    await drain(loopback);
  });
});

t.test('with WEBHOOK_ALLOW_PRIVATE_TARGETS=true a name resolving to 127.0.0.1 is delivered to the loopback receiver', async (t) => {
  const receiver = await startReceiver(t);
  const host = 'hooks.partner.example';
  loopbackDns.answers.set(host, [{ address: '127.0.0.1', family: 4 }]);
  loopbackDns.calls.length = 0;
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: `http://${host}:${receiver.port}/partner`, eventTypes: ['referral.sent'] });
  const ping = await post(loopback, `${endpointUrl(endpoint.id)}/test`, lOffice.admin.token);
  await drain(loopback);
  t.ok(loopbackDns.calls.includes(host), 'the name was resolved through the injected resolver');
  t.equal(receiver.requests.length, 1, 'delivered');
  t.equal(receiver.requests[0]!.path, '/partner');
  t.equal(receiver.requests[0]!.headers.host, `${host}:${receiver.port}`, 'addressed by name');
  t.equal(receiver.requests[0]!.headers['webhook-id'], ping.eventId);
  t.match(verified(t, receiver.requests[0]!, endpoint.secret, 'the ping'), { type: 'ping' });
  const [delivery] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(delivery, { status: 'succeeded', lastStatusCode: 200 });
});
