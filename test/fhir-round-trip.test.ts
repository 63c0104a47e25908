// Issue 18's round trip, as an EHR and a therapist app live it: the office's EHR posts a
// ServiceRequest and follows the referral by FHIR webhooks; the therapist accepts by a Task update,
// messages through FHIR and records a visit through /v1; the EHR reads it all back through /fhir and
// /v1, and cancels by a Task update. Every resource and Bundle on the way passes both validators,
// and every webhook verifies and names the Task as a read shows it.
import t from 'tap';
import { assertValidFhir } from './fixtures/fhir-validators.js';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { startReceiver, verify } from './fixtures/partner-ehr.js';
import { measuredVisitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildWebhookApp, drain, registerEndpoint } from './fixtures/webhooks.js';
import type { Json } from './helper.js';

const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', PUBLIC_BASE_URL: 'https://api.massage-referral.example' });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin, { techniques: ['trigger_point', 'swedish'] });
const ehr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write', 'referrals:sign', 'patients:read', 'patients:write'], 'Riverside EHR');
const T = practice.therapist;

const fhir = (method: 'GET' | 'POST' | 'PUT', url: string, token: string, resource?: Json, headers: Json = {}) =>
  test.request({
    method,
    url,
    token,
    headers: { accept: 'application/fhir+json', ...(resource && { 'content-type': 'application/fhir+json' }), ...headers },
    ...(resource && { payload: JSON.stringify(resource) }),
  });

t.test('an order from the EHR to a visit note and back, in FHIR', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, office.admin.token, {
    url: receiver.url,
    format: 'fhir',
    eventTypes: ['referral.sent', 'referral.accepted', 'referral.cancelled', 'message.created', 'progress_report.created'],
  });

  const order = {
    resourceType: 'ServiceRequest',
    contained: [{ resourceType: 'Patient', id: 'p', name: [{ family: 'Lindqvist', given: ['Astrid'] }], gender: 'female', birthDate: '1975-06-30' }],
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97124' }] },
    orderDetail: [{ coding: [{ system: 'urn:massage-referral:technique', code: 'trigger_point' }] }],
    subject: { reference: '#p' },
    occurrenceTiming: { repeat: { boundsDuration: { value: 6, unit: 'wk', system: 'http://unitsofmeasure.org', code: 'wk' }, frequency: 1, period: 1, periodUnit: 'wk', duration: 60, durationUnit: 'min' } },
    requester: { reference: `Practitioner/${office.physician.id}` },
    performer: [{ reference: `Practitioner/${T.id}` }],
    reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M79.7', display: 'Fibromyalgia' }], text: 'Widespread pain, poor sleep' }],
    bodySite: [{ coding: [{ system: 'urn:massage-referral:body-region', code: 'upper_back' }] }],
  };
  await assertValidFhir(t, order, 'the ServiceRequest as the EHR sends it');
  const created = requireStatus(await fhir('POST', '/fhir/R4/ServiceRequest', ehr.token, order), 201, 'the EHR posts the order');
  await assertValidFhir(t, created, 'the created ServiceRequest');

  const viaV1 = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${created.id}`, token: T.token }), 200, 'the therapist reads it through /v1');
  t.match(viaV1, { status: 'sent', diagnoses: [{ code: 'M79.7' }], patient: { limited: true } });
  const tasks = requireStatus(await fhir('GET', `/fhir/R4/Task?focus=ServiceRequest/${created.id}&_include=Task:focus`, T.token), 200, 'the therapist app finds the Task');
  await assertValidFhir(t, tasks, 'the Task search Bundle');
  const task = tasks.entry[0].resource;
  t.equal(task.status, 'requested');

  const accepted = await fhir('PUT', `/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'accepted' }, { 'if-match': `W/"${task.meta.versionId}"` });
  t.equal(accepted.statusCode, 200, 'the therapist accepts by a Task update');
  await assertValidFhir(t, accepted.json(), 'the accepted Task');

  const message = requireStatus(
    await fhir('POST', '/fhir/R4/Communication', T.token, {
      resourceType: 'Communication',
      status: 'completed',
      partOf: [{ reference: `Task/${task.id}` }],
      payload: [{ contentString: 'First visit booked for Monday.' }],
    }),
    201,
    'the therapist messages through FHIR',
  );
  await assertValidFhir(t, message, 'the Communication');
  const note = await test.create(`/v1/referrals/${created.id}/progress-reports`, T.token, measuredVisitNoteBody({ techniquesApplied: ['trigger_point'] }));

  const encounters = requireStatus(await fhir('GET', `/fhir/R4/Encounter?based-on=ServiceRequest/${created.id}`, ehr.token), 200, 'the EHR reads the visit');
  await assertValidFhir(t, encounters, 'the Encounter search Bundle');
  t.equal(encounters.entry[0].resource.id, note.id, 'the visit note as an Encounter');
  const observations = requireStatus(await fhir('GET', `/fhir/R4/Observation?encounter=Encounter/${note.id}`, ehr.token), 200, "and the visit's measurements");
  await assertValidFhir(t, observations, 'the Observation search Bundle');
  const pain = observations.entry.map((entry: Json) => entry.resource).filter((observation: Json) => observation.code.coding[0].code === '72514-3');
  t.same(pain.map((observation: Json) => observation.valueInteger).sort(), [4, 7], 'pain before and after, LOINC 72514-3');
  const thread = requireStatus(await fhir('GET', `/fhir/R4/Communication?part-of=Task/${task.id}`, ehr.token), 200, 'and the thread');
  t.same(thread.entry.map((entry: Json) => entry.resource.payload[0].contentString), ['First visit booked for Monday.']);

  const current = requireStatus(await fhir('GET', `/fhir/R4/Task/${task.id}`, ehr.token), 200, 'the EHR reads the Task');
  const cancelled = requireStatus(
    await fhir('PUT', `/fhir/R4/Task/${task.id}`, ehr.token, { ...current, status: 'cancelled', statusReason: { text: 'Patient moved out of state' } }),
    200,
    'the EHR cancels by a Task update',
  );
  t.equal(cancelled.status, 'cancelled');
  const readBack = requireStatus(await fhir('GET', `/fhir/R4/ServiceRequest/${created.id}`, ehr.token), 200, 'the order, read back');
  t.equal(readBack.status, 'revoked');

  await drain(test);
  const bundles = await Promise.all(
    receiver.requests.map(async (delivered) => {
      const bundle = verify(delivered, endpoint.secret);
      await assertValidFhir(t, bundle, `the ${bundle.meta.tag[0].code} webhook`);
      return bundle;
    }),
  );
  t.same(
    bundles.map((bundle) => bundle.meta.tag[0].code),
    ['referral.sent', 'referral.accepted', 'message.created', 'progress_report.created', 'referral.cancelled'],
    'the EHR followed every step by FHIR webhooks, in order',
  );
  const statuses = bundles.map((bundle) => bundle.entry[0].resource.status);
  t.same(statuses, ['requested', 'accepted', 'accepted', 'in-progress', 'cancelled'], "each names the Task's status after its step");
  const last = bundles.at(-1)!.entry[0].resource;
  t.same({ id: last.id, versionId: last.meta.versionId }, { id: cancelled.id, versionId: cancelled.meta.versionId }, 'the last one is the Task the EHR just wrote');
});
