// Webhooks in FHIR (issue 18): an endpoint of format fhir gets each event as a small FHIR R4
// Bundle (the referral's Task, a link to the record a thread event names), signed as Standard
// Webhooks like any delivery and sent as application/fhir+json, while a standard endpoint of the
// same organization gets the very bytes it got before. Bodies are checked by both FHIR validators
// and by the standardwebhooks library; the worker runs only when a test calls it (ROLE=api).
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { referrals, webhookEvents } from '../src/db/schema.js';
import { webhookBundleRenderer } from '../src/modules/fhir/webhook-bundle.js';
import type { WebhookEventFacts } from '../src/modules/webhooks/index.js';
import { assertValidFhir } from './fixtures/fhir-validators.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { startReceiver, verify, type Delivered, type Receiver } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { expectStatus } from './fixtures/responses.js';
import { buildWebhookApp, drain, endpointUrl, endpointsUrl, makeDue, ping, registerEndpoint } from './fixtures/webhooks.js';
import { auditEvents, type Json, type TestApp } from './helper.js';

const publicBaseUrl = 'https://api.massage-referral.example';
const fhirBase = `${publicBaseUrl}/fhir/R4`;
const followed = ['referral.sent', 'referral.accepted', 'referral.declined', 'message.created'];

// A failed attempt is retried 60 s later (made due by the test instead of waited for).
const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,60', PUBLIC_BASE_URL: publicBaseUrl });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);

/** A referral from the office's physician to the practice's therapist, sent at once. */
async function sendReferral(): Promise<{ id: string; taskId: string; patientId: string }> {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
  const [row] = await test.app.db.select({ taskId: referrals.taskId }).from(referrals).where(eq(referrals.id, referral.id));
  return { id: referral.id, taskId: row!.taskId, patientId: referral.patientId };
}

async function move(referralId: string, action: 'accept' | 'decline', token: string, payload: Json = {}) {
  expectStatus(t, await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/${action}`, token, payload }), 200, action);
}

/** The practice's two endpoints, one per format, each with its own receiver. */
async function endpointPair(t: Test): Promise<{ fhir: { endpoint: Json; hook: Receiver }; standard: { endpoint: Json; hook: Receiver } }> {
  const [fhirHook, standardHook] = [await startReceiver(t), await startReceiver(t)];
  const fhir = await registerEndpoint(t, test, practice.admin.token, { url: fhirHook.url, eventTypes: followed, format: 'fhir' });
  const standard = await registerEndpoint(t, test, practice.admin.token, { url: standardHook.url, eventTypes: followed });
  return { fhir: { endpoint: fhir, hook: fhirHook }, standard: { endpoint: standard, hook: standardHook } };
}

/**
 * The standard body exactly as the worker sent it before FHIR webhooks existed: the payload as
 * PostgreSQL's jsonb keeps it (keys by length, then bytes), serialized by JSON.stringify.
 */
function standardBody(type: string, timestamp: string, data: { id: string; url: string; status: string; resource: string; referralId: string; organizations: string[] }): string {
  const { id, url, status, resource, referralId, organizations } = data;
  return JSON.stringify({ data: { id, url, status, resource, referralId, organizations }, type, timestamp });
}

const mentionsPatient = (body: string, patientId: string) =>
  ['Maria', 'Gomez', '1978-04-02', patientId, 'Patient/', 'low back', 'M54.50'].filter((needle) => body.includes(needle));

/** Checks what every FHIR delivery is: signed over its exact body, application/fhir+json, a valid collection Bundle of this event. */
async function assertFhirDelivery(t: Test, delivered: Delivered, secret: string, type: string): Promise<Json> {
  t.equal(delivered.headers['content-type'], 'application/fhir+json', `${type}: sent as application/fhir+json`);
  let bundle: Json = {};
  t.doesNotThrow(() => {
    bundle = verify(delivered, secret);
  }, `${type}: standardwebhooks verifies it with the endpoint's secret`);
  await assertValidFhir(t, bundle, `the ${type} Bundle`);
  t.match(
    bundle,
    {
      resourceType: 'Bundle',
      id: delivered.id,
      meta: { tag: [{ system: 'urn:massage-referral:event-type', code: type }] },
      identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${delivered.id}` },
      type: 'collection',
      timestamp: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/,
    },
    `${type}: a collection Bundle whose id and identifier are the webhook-id, tagged with the event type`,
  );
  t.ok(delivered.body.startsWith('{"resourceType":"Bundle"'), `${type}: resourceType first, as rendered`);
  return bundle;
}

t.test('a fhir endpoint and a standard endpoint of one practice follow referral.sent → accepted → message.created', async (t) => {
  const { fhir, standard } = await endpointPair(t);
  t.equal(fhir.endpoint.format, 'fhir', 'the endpoint is registered with format fhir');
  t.equal(standard.endpoint.format, 'standard', 'format defaults to standard');

  const referral = await sendReferral();
  await move(referral.id, 'accept', practice.therapist.token);
  const message = await test.create(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'Please start next week' });
  await drain(test);

  t.same(fhir.hook.requests.map((request) => JSON.parse(request.body).meta?.tag?.[0]?.code), ['referral.sent', 'referral.accepted', 'message.created'], 'the fhir endpoint got the three events in order');
  t.same(standard.hook.requests.map((request) => request.payload.type), ['referral.sent', 'referral.accepted', 'message.created'], 'the standard endpoint got the same three');
  const [sentFhir, acceptedFhir, messageFhir] = fhir.hook.requests;
  const organizations = [office.id, practice.id];

  await t.test('the standard body is byte for byte what it was', async (t) => {
    const expected = [
      { type: 'referral.sent', data: { id: referral.id, url: `/v1/referrals/${referral.id}`, status: 'sent', resource: 'referral' } },
      { type: 'referral.accepted', data: { id: referral.id, url: `/v1/referrals/${referral.id}`, status: 'accepted', resource: 'referral' } },
      { type: 'message.created', data: { id: message.id, url: `/v1/referrals/${referral.id}/messages`, status: 'accepted', resource: 'message' } },
    ];
    for (const [index, { type, data }] of expected.entries()) {
      const delivered = standard.hook.requests[index]!;
      t.equal(delivered.body, standardBody(type, delivered.payload.timestamp, { ...data, referralId: referral.id, organizations }), `${type}: the same bytes`);
      t.match(delivered.headers['content-type'], /^application\/json/, `${type}: still application/json`);
      t.same(verify(delivered, standard.endpoint.secret), delivered.payload, `${type}: signed as before`);
      t.equal(delivered.id, fhir.hook.requests[index]!.id, `${type}: one event, so both endpoints get the same webhook-id`);
    }
    const rows = await test.app.db.select().from(webhookEvents).where(eq(webhookEvents.referralId, referral.id));
    for (const row of rows) t.notOk('fhir' in (row.payload as Json) || JSON.stringify(row.payload).includes('Bundle'), `${row.type}: nothing of FHIR in the standard payload`);
  });

  await t.test('each fhir body is a valid, signed Bundle with the Task as it stood after the event', async (t) => {
    const thinTask = (status: string, businessStatus: Json, owner: string) => ({
      resourceType: 'Task',
      id: referral.taskId,
      meta: { versionId: /^\d+$/, lastUpdated: String },
      status,
      businessStatus,
      intent: 'order',
      code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] },
      focus: { reference: `ServiceRequest/${referral.id}` },
      requester: { reference: `Practitioner/${office.physician.id}` },
      owner: { reference: owner },
    });
    const bser = 'http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS';
    const sent = await assertFhirDelivery(t, sentFhir!, fhir.endpoint.secret, 'referral.sent');
    t.equal(sent.timestamp, standard.hook.requests[0]!.payload.timestamp, 'the Bundle timestamp is the event timestamp');
    t.equal(sent.entry.length, 1, 'one entry');
    t.equal(sent.entry[0].fullUrl, `${fhirBase}/Task/${referral.taskId}`, 'the entry is the Task, by its absolute URL');
    t.match(sent.entry[0].resource, thinTask('requested', { coding: [{ system: bser, code: '2.0' }] }, `Practitioner/${practice.therapist.id}`), 'referral.sent: Task requested, BSeR 2.0, owned by the therapist it was sent to');
    t.notOk(sent.link, 'a status event needs no link: the Task is the news');

    const accepted = await assertFhirDelivery(t, acceptedFhir!, fhir.endpoint.secret, 'referral.accepted');
    t.match(accepted.entry[0].resource, thinTask('accepted', { coding: [{ system: bser, code: '3.0' }] }, `Practitioner/${practice.therapist.id}`), 'referral.accepted: Task accepted, BSeR 3.0');
    t.ok(Number(accepted.entry[0].resource.meta.versionId) > Number(sent.entry[0].resource.meta.versionId), 'the accepted Task is a later version');

    const messaged = await assertFhirDelivery(t, messageFhir!, fhir.endpoint.secret, 'message.created');
    t.match(messaged.entry[0].resource, thinTask('accepted', { coding: [{ system: bser, code: '3.0' }] }, `Practitioner/${practice.therapist.id}`), 'message.created: the Task, unchanged in status');
    t.equal(messaged.link?.length, 1, 'message.created: one link');
    t.equal(messaged.link?.[0].relation, 'related', 'related');
    // The message's Communication once the façade serves it, its /v1 thread until then.
    t.ok(
      [`${fhirBase}/Communication/${message.id}`, `${publicBaseUrl}/v1/referrals/${referral.id}/messages`].includes(messaged.link?.[0].url),
      `the link names the message (got ${messaged.link?.[0].url})`,
    );

    const keys = Object.keys(messaged.entry[0].resource).sort();
    t.same(keys, ['businessStatus', 'code', 'focus', 'id', 'intent', 'meta', 'owner', 'requester', 'resourceType', 'status'], 'a thin Task: no for, statusReason, restriction or dates');
    for (const delivered of fhir.hook.requests) t.same(mentionsPatient(delivered.body, referral.patientId), [], 'no patient name, birth date, id or clinical text in the Bundle');
  });

  await t.test('the thin Task agrees with GET /fhir/R4/Task', async (t) => {
    const response = await test.request({ method: 'GET', url: `/fhir/R4/Task/${referral.taskId}`, token: practice.therapist.token, headers: { accept: 'application/fhir+json' } });
    const read = expectStatus(t, response, 200, 'the therapist reads the Task');
    const thin = JSON.parse(messageFhir!.body).entry[0].resource;
    for (const element of ['id', 'status', 'businessStatus', 'intent', 'code', 'focus', 'requester', 'owner']) t.same(thin[element], read[element], `${element} as the read gives it`);
    t.equal(thin.meta.versionId, read.meta.versionId, 'the same version');
  });

  await t.test('the event rows: the FHIR body kept beside the standard payload only where a fhir endpoint was a target', async (t) => {
    const rows = await test.app.db.select().from(webhookEvents).where(eq(webhookEvents.referralId, referral.id));
    t.equal(rows.length, 3, 'three events');
    for (const row of rows) t.equal(row.fhirBody, fhir.hook.requests.find((request) => request.id === row.id)!.body, `${row.type}: the stored body is the delivered one`);
  });
});

t.test('a failed first attempt is retried with the same bytes, signed again over them', async (t) => {
  let calls = 0;
  const hook = await startReceiver(t, () => (++calls === 1 ? { status: 500, body: 'try later' } : { status: 200, body: 'ok' }));
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: hook.url, eventTypes: ['referral.sent'], format: 'fhir' });
  const referral = await sendReferral();
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the first attempt');
  const [delivery] = await test.app.database.rows<{ id: string }>(sql`select id from webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`);
  await makeDue(test, [delivery!.id]);
  t.equal(await test.app.webhookWorker.runOnce(), 1, 'the retry');
  t.equal(hook.requests.length, 2, 'two attempts reached the receiver');
  const [first, second] = hook.requests as [Delivered, Delivered];
  t.equal(second.body, first.body, 'the same bytes');
  t.equal(second.id, first.id, 'the same webhook-id');
  for (const attempt of [first, second]) await assertFhirDelivery(t, attempt, endpoint.secret, 'referral.sent');
  t.equal(JSON.parse(first.body).entry[0].resource.id, referral.taskId, "the referral's Task");
});

t.test('a declined referral: Task rejected with BSeR 4.0, and the reason stays out of the Bundle', async (t) => {
  const hook = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: hook.url, eventTypes: ['referral.declined'], format: 'fhir' });
  const referral = await sendReferral();
  await move(referral.id, 'decline', practice.therapist.token, { reason: 'Fully booked until March' });
  await drain(test);
  t.equal(hook.requests.length, 1, 'one delivery');
  const bundle = await assertFhirDelivery(t, hook.requests[0]!, endpoint.secret, 'referral.declined');
  t.match(bundle.entry[0].resource, { status: 'rejected', businessStatus: { coding: [{ code: '4.0' }] } }, 'rejected, BSeR 4.0');
  t.notOk(bundle.entry[0].resource.statusReason, 'no statusReason');
  t.notOk(hook.requests[0]!.body.includes('Fully booked'), 'the decline reason is not in the body');
  t.same(mentionsPatient(hook.requests[0]!.body, referral.patientId), [], 'nothing of the patient');
});

t.test('a ping to a fhir endpoint is a Bundle without entry; one to a standard endpoint keeps no FHIR body', async (t) => {
  const { fhir, standard } = await endpointPair(t);
  const fhirPing = await ping(test, practice.admin.token, fhir.endpoint.id);
  const standardPing = await ping(test, practice.admin.token, standard.endpoint.id);
  await drain(test);
  const bundle = await assertFhirDelivery(t, fhir.hook.requests[0]!, fhir.endpoint.secret, 'ping');
  t.equal(bundle.id, fhirPing, 'the Bundle is the ping event');
  t.notOk(bundle.entry, 'no entry: a ping is about no referral');
  t.same(bundle.link, [{ relation: 'related', url: `${publicBaseUrl}/v1/webhook-endpoints/${fhir.endpoint.id}` }], 'a link to the endpoint');
  t.match(standard.hook.requests[0]!.payload, { type: 'ping', data: { resource: 'webhook_endpoint', id: standard.endpoint.id } }, 'the standard ping as ever');
  const [row] = await test.app.db.select().from(webhookEvents).where(eq(webhookEvents.id, standardPing));
  t.equal(row!.fhirBody, null, 'an event with no fhir target keeps no FHIR body');
});

t.test('an event written while the endpoint was fhir goes as standard once it switched back (and the other way round)', async (t) => {
  let calls = 0;
  const hook = await startReceiver(t, () => (++calls === 1 ? { status: 503, body: 'busy' } : { status: 200, body: 'ok' }));
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: hook.url, eventTypes: ['referral.sent'], format: 'fhir' });
  await sendReferral();
  await drain(test);
  const switched = await test.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: practice.admin.token, payload: { format: 'standard' } });
  t.equal(expectStatus(t, switched, 200, 'switch to standard').format, 'standard', 'the endpoint is standard now');
  const [delivery] = await test.app.database.rows<{ id: string }>(sql`select id from webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`);
  await makeDue(test, [delivery!.id]);
  await drain(test);
  t.equal(hook.requests[0]!.headers['content-type'], 'application/fhir+json', 'first attempt: FHIR');
  t.match(hook.requests[1]!.headers['content-type'], /^application\/json/, 'the retry after the switch: standard');
  t.equal(verify(hook.requests[1]!, endpoint.secret).type, 'referral.sent', 'the standard payload, signed');
});

t.test('format is validated, shown and changed like any setting of the endpoint', async (t) => {
  const create = (payload: Json) => test.request({ method: 'POST', url: endpointsUrl, token: practice.admin.token, payload });
  for (const format of ['hl7v2', 'FHIR', '', 7, null]) {
    assertProblem(t, await create({ url: 'https://ehr.example/hooks', eventTypes: ['referral.sent'], format }), 400, ['format'], `format ${JSON.stringify(format)}`);
  }
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: 'https://ehr.example/hooks', eventTypes: ['referral.sent'] });
  assertProblem(t, await test.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: practice.admin.token, payload: { format: 'xml' } }), 400, ['format'], 'PATCH format xml');
  const changed = expectStatus(t, await test.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: practice.admin.token, payload: { format: 'fhir' } }), 200, 'PATCH format fhir');
  t.equal(changed.format, 'fhir', 'changed');
  const read = expectStatus(t, await test.request({ method: 'GET', url: endpointUrl(endpoint.id), token: practice.admin.token }), 200, 'read');
  t.equal(read.format, 'fhir', 'read back');
  const listed = expectStatus(t, await test.request({ method: 'GET', url: `${endpointsUrl}?limit=200`, token: practice.admin.token }), 200, 'list');
  t.equal(listed.data.find((row: Json) => row.id === endpoint.id)?.format, 'fhir', 'listed with its format');
});

t.test("another organization's admin can neither read nor change a fhir endpoint: 404, audited as denied", async (t) => {
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: 'https://ehr.example/fhir-hooks', eventTypes: ['referral.sent'], format: 'fhir' });
  for (const outsider of [otherPractice.admin, office.admin]) {
    for (const [method, payload, action] of [
      ['GET', undefined, 'webhook_endpoint.read'],
      ['PATCH', { format: 'standard' }, 'webhook_endpoint.update'],
    ] as const) {
      const response = await test.request({ method, url: endpointUrl(endpoint.id), token: outsider.token, ...(payload ? { payload } : {}) });
      t.match(expectStatus(t, response, 404, `${method} by an outsider`), { status: 404, detail: 'Webhook endpoint not found' }, 'the not-found problem');
      const denied = await auditEvents(test, { action, resourceId: endpoint.id, actorId: outsider.id, outcome: 'denied' });
      t.same(denied.map((event) => [event.resourceType, event.httpStatus]), [['webhook_endpoint', 404]], `${action} by the outsider is audited as denied`);
    }
  }
  const read = expectStatus(t, await test.request({ method: 'GET', url: endpointUrl(endpoint.id), token: practice.admin.token }), 200, 'the owner reads it');
  t.equal(read.format, 'fhir', 'still fhir');
});

t.test('the renderer alone: events without a referral, and a hold shown only to those who may know the patient', async (t) => {
  const render = webhookBundleRenderer({ publicBaseUrl, fhirBase });
  const base = { id: '0b6f8f5e-8a51-4e0f-9a43-1a2b3c4d5e6f', timestamp: '2026-12-07T12:00:00Z', referral: null, organizations: [] };
  const cases: [WebhookEventFacts, string][] = [
    [{ ...base, type: 'license.expiring', resource: { type: 'user', id: practice.therapist.id, url: `/v1/users/${practice.therapist.id}` }, organizations: [practice.id] }, `${fhirBase}/Practitioner/${practice.therapist.id}`],
    [{ ...base, type: 'audit.checkpoint', resource: { type: 'audit_checkpoint', id: '42', url: '/v1/audit/checkpoints/42' } }, `${publicBaseUrl}/v1/audit/checkpoints/42`],
    [{ ...base, type: 'webhook_endpoint.disabled', resource: { type: 'webhook_endpoint', id: base.id, url: `/v1/webhook-endpoints/${base.id}` }, organizations: [practice.id] }, `${publicBaseUrl}/v1/webhook-endpoints/${base.id}`],
  ];
  for (const [event, url] of cases) {
    const bundle = render(event) as Json;
    await assertValidFhir(t, bundle, `the ${event.type} Bundle`);
    t.notOk(bundle.entry, `${event.type}: no entry`);
    t.same(bundle.link, [{ relation: 'related', url }], `${event.type}: a link to ${url}`);
  }

  const now = new Date('2026-12-07T12:00:00Z');
  const held = {
    id: '1c1f0b7e-3d2a-4b5c-8d9e-0f1a2b3c4d5e',
    status: 'in_progress' as const,
    organizationId: office.id,
    targetPracticeId: practice.id,
    acceptedPracticeId: practice.id,
    targetKind: 'therapist' as const,
    taskId: '2d2f0b7e-3d2a-4b5c-8d9e-0f1a2b3c4d5e',
    version: 7,
    updatedAt: now,
    prescriberId: office.physician.id,
    targetTherapistId: practice.therapist.id,
    acceptedTherapistId: practice.therapist.id,
    acceptedAt: now,
    holdSince: now,
    holdAdverseEventId: '3e3f0b7e-3d2a-4b5c-8d9e-0f1a2b3c4d5e',
  };
  const event = (organizations: string[]): WebhookEventFacts => ({ ...base, type: 'adverse_event.reported', referral: held, resource: { type: 'adverse_event', id: held.holdAdverseEventId, url: `/v1/referrals/${held.id}/adverse-events/${held.holdAdverseEventId}` }, organizations });
  const careTeam = render(event([office.id, practice.id])) as Json;
  await assertValidFhir(t, careTeam, 'the adverse_event.reported Bundle');
  t.equal(careTeam.entry[0].resource.status, 'on-hold', 'to the office and the accepting practice: on-hold');
  t.same(careTeam.link, [{ relation: 'related', url: `${publicBaseUrl}/v1/referrals/${held.id}/adverse-events/${held.holdAdverseEventId}` }], 'a link to the adverse event (no FHIR type for it)');
  t.equal((render(event([office.id, practice.id, otherPractice.id])) as Json).entry[0].resource.status, 'in-progress', 'with another organization among the targets: the status without the hold');
});
