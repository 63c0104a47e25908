// Which events reach a partner EHR, and signed how (SPEC §8, issue 4): the ping, the secret and
// its rotation, the outbox of the referral workflow (every event type, only to subscribed endpoints
// of the organizations taking part, thin payloads without clinical text, in order), nothing for a
// rolled-back change, and an endpoint disabled by a 410. Every delivery is verified with the
// standardwebhooks package, the specification's reference library; receivers are node:http
// servers on 127.0.0.1 (test/fixtures/partner-ehr.ts).
import { randomBytes } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { referrals as referralsTable } from '../src/db/schema.js';
import { countRows } from './fixtures/database.js';
import { fakeDns } from './fixtures/fake-dns.js';
import { createOffice, createPractice, type OfficeFixture } from './fixtures/network.js';
import { startReceiver, verified, verifies, type Delivered, type Receiver } from './fixtures/partner-ehr.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { expectStatus, isoTimestampPattern as isoTimestamp, uuidPattern as uuid } from './fixtures/responses.js';
import { buildWebhookApp, deliveriesOf, drain, endpointUrl, registerEndpoint, specEventTypes } from './fixtures/webhooks.js';
import { auditEvents, type Json, type TestApp, type TestResponse } from './helper.js';

const dayMs = 86_400_000;
const isoDate = (offsetDays: number) => new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);
const unique = () => randomBytes(3).toString('hex');
const randomSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

// Loopback receivers allowed; a failed attempt is retried once, about 30 s later.
const loopbackDns = fakeDns();
const loopback = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,30', WEBHOOK_TIMEOUT_MS: '2000' }, loopbackDns.resolve);

// Every organization is made before any test runs: the app closes when the tests end. An office,
// the practice its referrals go to, and a practice and an office that take no part.
const lAdmin = await loopback.loginAsAdmin();
const [lOffice, lPractice, lBystander, lOtherOffice] = await Promise.all([
  createOffice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createOffice(loopback, lAdmin),
]);

/** Every clinical string the tests put into referrals, notes and messages: none may reach a receiver. */
const clinicalText: string[] = ['Gomez', '1978-04-02', 'Low back pain, unspecified'];
const remember = (text: string) => {
  clinicalText.push(text);
  return text;
};

async function sentReferral(app: TestApp, office: OfficeFixture, target: Json): Promise<Json> {
  return app.create('/v1/referrals', office.physician.token, referralBody({ reason: remember(`Chronic lumbar paraspinal trigger points, case ${unique()}`), send: true, ...target }));
}

async function post(app: TestApp, url: string, token: string, payload?: Json): Promise<Json> {
  const response = await app.request({ method: 'POST', url, token, ...(payload ? { payload } : {}) });
  if (response.statusCode >= 300) throw new Error(`POST ${url} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

const amend = (app: TestApp, referralId: string, office: OfficeFixture, visitsAuthorized: number) =>
  app.request({
    method: 'PATCH',
    url: `/v1/referrals/${referralId}`,
    token: office.physician.token,
    payload: { visitsAuthorized, reason: remember(`Extra visits for persistent sciatica ${unique()}`) },
  });

const visitNote = (final: boolean) =>
  visitNoteBody({
    subjective: remember(`Pain 6/10 after shifts ${unique()}`),
    objective: remember(`Taut bands in left quadratus lumborum ${unique()}`),
    assessment: remember(`Improving tolerance to pressure ${unique()}`),
    plan: remember(`Home stretching program ${unique()}`),
    final,
  });

/** A payload as SPEC §8 shapes it: exactly type, timestamp and a thin data. */
function assertThinPayload(t: Test, payload: Json, expected: { type: string; resource: string; id: string; referralId: string; status: string; organizations: string[]; url: string }) {
  t.same(Object.keys(payload).sort(), ['data', 'timestamp', 'type'], `${expected.type}: the payload is {type, timestamp, data}`);
  t.match(payload.timestamp, isoTimestamp, `${expected.type}: an RFC 3339 UTC timestamp`);
  t.same(
    { ...payload.data, organizations: [...(payload.data?.organizations ?? [])].sort() },
    {
      resource: expected.resource,
      id: expected.id,
      referralId: expected.referralId,
      status: expected.status,
      organizations: [...expected.organizations].sort(),
      url: expected.url,
    },
    `${expected.type}: data names the ${expected.resource}, the referral (${expected.status}) and who takes part, nothing else`,
  );
  t.equal(payload.type, expected.type);
}

const endpointFields = (body: Json) => {
  const { secret: _secret, ...rest } = body;
  return rest;
};
const payloadOf = (delivered: Delivered): Json => JSON.parse(delivered.body);

t.test('rotate-secret: a new secret; for 24 hours every delivery carries two v1 signatures, and both the old and the new secret verify it', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent'] });
  const oldSecret: string = endpoint.secret;

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'one delivery before the rotation');
  const before = receiver.requests[0]!;
  t.match(before.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/, 'one v1 signature');
  verified(t, before, oldSecret, 'the delivery before the rotation');
  t.notOk(verifies(before, randomSecret()), 'another secret does not verify it');

  const requestedAt = Date.now();
  const response = await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/rotate-secret`, token: lOffice.admin.token });
  const rotated = expectStatus(t, response, 200, 'rotate');
  const answeredAt = Date.now();
  t.match(rotated.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/, 'a new whsec_ secret');
  t.equal(Buffer.from(rotated.secret.slice(6), 'base64').length, 32);
  t.not(rotated.secret, oldSecret, 'not the old one');
  const overlapEnds = Date.parse(rotated.previousSecretExpiresAt);
  t.ok(
    overlapEnds >= requestedAt + dayMs - 1000 && overlapEnds <= answeredAt + dayMs + 1000,
    `previousSecretExpiresAt is 24 h from now (${rotated.previousSecretExpiresAt})`,
  );
  t.match(rotated.lastSuccessAt, isoTimestamp, 'the delivery before counted as a success');
  t.same(
    endpointFields(rotated),
    { ...endpointFields(endpoint), previousSecretExpiresAt: rotated.previousSecretExpiresAt, lastSuccessAt: rotated.lastSuccessAt, updatedAt: rotated.updatedAt },
    'otherwise the same endpoint',
  );
  const read = await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lOffice.admin.token });
  t.same(expectStatus(t, read, 200, 'read'), endpointFields(rotated), 'a read shows the overlap, and no secret');
  t.notOk(read.body.includes(rotated.secret.slice(6)) || read.body.includes(oldSecret.slice(6)), 'neither secret is in the read');
  t.same(
    (await auditEvents(loopback, { action: 'webhook_endpoint.rotate_secret', resourceId: endpoint.id })).map((event) => [event.actorId, event.outcome]),
    [[lOffice.admin.id, 'success']],
    'the rotation is audited',
  );

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  const ping = await post(loopback, `${endpointUrl(endpoint.id)}/test`, lOffice.admin.token);
  await drain(loopback);
  t.equal(receiver.requests.length, 3, 'a referral event and a ping during the overlap');
  for (const delivered of receiver.requests.slice(1)) {
    const what = payloadOf(delivered).type;
    const signatures = String(delivered.headers['webhook-signature']).split(' ');
    t.equal(signatures.length, 2, `${what}: two space-separated signatures`);
    t.ok(signatures.every((signature) => /^v1,[A-Za-z0-9+/]+={0,2}$/.test(signature)), `${what}: both v1`);
    verified(t, delivered, rotated.secret, `${what} with the new secret`);
    verified(t, delivered, oldSecret, `${what} with the old secret`);
    t.notOk(verifies(delivered, randomSecret()), `${what}: a third secret does not verify it`);
    // Each signature on its own: one is the new secret's, the other the old one's.
    const signers = signatures.map((signature) => {
      const alone = { ...delivered, headers: { ...delivered.headers, 'webhook-signature': signature } };
      return [verifies(alone, rotated.secret) ? 'new' : '', verifies(alone, oldSecret) ? 'old' : ''].filter(Boolean).join('+');
    });
    t.same([...signers].sort(), ['new', 'old'], `${what}: one signature by each secret`);
  }
  t.same(
    receiver.requests.slice(1).map((delivered) => payloadOf(delivered).type).sort(),
    ['ping', 'referral.sent'],
    'the ping too was signed by both',
  );
  t.ok(receiver.requests.some((delivered) => delivered.headers['webhook-id'] === ping.eventId), 'the ping arrived under its event id');

  // When the overlap is over, only the new secret signs.
  await loopback.app.database.rows(sql`update webhook_endpoints set previous_secret_expires_at = now() - interval '1 second' where id = ${endpoint.id}::uuid`);
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  const after = receiver.requests[3]!;
  t.match(after.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/, 'after the overlap: one signature');
  verified(t, after, rotated.secret, 'the delivery after the overlap, with the new secret');
  t.notOk(verifies(after, oldSecret), 'the old secret no longer verifies');
});

t.test('test (ping): 202 with the event id; the worker delivers a ping signed with the secret, even to an endpoint subscribed to other events', async (t) => {
  const receiver = await startReceiver(t, () => ({ status: 204 }));
  const endpoint = await registerEndpoint(t, loopback, lPractice.admin.token, { url: `${receiver.url}/ping-me`, eventTypes: ['referral.completed'] });

  const response = await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lPractice.admin.token });
  const queued = expectStatus(t, response, 202, 'ping');
  t.same(Object.keys(queued), ['eventId']);
  t.match(queued.eventId, uuid);
  t.same(
    (await auditEvents(loopback, { action: 'webhook_endpoint.test', resourceId: endpoint.id })).map((event) => [event.actorId, event.outcome, event.httpStatus]),
    [[lPractice.admin.id, 'success', 202]],
    'the ping request is audited',
  );
  t.equal(receiver.requests.length, 0, 'nothing is sent until the worker runs');

  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'one delivery');
  const delivered = receiver.requests[0]!;
  t.equal(delivered.path, '/hooks/ping-me', 'to the registered URL');
  t.equal(delivered.headers['webhook-id'], queued.eventId, 'webhook-id is the event id');
  t.match(delivered.headers['content-type'], /^application\/json/);
  const timestamp = Number(delivered.headers['webhook-timestamp']);
  t.ok(Math.abs(timestamp - Date.now() / 1000) < 60, 'webhook-timestamp is now, in seconds');
  const payload = verified(t, delivered, endpoint.secret, 'the ping');
  t.same(payload, {
    type: 'ping',
    timestamp: payload.timestamp,
    data: { resource: 'webhook_endpoint', id: endpoint.id, organizations: [lPractice.id], url: endpointUrl(endpoint.id) },
  }, 'a ping naming the endpoint');
  t.match(payload.timestamp, isoTimestamp);

  const [delivery] = await deliveriesOf(loopback, endpoint.id, lPractice.admin.token);
  t.match(delivery, { eventId: queued.eventId, eventType: 'ping', referralId: null, status: 'succeeded', attempts: 1, lastStatusCode: 204, lastError: null });
  const endpointNow = expectStatus(t, await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lPractice.admin.token }), 200, 'read');
  t.match(endpointNow.lastSuccessAt, isoTimestamp, 'the endpoint records its last success');

  expectStatus(t, await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lPractice.therapist.token }), 403, 'a therapist may not ping');
  expectStatus(t, await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lOffice.admin.token }), 404, "another organization's admin may not ping");
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'neither queued anything');
});

t.test('the outbox: the referral workflow produces every event of SPEC §8, each delivered only to subscribed endpoints of the organizations taking part, thin and in order', async (t) => {
  const receivers: Record<string, Receiver> = {};
  const endpoints: Record<string, Json> = {};
  const subscribe = async (name: string, token: string, eventTypes: readonly string[]) => {
    receivers[name] = await startReceiver(t);
    endpoints[name] = await registerEndpoint(t, loopback, token, { url: `${receivers[name]!.url}/${name}`, eventTypes });
  };
  await subscribe('office', lOffice.admin.token, specEventTypes);
  await subscribe('officeMessages', lOffice.admin.token, ['message.created']);
  await subscribe('practice', lPractice.admin.token, specEventTypes);
  await subscribe('practiceAccepted', lPractice.admin.token, ['referral.accepted']);
  await subscribe('bystander', lBystander.admin.token, specEventTypes);
  await subscribe('otherOffice', lOtherOffice.admin.token, specEventTypes);
  const eventsBefore = await countRows(loopback, sql`select count(*) as n from webhook_events`);

  // What each change should announce, in order: the referral, the type, the resource and the referral's status after the change.
  const expected: { referral: string; type: string; resource: string; id: string; status: string; url: string }[] = [];
  const announce = (referral: string, type: string, status: string, resource?: { type: string; id: string; url: string }) =>
    expected.push({ referral, type, status, resource: resource?.type ?? 'referral', id: resource?.id ?? referral, url: resource?.url ?? `/v1/referrals/${referral}` });

  // One referral through its life: sent, accepted, amended, discussed, treated, completed.
  const treated = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(treated.id, 'referral.sent', 'sent');
  await post(loopback, `/v1/referrals/${treated.id}/accept`, lPractice.therapist.token, {});
  announce(treated.id, 'referral.accepted', 'accepted');
  t.equal((await amend(loopback, treated.id, lOffice, 16)).statusCode, 200, 'amended');
  announce(treated.id, 'referral.amended', 'accepted');
  const message = await post(loopback, `/v1/referrals/${treated.id}/messages`, lOffice.physician.token, { body: remember(`Any radicular symptoms after the last session? ${unique()}`) });
  announce(treated.id, 'message.created', 'accepted', { type: 'message', id: message.id, url: `/v1/referrals/${treated.id}/messages` });
  const firstNote = await post(loopback, `/v1/referrals/${treated.id}/progress-reports`, lPractice.therapist.token, visitNote(false));
  announce(treated.id, 'progress_report.created', 'in_progress', { type: 'progress_report', id: firstNote.id, url: `/v1/referrals/${treated.id}/progress-reports` });
  const finalNote = await post(loopback, `/v1/referrals/${treated.id}/progress-reports`, lPractice.therapist.token, visitNote(true));
  announce(treated.id, 'progress_report.created', 'completed', { type: 'progress_report', id: finalNote.id, url: `/v1/referrals/${treated.id}/progress-reports` });
  announce(treated.id, 'referral.completed', 'completed');

  // One declined by the practice, then cancelled by the office.
  const declined = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(declined.id, 'referral.sent', 'sent');
  await post(loopback, `/v1/referrals/${declined.id}/decline`, lPractice.therapist.token, { reason: remember(`Patient needs lymphatic drainage we do not offer ${unique()}`) });
  announce(declined.id, 'referral.declined', 'declined');
  await post(loopback, `/v1/referrals/${declined.id}/cancel`, lOffice.physician.token, { reason: remember(`Patient admitted to hospital ${unique()}`) });
  announce(declined.id, 'referral.cancelled', 'cancelled');

  // One that runs out of time.
  const expiring = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(expiring.id, 'referral.sent', 'sent');
  await loopback.app.db.update(referralsTable).set({ startDate: isoDate(-40), expiresOn: isoDate(-1) }).where(eq(referralsTable.id, expiring.id));
  t.equal(await loopback.app.expireReferrals(), 1, 'the sweep expires it');
  announce(expiring.id, 'referral.expired', 'expired');

  t.equal(
    await countRows(loopback, sql`select count(*) as n from webhook_events`),
    eventsBefore + expected.length,
    `one outbox event per change (${expected.length})`,
  );
  for (const receiver of Object.values(receivers)) t.equal(receiver.requests.length, 0, 'nothing is sent before the worker runs');

  await drain(loopback);

  const participants = [lOffice.id, lPractice.id];
  const checkEndpoint = (t: Test, name: string, types: readonly string[]) => {
    const receiver = receivers[name]!;
    const wanted = expected.filter((event) => types.includes(event.type));
    t.equal(receiver.requests.length, wanted.length, `${name}: ${wanted.length} deliveries`);
    const ids = receiver.requests.map((delivered) => delivered.headers['webhook-id']);
    t.equal(new Set(ids).size, ids.length, `${name}: each event once (unique webhook-id)`);
    const payloads = receiver.requests.map((delivered, index) => verified(t, delivered, endpoints[name]!.secret, `${name} delivery ${index + 1}`));
    for (const referral of [treated.id, declined.id, expiring.id]) {
      const arrived = payloads.filter((payload) => payload.data?.referralId === referral);
      const wantedHere = wanted.filter((event) => event.referral === referral);
      t.same(arrived.map((payload) => payload.type), wantedHere.map((event) => event.type), `${name}: the referral's events arrive in the order they happened`);
      wantedHere.forEach((event, index) => {
        if (arrived[index]) assertThinPayload(t, arrived[index]!, { ...event, referralId: referral, organizations: participants });
      });
    }
    return receiver.requests;
  };

  await t.test('the office and the practice get every event, subscribed to all', async (t) => {
    const office = checkEndpoint(t, 'office', specEventTypes);
    const practice = checkEndpoint(t, 'practice', specEventTypes);
    t.same(
      office.map((delivered) => delivered.headers['webhook-id']).sort(),
      practice.map((delivered) => delivered.headers['webhook-id']).sort(),
      'the same events (same webhook-id) reach both sides',
    );
    t.same(new Set(office.map((delivered) => payloadOf(delivered).type)), new Set(specEventTypes), 'all nine event types of SPEC §8 were produced');
  });
  await t.test('an endpoint subscribed to one event type gets only that type', async (t) => {
    checkEndpoint(t, 'practiceAccepted', ['referral.accepted']);
    checkEndpoint(t, 'officeMessages', ['message.created']);
  });
  await t.test('a practice and an office that take no part in the referrals receive nothing', async (t) => {
    t.equal(receivers.bystander!.connections, 0, 'the uninvolved practice: not even a connection');
    t.equal(receivers.otherOffice!.connections, 0, 'the uninvolved office: not even a connection');
    t.same(await deliveriesOf(loopback, endpoints.bystander!.id, lBystander.admin.token), [], 'no delivery was ever queued for the practice');
    t.same(await deliveriesOf(loopback, endpoints.otherOffice!.id, lOtherOffice.admin.token), [], 'nor for the office');
  });
  await t.test('the payloads carry no clinical text: no reason, note, message or patient detail', async (t) => {
    const bodies = Object.values(receivers).flatMap((receiver) => receiver.requests.map((delivered) => delivered.body));
    t.ok(bodies.length > 0);
    for (const text of clinicalText) t.notOk(bodies.some((body) => body.includes(text)), `"${text}" appears in no delivered body`);
  });
  await t.test('every delivery succeeded, and every attempt is audited as webhook.attempt on the webhook_delivery', async (t) => {
    for (const [name, token] of [
      ['office', lOffice.admin.token],
      ['practice', lPractice.admin.token],
    ] as const) {
      const deliveries = await deliveriesOf(loopback, endpoints[name]!.id, token);
      t.equal(deliveries.length, expected.length, `${name}: ${expected.length} deliveries`);
      t.ok(deliveries.every((delivery) => delivery.status === 'succeeded' && delivery.attempts === 1 && delivery.attemptLog.length === 1), `${name}: all succeeded at the first attempt`);
      for (const delivery of deliveries) {
        const audited = await auditEvents(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
        t.same(audited.map((event) => [event.resourceType, event.outcome, event.httpStatus]), [['webhook_delivery', 'success', 200]], `${name}: ${delivery.eventType} attempt audited`);
      }
    }
  });
});

t.test('a change that rolls back sends nothing', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: specEventTypes });
  const events = () => countRows(loopback, sql`select count(*) as n from webhook_events`);
  const deliveries = () => countRows(loopback, sql`select count(*) as n from webhook_deliveries`);

  await t.test('a referral sent to a network nobody matches: 409, no outbox event, no delivery', async (t) => {
    const [eventsBefore, deliveriesBefore] = [await events(), await deliveries()];
    const referralsBefore = await countRows(loopback, sql`select count(*) as n from referrals`);
    const response = await loopback.request({
      method: 'POST',
      url: '/v1/referrals',
      token: lOffice.physician.token,
      payload: referralBody({
        reason: remember(`Thoracic outlet syndrome, case ${unique()}`),
        frequencyPerWeek: 1,
        durationWeeks: 4,
        sessionMinutes: 45,
        send: true,
        network: { near: { lat: -45.0, lng: 170.0 }, radiusKm: 1 },
      }),
    });
    t.match(expectStatus(t, response, 409, 'create and send'), { code: 'no-matching-therapist' });
    t.equal(await countRows(loopback, sql`select count(*) as n from referrals`), referralsBefore, 'no referral');
    t.equal(await events(), eventsBefore, 'no webhook_events row');
    t.equal(await deliveries(), deliveriesBefore, 'no webhook_deliveries row');
    await drain(loopback);
    t.equal(receiver.requests.length, 0, 'nothing delivered');
  });

  await t.test('an accept whose transaction fails after the outbox write: 500, the event is gone with it, nothing delivered', async (t) => {
    const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent'], 'the send is delivered');
    // The accept writes its outbox event, then its audit event; make the audit write fail.
    await loopback.app.database.rows(
      sql.raw(`create or replace function webhook_test_fail() returns trigger language plpgsql as $$ begin raise exception 'injected failure after the outbox write'; end $$`),
    );
    await loopback.app.database.rows(
      sql.raw(`create trigger webhook_test_fail before insert on audit_events for each row when (new.action = 'referral.accept' and new.outcome = 'success') execute function webhook_test_fail()`),
    );
    let response: TestResponse;
    try {
      response = await loopback.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: lPractice.therapist.token, payload: {} });
    } finally {
      await loopback.app.database.rows(sql.raw('drop trigger webhook_test_fail on audit_events'));
      await loopback.app.database.rows(sql.raw('drop function webhook_test_fail()'));
    }
    expectStatus(t, response, 500, 'the accept fails');
    const read = await loopback.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: lOffice.physician.token });
    t.match(expectStatus(t, read, 200, 'read'), { status: 'sent', version: 1 }, 'the referral is still sent: the change rolled back');
    t.equal(
      await countRows(loopback, sql`select count(*) as n from webhook_events where referral_id = ${referral.id}::uuid and type = 'referral.accepted'`),
      0,
      'no referral.accepted event survived',
    );
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent'], 'nothing more was delivered');

    // The same accept, now able to commit, is announced.
    await post(loopback, `/v1/referrals/${referral.id}/accept`, lPractice.therapist.token, {});
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent', 'referral.accepted'], 'the committed accept is delivered');
    for (const delivered of receiver.requests) verified(t, delivered, endpoint.secret);
  });
});

t.test('a receiver answering 410 Gone disables the endpoint at once; its organization is told; PATCH status active re-enables it', async (t) => {
  let gone = true;
  const receiver = await startReceiver(t, () => (gone ? { status: 410, body: 'gone' } : { status: 200 }));
  const watcher = await startReceiver(t);
  const endpoint = await registerEndpoint(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent'] });
  const watching = await registerEndpoint(t, loopback, lOffice.admin.token, { url: watcher.url, eventTypes: ['webhook_endpoint.disabled'] });

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'tried once');
  const [dead] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(dead, { status: 'dead', attempts: 1, lastStatusCode: 410 }, 'dead at once, no retry');
  const disabled = expectStatus(t, await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lOffice.admin.token }), 200, 'read');
  t.match(disabled, { status: 'disabled', disabledReason: /410/ }, 'the endpoint is disabled, saying why');
  t.equal(watcher.requests.length, 1, "the organization's other endpoint is told");
  const notice = verified(t, watcher.requests[0]!, watching.secret, 'the notice');
  t.match(notice, { type: 'webhook_endpoint.disabled', data: { resource: 'webhook_endpoint', id: endpoint.id, status: 'disabled' } });

  gone = false;
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'a disabled endpoint gets no new event');
  t.equal((await deliveriesOf(loopback, endpoint.id, lOffice.admin.token)).length, 1, 'none is even queued');

  const enabled = expectStatus(
    t,
    await loopback.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: lOffice.admin.token, payload: { status: 'active' } }),
    200,
    're-enable',
  );
  t.match(enabled, { status: 'active', disabledReason: null, failingSince: null }, 'active again');
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 2, 'the next event is delivered');
  t.equal(payloadOf(receiver.requests[1]!).type, 'referral.sent');
  verified(t, receiver.requests[1]!, endpoint.secret);
});
