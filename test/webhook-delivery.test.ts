// The webhook delivery worker of SPEC §8 against real receivers (node:http on loopback only):
// Standard Webhooks signatures checked with the reference library, retries on the schedule,
// Retry-After, 410 Gone, timeouts, redirects not followed, oversized answers, disabling a failing
// endpoint, leases of crashed workers, order per referral, concurrent workers, and the outbox
// sending nothing for a rolled-back change. The worker never runs on its own here (ROLE=api):
// every round is a runOnce() the test makes.
import { eq, inArray, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookEvents } from '../src/db/schema.js';
import { DeliveryWorker } from '../src/modules/webhooks/delivery-worker.js';
import { addMember, addOffice, createOffice, createPractice, type Member, type OfficeFixture, type PracticeFixture } from './fixtures/network.js';
import { answer, assertSigned, startReceiver } from './fixtures/partner-ehr.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { expectStatus } from './fixtures/responses.js';
import { buildWebhookApp, deliveriesOf, drain, ping, registerEndpoint } from './fixtures/webhooks.js';
import type { Json, TestApp } from './helper.js';

/** An app whose worker runs only when the test says so, allowed to deliver to loopback. */
async function buildApp(env: Record<string, string>): Promise<{ test: TestApp; networkAdmin: string }> {
  const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...env });
  return { test, networkAdmin: await test.loginAsAdmin() };
}

/** An office with only an office admin, signed in: enough to register endpoints and ping them. */
async function officeWithAdmin(test: TestApp, networkAdmin: string): Promise<{ id: string; admin: Member }> {
  const office = await addOffice(test, networkAdmin);
  const tag = Math.random().toString(36).slice(2, 10);
  return { id: office.id, admin: await addMember(test, networkAdmin, office.id, { role: 'office_admin', email: `admin.${tag}@office.example`, name: `Admin ${tag}` }) };
}

// Apps are costly to build (a database each, hashed passwords), so the tests share two, one per
// configuration. Each test's endpoints are deleted when it ends, and their unfinished
// deliveries retired, so no later test's round picks them up.
const main = await buildApp({ WEBHOOK_RETRY_SCHEDULE: '0,60,120' });
const office = await createOffice(main.test, main.networkAdmin);
const practice = await createPractice(main.test, main.networkAdmin);
const otherOffice = await officeWithAdmin(main.test, main.networkAdmin);
const test = main.test;
// Receivers get 300 ms to answer, and an endpoint failing for a second is disabled (the timeout
// test fails only once before it succeeds, so the second setting does not touch it).
const impatient = await buildApp({ WEBHOOK_TIMEOUT_MS: '300', WEBHOOK_DISABLE_AFTER_SECONDS: '1' });
const impatientOffice = await officeWithAdmin(impatient.test, impatient.networkAdmin);

async function readEndpoint(test: TestApp, token: string, endpointId: string): Promise<Json> {
  const response = await test.request({ method: 'GET', url: `/v1/webhook-endpoints/${endpointId}`, token });
  if (response.statusCode !== 200) throw new Error(`GET endpoint failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

async function deliveryOf(test: TestApp, token: string, endpointId: string, eventId: string): Promise<Json> {
  const found = (await deliveriesOf(test, endpointId, token)).filter((delivery) => delivery.eventId === eventId);
  if (found.length !== 1) throw new Error(`expected one delivery of event ${eventId}, found ${found.length}`);
  return found[0]!;
}

/** Makes an event's pending deliveries due now, instead of waiting for their retry. */
async function makeDue(test: TestApp, { eventId }: { eventId: string }) {
  await test.app.database.rows(sql`update webhook_deliveries set next_attempt_at = now() where status = 'pending' and event_id = ${eventId}::uuid`);
}

const nextAttemptSeconds = (delivery: Json, from: number) => (Date.parse(delivery.nextAttemptAt) - from) / 1000;

/**
 * Asserts the delay the worker chose lies in [low, high] seconds. It was chosen at some moment of
 * the round, so it is at most nextAttemptAt - round.before and at least nextAttemptAt - round.after.
 */
function assertDelay(t: Test, delivery: Json, round: { before: number; after: number }, low: number, high: number, what: string) {
  const most = nextAttemptSeconds(delivery, round.before);
  const least = nextAttemptSeconds(delivery, round.after);
  t.ok(most >= low && least <= high, `${what}: between ${low} and ${high} s (chosen ${least.toFixed(2)}–${most.toFixed(2)} s)`);
}

/** Times a worker round: the delay it chose lies between next - after and next - before. */
async function timedRound(test: TestApp): Promise<{ before: number; after: number; claimed: number }> {
  const before = Date.now();
  const claimed = await test.app.webhookWorker.runOnce();
  return { before, after: Date.now(), claimed };
}

const today = new Date().toISOString().slice(0, 10);
/** A referral from the office to the practice's therapist, starting today, sent at once. */
const referralTo = (practice: PracticeFixture, overrides: Json = {}) => referralBody({ startDate: today, therapistId: practice.therapist.id, send: true, ...overrides });

async function sendReferral(test: TestApp, office: OfficeFixture, practice: PracticeFixture): Promise<string> {
  return (await test.create('/v1/referrals', office.physician.token, referralTo(practice))).id;
}

async function cancelReferral(test: TestApp, office: OfficeFixture, referralId: string) {
  const response = await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/cancel`, token: office.physician.token, payload: { reason: 'Patient moved away' } });
  if (response.statusCode !== 200) throw new Error(`cancel failed: ${response.statusCode} ${response.body}`);
}

t.test('a 2xx answer: the delivery succeeds with one attempt logged, signed per Standard Webhooks', async (t) => {
  const hook = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  t.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]+=*$/, 'the secret is whsec_ + base64');

  const eventId = await ping(test, office.admin.token, endpoint.id);
  const referralId = await sendReferral(test, office, practice);
  const before = Date.now();
  t.equal(await test.app.webhookWorker.runOnce(), 2, 'one round claims the ping and the referral.sent event');
  const after = Date.now();

  t.equal(hook.requests.length, 2, 'the receiver got two requests');
  const pinged = hook.requests.find((request) => request.payload.type === 'ping')!;
  const sent = hook.requests.find((request) => request.payload.type === 'referral.sent')!;
  t.ok(pinged && sent, 'a ping and a referral.sent event');

  t.equal(pinged.id, eventId, 'webhook-id is the event id');
  t.match(pinged.timestamp, /^\d+$/, 'webhook-timestamp is whole unix seconds');
  t.ok(Number(pinged.timestamp) >= Math.floor(before / 1000) - 1 && Number(pinged.timestamp) <= Math.ceil(after / 1000) + 1, 'webhook-timestamp is now');
  t.match(pinged.signature, /^v1,[A-Za-z0-9+/]+=*$/, 'webhook-signature is v1, + base64');
  t.match(pinged.headers['content-type'], /^application\/json/, 'the body is JSON');
  assertSigned(t, pinged, endpoint.secret, 'the ping');
  t.match(pinged.payload, { type: 'ping', timestamp: String, data: { resource: 'webhook_endpoint', id: endpoint.id } }, 'the ping payload');

  assertSigned(t, sent, endpoint.secret, 'the referral.sent event');
  t.match(sent.payload, {
    type: 'referral.sent',
    data: { resource: 'referral', id: referralId, referralId, status: 'sent', url: `/v1/referrals/${referralId}` },
  });
  t.ok(sent.payload.data.organizations.includes(office.id) && sent.payload.data.organizations.includes(practice.id), 'names the office and the practice');
  for (const clinical of ['Maria', 'Gomez', 'low back', 'M54.50', 'trigger']) t.notOk(sent.body.includes(clinical), `the thin payload carries no "${clinical}"`);
  const [event] = await test.app.db.select().from(webhookEvents).where(eq(webhookEvents.id, sent.id));
  t.ok(event, 'the referral.sent webhook-id is its event id');

  const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'succeeded', attempts: 1, lastStatusCode: 200, lastError: null, eventType: 'ping' });
  t.equal(delivery.attemptLog.length, 1, 'one attempt recorded');
  t.match(delivery.attemptLog[0], { statusCode: 200, error: null, responseExcerpt: 'ok' });
  t.ok(Number.isInteger(delivery.attemptLog[0].latencyMs) && delivery.attemptLog[0].latencyMs >= 0 && delivery.attemptLog[0].latencyMs < 5000, 'latency recorded in ms');

  const health = await readEndpoint(test, office.admin.token, endpoint.id);
  t.equal(health.failingSince, null, 'not failing');
  t.ok(health.lastSuccessAt && Date.parse(health.lastSuccessAt) >= before - 1000, 'lastSuccessAt set');
  t.equal(await test.app.webhookWorker.runOnce(), 0, 'nothing is delivered again');
  t.equal(hook.requests.length, 2, 'still two requests');
});

t.test('a 500 is retried on the schedule with jitter, then dead; failingSince set and cleared by a later success', async (t) => {
  let status = 500;
  const hook = await startReceiver(t, (_request, response) => {
    response.writeHead(status);
    response.end(status === 500 ? 'boom' : 'ok');
  });
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventId = await ping(test, office.admin.token, endpoint.id);

  const first = await timedRound(test);
  t.equal(first.claimed, 1, 'the first attempt is made at once');
  let delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: 500, lastError: /500/ });
  assertDelay(t, delivery, first, 54, 66, 'the next attempt ≈ 60 s ± 10% later');
  t.match(delivery.attemptLog, [{ statusCode: 500, responseExcerpt: 'boom', error: /500/ }]);
  let health = await readEndpoint(test, office.admin.token, endpoint.id);
  t.ok(health.failingSince, 'failingSince is set after the failure');
  t.equal(health.status, 'active', 'still active');
  const failingSince = health.failingSince;

  t.equal(await test.app.webhookWorker.runOnce(), 0, 'not retried before it is due');

  await makeDue(test, { eventId });
  const second = await timedRound(test);
  t.equal(second.claimed, 1, 'the second attempt when due');
  delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'pending', attempts: 2 });
  assertDelay(t, delivery, second, 108, 132, 'the next attempt ≈ 120 s ± 10% later');
  t.equal((await readEndpoint(test, office.admin.token, endpoint.id)).failingSince, failingSince, 'failingSince keeps the first failure');

  await makeDue(test, { eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the third and last scheduled attempt');
  delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'dead', attempts: 3, lastStatusCode: 500 });
  t.equal(delivery.attemptLog.length, 3, 'three attempts logged');
  t.equal(hook.requests.length, 3, 'the receiver got three requests');
  t.same(new Set(hook.requests.map((request) => request.id)), new Set([eventId]), 'webhook-id is the same event id on every retry');
  for (const request of hook.requests) assertSigned(t, request, endpoint.secret, 'a retry');

  await test.app.database.rows(sql`update webhook_deliveries set next_attempt_at = now() - interval '1 hour' where event_id = ${eventId}::uuid`);
  t.equal(await test.app.webhookWorker.runOnce(), 0, 'a dead delivery is never claimed again');
  health = await readEndpoint(test, office.admin.token, endpoint.id);
  t.ok(health.failingSince, 'still failing');

  status = 200;
  const later = await ping(test, office.admin.token, endpoint.id);
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  t.match(await deliveryOf(test, office.admin.token, endpoint.id, later), { status: 'succeeded', attempts: 1 });
  health = await readEndpoint(test, office.admin.token, endpoint.id);
  t.equal(health.failingSince, null, 'a success clears failingSince');
  t.ok(health.lastSuccessAt, 'and sets lastSuccessAt');
});

t.test('retries failing at the same moment are spread by the jitter, each within ±10% of the step', async (t) => {
  const hook = await startReceiver(t, answer(500));
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventIds: string[] = [];
  for (let i = 0; i < 10; i++) eventIds.push(await ping(test, office.admin.token, endpoint.id));
  const round = await timedRound(test);
  t.equal(round.claimed, 10, 'all ten fail in one round');
  const failed = await deliveriesOf(test, endpoint.id, office.admin.token);
  t.equal(failed.length, 10);
  for (const delivery of failed) assertDelay(t, delivery, round, 54, 66, 'a next attempt ≈ 60 s ± 10% later');
  // Without jitter they would all lie within the round's duration of each other.
  const times = failed.map((delivery) => Date.parse(delivery.nextAttemptAt) / 1000);
  const spread = Math.max(...times) - Math.min(...times);
  t.ok(spread > 2.4 + (round.after - round.before) / 1000, `they are spread over more than 2.4 s of the 12 s window (${spread.toFixed(2)} s)`);
});

t.test('Retry-After on 429 and 503 is honoured, in seconds or as an HTTP date, over a shorter schedule step', async (t) => {

  await t.test('429 with Retry-After: 120 → the next attempt ≈ 120 s later, not the 60 s step', async (t) => {
    const hook = await startReceiver(t, answer(429, { 'retry-after': '120' }, 'slow down'));
    const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
    const eventId = await ping(test, office.admin.token, endpoint.id);
    const round = await timedRound(test);
    t.equal(round.claimed, 1);
    const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
    t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: 429 });
    assertDelay(t, delivery, round, 119.9, 120.1, 'the next attempt 120 s later');
  });

  await t.test('503 with an HTTP-date Retry-After about 200 s ahead → the next attempt at that date', async (t) => {
    let retryAt = 0;
    const hook = await startReceiver(t, (_request, response) => {
      retryAt = Date.now() + 200_000;
      response.writeHead(503, { 'retry-after': new Date(retryAt).toUTCString() });
      response.end('maintenance');
    });
    const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
    const eventId = await ping(test, office.admin.token, endpoint.id);
    t.equal(await test.app.webhookWorker.runOnce(), 1);
    const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
    t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: 503 });
    // HTTP dates have whole seconds: the date sent lies in (retryAt - 1 s, retryAt].
    const offset = (Date.parse(delivery.nextAttemptAt) - retryAt) / 1000;
    t.ok(offset >= -2 && offset <= 1, `next attempt at the Retry-After date (off by ${offset} s)`);
  });
});

t.test('410 Gone disables the endpoint at once; the delivery is dead; its organization hears of it on its other endpoints', async (t) => {
  const gone = await startReceiver(t, answer(410, {}, 'gone'));
  const watcher = await startReceiver(t);
  const sibling = await startReceiver(t);
  const stranger = await startReceiver(t);
  const goneEndpoint = await registerEndpoint(t, test, office.admin.token, { url: gone.url, eventTypes: ['referral.sent'] });
  const watcherEndpoint = await registerEndpoint(t, test, office.admin.token, { url: watcher.url, eventTypes: ['webhook_endpoint.disabled'] });
  const siblingEndpoint = await registerEndpoint(t, test, office.admin.token, { url: sibling.url, eventTypes: ['referral.sent'] });
  await registerEndpoint(t, test, otherOffice.admin.token, { url: stranger.url, eventTypes: ['webhook_endpoint.disabled'] });

  const firstPing = await ping(test, office.admin.token, goneEndpoint.id);
  // Queued before the 410, due after it.
  const queuedPing = await ping(test, office.admin.token, goneEndpoint.id);
  await test.app.database.rows(sql`update webhook_deliveries set next_attempt_at = now() + interval '1 hour' where event_id = ${queuedPing}::uuid`);
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the first ping is sent');
  t.equal(gone.requests.length, 1, 'the receiver got the first ping');

  const endpoint = await readEndpoint(test, office.admin.token, goneEndpoint.id);
  t.equal(endpoint.status, 'disabled', 'the endpoint is disabled at once');
  t.match(endpoint.disabledReason, /410/, 'its reason names the 410');
  const first = await deliveryOf(test, office.admin.token, goneEndpoint.id, firstPing);
  t.match(first, { status: 'dead', attempts: 1, lastStatusCode: 410 });
  t.match(first.attemptLog, [{ statusCode: 410, responseExcerpt: 'gone' }]);

  await makeDue(test, { eventId: queuedPing });
  await drain(test);
  t.equal(gone.requests.length, 1, 'the ping queued before the 410 is not sent');
  t.match(await deliveryOf(test, office.admin.token, goneEndpoint.id, queuedPing), { status: 'dead', attemptLog: [] });

  t.equal(watcher.requests.length, 1, 'the organization’s endpoint subscribed to webhook_endpoint.disabled got one event');
  const told = watcher.requests[0]!;
  t.match(told.payload, { type: 'webhook_endpoint.disabled', data: { resource: 'webhook_endpoint', id: goneEndpoint.id, status: 'disabled', reason: /410/ } });
  assertSigned(t, told, watcherEndpoint.secret, 'the disabled event');
  t.equal(sibling.requests.length, 0, 'an endpoint not subscribed to webhook_endpoint.disabled is not told');
  t.equal(stranger.requests.length, 0, 'another organization is not told');

  // Later events: neither a new referral nor a ping reaches the disabled endpoint.
  await sendReferral(test, office, practice);
  const refusedPing = await test.request({ method: 'POST', url: `/v1/webhook-endpoints/${goneEndpoint.id}/test`, token: office.admin.token });
  expectStatus(t, refusedPing, 409, 'a ping to the disabled endpoint is refused');
  t.equal(refusedPing.json().code, 'endpoint-disabled', 'saying the endpoint is disabled');
  await drain(test);
  t.equal(gone.requests.length, 1, 'the disabled endpoint receives nothing more');
  t.equal(sibling.requests.filter((request) => request.payload.type === 'referral.sent').length, 1, 'the active sibling still gets referral.sent');
  const [row] = await test.app.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, siblingEndpoint.id));
  t.equal(row?.status, 'active', 'the sibling stays active');
});

t.test('a receiver that never answers: the attempt times out after WEBHOOK_TIMEOUT_MS and is retried later', async (t) => {
  const { test } = impatient;
  const office = impatientOffice;
  let hang = true;
  const hook = await startReceiver(t, (_request, response) => {
    if (!hang) response.end('ok');
  });
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventId = await ping(test, office.admin.token, endpoint.id);

  const started = performance.now();
  const round = await timedRound(test);
  const took = performance.now() - started;
  t.equal(round.claimed, 1);
  t.equal(hook.requests.length, 1, 'the receiver got the request');
  t.ok(took < 2000, `the round ends soon after the timeout (${Math.round(took)} ms)`);
  const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: null, lastError: /timed out/ });
  t.match(delivery.attemptLog, [{ statusCode: null, error: /timed out/ }]);
  const latency = delivery.attemptLog[0].latencyMs;
  t.ok(latency >= 280 && latency < 2000, `the attempt took ≈ 300 ms (${latency} ms)`);
  t.ok(Date.parse(delivery.nextAttemptAt) > round.after, 'retried later');
  t.ok((await readEndpoint(test, office.admin.token, endpoint.id)).failingSince, 'a timeout is a failure');

  hang = false;
  await makeDue(test, { eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the retry');
  t.match(await deliveryOf(test, office.admin.token, endpoint.id, eventId), { status: 'succeeded', attempts: 2 });
  t.same(hook.requests.map((request) => request.id), [eventId, eventId], 'the same webhook-id both times');
});

t.test('a redirect is not followed: the target of the Location receives nothing, the attempt fails with 302', async (t) => {
  const target = await startReceiver(t);
  const redirecting = await startReceiver(t, answer(302, { location: target.url }, ''));
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: redirecting.url, eventTypes: ['referral.sent'] });
  const eventId = await ping(test, office.admin.token, endpoint.id);
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(redirecting.requests.length, 1, 'the endpoint got the request');
  t.equal(target.requests.length, 0, 'the redirect target got nothing');
  const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: 302, lastError: /302/ });
  t.match(delivery.attemptLog, [{ statusCode: 302, error: /302/ }]);
  t.ok((await readEndpoint(test, office.admin.token, endpoint.id)).failingSince, 'a redirect counts as a failure');
});

t.test('an oversized response: the worker reads a bounded excerpt of a 10 MB answer and moves on', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  const total = 10 * 1024 * 1024;
  let huge = true;
  const hook = await startReceiver(t, (_request, response) => {
    if (!huge) {
      response.end('ok');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(total) });
    let sent = 0;
    const pump = () => {
      while (sent < total && !response.destroyed) {
        sent += chunk.length;
        if (!response.write(chunk)) return response.once('drain', pump);
      }
      if (!response.destroyed) response.end();
    };
    pump();
  });
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventId = await ping(test, office.admin.token, endpoint.id);
  const started = performance.now();
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  const took = performance.now() - started;
  t.ok(took < 2000, `the attempt completes quickly (${Math.round(took)} ms)`);
  const delivery = await deliveryOf(test, office.admin.token, endpoint.id, eventId);
  t.match(delivery, { status: 'succeeded', attempts: 1, lastStatusCode: 200 });
  const excerpt: string = delivery.attemptLog[0].responseExcerpt;
  t.ok(excerpt.length > 0 && excerpt.length <= 4096, `the excerpt is at most 4096 characters (${excerpt.length})`);
  t.match(excerpt, /^a+$/, 'and is the start of the answer');

  huge = false;
  const next = await ping(test, office.admin.token, endpoint.id);
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the worker is not stuck: the next delivery goes out');
  t.match(await deliveryOf(test, office.admin.token, endpoint.id, next), { status: 'succeeded' });
});

t.test('an endpoint failing for longer than WEBHOOK_DISABLE_AFTER_SECONDS is disabled on its next failure, and its organization is told', async (t) => {
  const { test } = impatient;
  const office = impatientOffice;
  const failing = await startReceiver(t, answer(500, {}, 'down'));
  const watcher = await startReceiver(t);
  const failingEndpoint = await registerEndpoint(t, test, office.admin.token, { url: failing.url, eventTypes: ['referral.sent'] });
  const watcherEndpoint = await registerEndpoint(t, test, office.admin.token, { url: watcher.url, eventTypes: ['webhook_endpoint.disabled'] });

  const eventId = await ping(test, office.admin.token, failingEndpoint.id);
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  let endpoint = await readEndpoint(test, office.admin.token, failingEndpoint.id);
  t.equal(endpoint.status, 'active', 'the first failure does not disable it');
  t.ok(endpoint.failingSince, 'the failure clock starts');

  // Failing since well before the period: the next failure is past it.
  await test.app.database.rows(sql`update webhook_endpoints set failing_since = now() - interval '10 seconds' where id = ${failingEndpoint.id}::uuid`);
  await makeDue(test, { eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the next attempt fails again');
  endpoint = await readEndpoint(test, office.admin.token, failingEndpoint.id);
  t.equal(endpoint.status, 'disabled', 'the endpoint is disabled');
  t.match(endpoint.disabledReason, /no successful delivery/, 'with the reason');

  const events = await test.app.db
    .select()
    .from(webhookEvents)
    .where(sql`${webhookEvents.type} = 'webhook_endpoint.disabled' and ${webhookEvents.payload} -> 'data' ->> 'id' = ${failingEndpoint.id}`);
  t.equal(events.length, 1, 'one webhook_endpoint.disabled event is queued');
  const queued = await test.app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, events[0]!.id));
  t.same(queued.map((delivery) => delivery.endpointId), [watcherEndpoint.id], 'for the organization’s other subscribed endpoint only');

  await makeDue(test, { eventId });
  await drain(test);
  t.equal(watcher.requests.length, 1, 'the watcher receives it');
  t.match(watcher.requests[0]!.payload, { type: 'webhook_endpoint.disabled', data: { id: failingEndpoint.id, status: 'disabled', reason: /no successful delivery/ } });
  assertSigned(t, watcher.requests[0]!, watcherEndpoint.secret, 'the disabled event');
  t.equal(failing.requests.length, 2, 'the disabled endpoint gets no further attempt');
  t.match(await deliveryOf(test, office.admin.token, failingEndpoint.id, eventId), { status: 'dead', attempts: 3 });
});

t.test('leases: a delivery whose worker died is claimed again; one with a live lease is left alone', async (t) => {
  const hook = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const orphan = await ping(test, office.admin.token, endpoint.id);
  const held = await ping(test, office.admin.token, endpoint.id);
  await test.app.database.rows(
    sql`update webhook_deliveries set status = 'delivering', attempts = 1, lease_expires_at = now() - interval '1 minute' where event_id = ${orphan}::uuid`,
  );
  await test.app.database.rows(
    sql`update webhook_deliveries set status = 'delivering', attempts = 1, lease_expires_at = now() + interval '10 minutes' where event_id = ${held}::uuid`,
  );
  const [heldBefore] = await test.app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, held));

  t.equal(await test.app.webhookWorker.runOnce(), 1, 'only the expired claim is taken');
  t.same(hook.requests.map((request) => request.id), [orphan], 'the orphaned delivery is sent');
  t.match(await deliveryOf(test, office.admin.token, endpoint.id, orphan), { status: 'succeeded', attempts: 2 });

  const [heldAfter] = await test.app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, held));
  t.same(
    { status: heldAfter!.status, attempts: heldAfter!.attempts, lease: heldAfter!.leaseExpiresAt?.getTime() },
    { status: 'delivering', attempts: 1, lease: heldBefore!.leaseExpiresAt?.getTime() },
    'the delivery under a live lease is untouched',
  );
  t.equal((await test.app.db.select().from(webhookAttempts).where(eq(webhookAttempts.deliveryId, heldAfter!.id))).length, 0, 'and has no attempt');
  t.equal(await test.app.webhookWorker.runOnce(), 0, 'nothing else is due');
});

t.test('in order per referral: later events wait for an unfinished earlier one to the same endpoint; other referrals flow', async (t) => {
  const failSent = new Set<string>();
  const hook = await startReceiver(t, (request, response) => {
    const fail = request.payload.type === 'referral.sent' && failSent.has(request.payload.data.referralId);
    response.writeHead(fail ? 500 : 200);
    response.end();
  });
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent', 'referral.cancelled'] });
  const seen = (referralId: string) => hook.requests.filter((request) => request.payload.data?.referralId === referralId).map((request) => request.payload.type);
  const deliveryFor = async (referralId: string, type: string) => {
    const [event] = await test.app.db
      .select()
      .from(webhookEvents)
      .where(sql`${webhookEvents.referralId} = ${referralId}::uuid and ${webhookEvents.type} = ${type}`);
    return deliveryOf(test, office.admin.token, endpoint.id, event!.id);
  };

  // A: its referral.sent fails at first, then succeeds. C: its referral.sent fails until dead.
  const a = await sendReferral(test, office, practice);
  await cancelReferral(test, office, a);
  const b = await sendReferral(test, office, practice);
  const c = await sendReferral(test, office, practice);
  await cancelReferral(test, office, c);
  failSent.add(a);
  failSent.add(c);

  t.equal(await test.app.webhookWorker.runOnce(), 3, 'the round claims the first event of each referral only');
  t.same(seen(a), ['referral.sent'], 'A: only its first event was tried');
  t.same(seen(c), ['referral.sent'], 'C: only its first event was tried');
  t.same(seen(b), ['referral.sent'], 'B flows');
  t.match(await deliveryFor(a, 'referral.cancelled'), { status: 'pending', attempts: 0 }, 'A’s second event waits');

  const d = await sendReferral(test, office, practice);
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'a referral sent meanwhile is delivered');
  t.same(seen(d), ['referral.sent'], 'D flows while A and C wait');
  t.same(seen(a), ['referral.sent'], 'A’s cancellation still waits');
  t.same(seen(c), ['referral.sent'], 'C’s cancellation still waits');

  // A's first event succeeds on its retry; only then its cancellation goes out.
  failSent.delete(a);
  await makeDue(test, { eventId: (await deliveryFor(a, 'referral.sent')).eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the retry of A’s first event, alone');
  t.same(seen(a), ['referral.sent', 'referral.sent'], 'A’s cancellation was not sent alongside its retry');
  await drain(test);
  t.same(seen(a), ['referral.sent', 'referral.sent', 'referral.cancelled'], 'A: the cancellation after the first event succeeded');
  t.match(await deliveryFor(a, 'referral.cancelled'), { status: 'succeeded' });
  t.same(seen(c), ['referral.sent'], 'C still waits');

  // C's first event dies after the last scheduled attempt; then its cancellation goes out.
  await makeDue(test, { eventId: (await deliveryFor(c, 'referral.sent')).eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  t.same(seen(c), ['referral.sent', 'referral.sent'], 'C’s second attempt, and nothing else of C');
  await makeDue(test, { eventId: (await deliveryFor(c, 'referral.sent')).eventId });
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  t.match(await deliveryFor(c, 'referral.sent'), { status: 'dead', attempts: 3 });
  t.same(seen(c), ['referral.sent', 'referral.sent', 'referral.sent'], 'C’s cancellation not sent in the round its first event died');
  await drain(test);
  t.same(seen(c), ['referral.sent', 'referral.sent', 'referral.sent', 'referral.cancelled'], 'C: the cancellation after the first event died');
  t.match(await deliveryFor(c, 'referral.cancelled'), { status: 'succeeded', attempts: 1 });
});

t.test('several workers at once deliver 50 pending deliveries, each exactly once', async (t) => {
  const hook = await startReceiver(t, (_request, response) => {
    setTimeout(() => response.end('ok'), Math.floor(Math.random() * 20));
  });
  t.equal(test.config.webhooks.concurrency, 32, 'each round claims up to 32, so any two of the five rounds at once could take all 50');
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventIds: string[] = [];
  for (let i = 0; i < 50; i++) eventIds.push(await ping(test, office.admin.token, endpoint.id));
  // A second worker on the same database, as another process would be.
  const second = new DeliveryWorker(test.app.db, test.app.database, { config: test.config.webhooks, log: test.app.log, secretBox: test.app.dataEncryption, referralsTakenPartIn: (organization, referralIds) => test.app.referrals.referralsOrganizationTakesPartIn(organization, referralIds), units: test.app.unitOfWork, formats: test.app.webhookFormats });
  const workers = [test.app.webhookWorker, second, test.app.webhookWorker, second, test.app.webhookWorker];

  let claimed = 0;
  for (let round = 0; round < 20; round++) {
    const counts = await Promise.all(workers.map((worker) => worker.runOnce()));
    claimed += counts.reduce((sum, count) => sum + count, 0);
    if (counts.every((count) => count === 0)) break;
  }
  t.equal(claimed, 50, 'the workers claimed 50 deliveries in all, none twice');
  t.equal(hook.requests.length, 50, 'the receiver got 50 requests');
  t.equal(new Set(hook.requests.map((request) => request.id)).size, 50, '50 unique webhook-ids');
  t.same([...new Set(hook.requests.map((request) => request.id))].sort(), [...eventIds].sort(), 'exactly the queued events');
  const rows = await test.app.db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.eventId, eventIds));
  t.same(
    rows.filter((row) => row.status !== 'succeeded' || row.attempts !== 1).map((row) => ({ status: row.status, attempts: row.attempts })),
    [],
    'every delivery succeeded on its one attempt',
  );
  const attempts = await test.app.db
    .select()
    .from(webhookAttempts)
    .where(inArray(webhookAttempts.deliveryId, rows.map((row) => row.id)));
  t.equal(attempts.length, 50, '50 attempts recorded');
});

t.test('no event for a rolled-back change: a referral refused with 409 writes no webhook event and sends nothing', async (t) => {
  const hook = await startReceiver(t);
  await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const count = async (table: 'webhook_events' | 'webhook_deliveries') =>
    ((await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)}`))[0]!).n;
  const eventsBefore = await count('webhook_events');
  const deliveriesBefore = await count('webhook_deliveries');

  const response = await test.request({
    method: 'POST',
    url: '/v1/referrals',
    token: office.physician.token,
    payload: referralTo(practice, { therapistId: undefined, network: { techniques: ['craniosacral'], near: { lat: 0, lng: 0 }, radiusKm: 5 } }),
  });
  expectStatus(t, response, 409, 'a network offer nobody matches');
  t.equal(response.json().code, 'no-matching-therapist');
  t.equal(await count('webhook_events'), eventsBefore, 'no webhook_events row');
  t.equal(await count('webhook_deliveries'), deliveriesBefore, 'no webhook_deliveries row');
  t.equal(await test.app.webhookWorker.runOnce(), 0, 'nothing to deliver');
  t.equal(hook.requests.length, 0, 'the receiver got nothing');

  // The same endpoint does get the event of a change that commits.
  const referralId = await sendReferral(test, office, practice);
  t.equal(await count('webhook_events'), eventsBefore + 1, 'a committed referral writes its event');
  t.equal(await test.app.webhookWorker.runOnce(), 1);
  t.same(hook.requests.map((request) => [request.payload.type, request.payload.data.referralId]), [['referral.sent', referralId]], 'and it is delivered');
});
