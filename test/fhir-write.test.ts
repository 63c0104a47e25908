// Writes through the FHIR façade (SPEC §16 inbound): a ServiceRequest posted as an EHR would creates
// the referral /v1 then shows; Task updates move it (accept, reject, send again, cancel) by the /v1
// rules; every refusal is an OperationOutcome naming the element, and changes nothing.
import t, { type Test } from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertStatus, requireStatus } from './fixtures/responses.js';
import { whiplashServiceRequest } from './fixtures/fhir-bodies.js';
import { fhirRequests } from './fixtures/fhir-requests.js';
import { assertValidFhir } from './fixtures/fhir-validators.js';
import { auditEvents, buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const other = await createPractice(test, networkAdmin);
const ehr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write', 'referrals:sign', 'patients:write'], 'Office EHR');
const unsigningEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write'], 'EHR without signing');
const T = practice.therapist;

const { get, post, put } = fhirRequests(test);

/** The ServiceRequest of test/fixtures/fhir-bodies.ts, from the office's physician to the therapist. */
const serviceRequest = (overrides: Json = {}): Json => whiplashServiceRequest({ requesterId: office.physician.id, performerId: T.id }, overrides);

function outcome(tt: Test, response: TestResponse, status: number, what: string): Json {
  assertStatus(tt, response, status, what);
  tt.match(response.headers['content-type'], /^application\/fhir\+json/, `${what}: application/fhir+json`);
  return response.json();
}

async function referralCount(): Promise<number> {
  return requireStatus(await test.request({ method: 'GET', url: '/v1/referrals?limit=200', token: office.admin.token }), 200, 'list').data.length;
}

t.test('a ServiceRequest posted by the EHR creates the referral /v1 shows', async (tt) => {
  const response = await post('/fhir/R4/ServiceRequest', ehr.token, serviceRequest());
  assertStatus(tt, response, 201, 'created');
  const created = response.json();
  await assertValidFhir(tt, created, 'the created ServiceRequest');
  tt.match(response.headers.location, new RegExp(`/fhir/R4/ServiceRequest/${created.id}$`));
  tt.equal(response.headers.etag, 'W/"1"');
  const referral = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${created.id}`, token: office.physician.token }), 200, 'read via /v1');
  tt.match(referral, {
    status: 'sent',
    prescriberId: office.physician.id,
    therapistId: T.id,
    diagnoses: [{ code: 'S13.4XXA', display: 'Sprain of ligaments of cervical spine' }],
    reason: 'Whiplash after a rear-end collision',
    techniques: ['myofascial_release'],
    bodyRegions: ['neck'],
    frequencyPerWeek: 2,
    durationWeeks: 4,
    sessionMinutes: 60,
    visitsAuthorized: 8,
    goals: ['Full cervical rotation'],
    precautions: ['Avoid end-range cervical stretch'],
    insurance: { payer: 'Cascade Mutual', memberId: 'CM-551', cptCodes: ['97140'] },
    patient: { givenName: 'Ingrid', familyName: 'Halvorsen', birthDate: '1981-03-22', sex: 'female', phone: '+1 503 555 0101' },
    signature: { method: 'ehr_attested' },
  });
  const read = requireStatus(await get(`/fhir/R4/ServiceRequest/${created.id}`, ehr.token), 200, 'read back through FHIR');
  tt.same(read.reasonCode, created.reasonCode, 'reads back as posted');
  tt.same(read.note, serviceRequest().note);
  const audited = await auditEvents(test, { action: 'referral.create', resourceId: created.id });
  tt.equal(audited.length, 1, 'the create is audited once, as /v1');
});

t.test('a referenced Patient of the office, and a draft', async (tt) => {
  const patient = await test.create('/v1/patients', office.staff.token, { givenName: 'Rune', familyName: 'Dahl', birthDate: '1990-01-01', sex: 'male' });
  const resource = serviceRequest({ status: 'draft', subject: { reference: `Patient/${patient.id}` }, contained: undefined, insurance: undefined, code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97124' }] } });
  const created = requireStatus(await post('/fhir/R4/ServiceRequest', office.physician.token, resource), 201, 'draft with a referenced patient');
  tt.equal(created.status, 'draft');
  tt.equal(created.subject.reference, `Patient/${patient.id}`);
  const foreign = await createOffice(test, networkAdmin);
  const theirs = await test.create('/v1/patients', foreign.staff.token, { givenName: 'Not', familyName: 'Yours', birthDate: '1990-01-01', sex: 'male' });
  const refused = outcome(tt, await post('/fhir/R4/ServiceRequest', office.physician.token, { ...resource, subject: { reference: `Patient/${theirs.id}` } }), 400, "another office's patient");
  tt.match(refused.issue[0], { code: 'invalid', expression: ['ServiceRequest.subject'] });
});

t.test('refusals name the element and create nothing', async (tt) => {
  const before = await referralCount();
  const cases: [string, Json, number, RegExp][] = [
    ['no reasonCode', serviceRequest({ reasonCode: undefined }), 400, /ServiceRequest\.reasonCode/],
    ['an element the server does not keep', serviceRequest({ identifier: [{ value: 'placer-1' }] }), 400, /ServiceRequest\.identifier/],
    ['a technique not in the catalog', serviceRequest({ orderDetail: [{ coding: [{ system: 'urn:massage-referral:technique', code: 'reiki' }] }] }), 400, /ServiceRequest\.orderDetail\[0\]/],
    ['a wrong datatype', serviceRequest({ quantityQuantity: { value: 'eight' } }), 400, /ServiceRequest\.quantityQuantity\.value/],
    ['priority stat', serviceRequest({ priority: 'stat' }), 400, /ServiceRequest\.priority/],
    ['a note of no known kind', serviceRequest({ note: [{ text: 'Call me' }] }), 400, /ServiceRequest\.note\[0\]\.text/],
    ['a frequency per month', serviceRequest({ occurrenceTiming: { repeat: { frequency: 4, period: 1, periodUnit: 'mo', duration: 30, durationUnit: 'min', boundsDuration: { value: 4, code: 'wk' } } } }), 400, /repeat\.period/],
    ['two performers', serviceRequest({ performer: [{ reference: `Practitioner/${T.id}` }, { reference: `Organization/${practice.id}` }] }), 400, /ServiceRequest\.performer/],
    ['a session too long for /v1', serviceRequest({ occurrenceTiming: { repeat: { frequency: 2, period: 1, periodUnit: 'wk', duration: 500, durationUnit: 'min', boundsDuration: { value: 4, code: 'wk' } } } }), 400, /ServiceRequest\.occurrenceTiming\.repeat\.duration/],
    ['not a ServiceRequest', { resourceType: 'Task', status: 'requested' }, 400, /resourceType/],
  ];
  for (const [what, resource, status, named] of cases) {
    const refused = outcome(tt, await post('/fhir/R4/ServiceRequest', office.physician.token, resource), status, what);
    tt.match(JSON.stringify(refused.issue), named, `${what}: names ${named}`);
    await assertValidFhir(tt, refused, `${what}: the OperationOutcome`);
  }
  const unsigned = outcome(tt, await post('/fhir/R4/ServiceRequest', unsigningEhr.token, serviceRequest()), 409, 'an EHR that may not vouch for signatures sends an active order');
  tt.match(unsigned.issue[0], { code: 'business-rule', details: { coding: [{ code: 'signature-required' }] } });
  const xml = await test.request({ method: 'POST', url: '/fhir/R4/ServiceRequest', token: office.physician.token, payload: '<ServiceRequest/>', headers: { 'content-type': 'application/fhir+xml' } });
  outcome(tt, xml, 415, 'XML');
  outcome(tt, await post('/fhir/R4/ServiceRequest', T.token, serviceRequest()), 403, 'a therapist cannot prescribe');
  tt.equal(await referralCount(), before, 'nothing was created');
});

t.test('an Idempotency-Key replays the first answer', async (tt) => {
  const key = `fhir-${Date.now()}`;
  const first = await post('/fhir/R4/ServiceRequest', office.physician.token, serviceRequest(), { 'idempotency-key': key });
  const second = await post('/fhir/R4/ServiceRequest', office.physician.token, serviceRequest(), { 'idempotency-key': key });
  assertStatus(tt, second, 201, 'the replay');
  tt.equal(second.json().id, first.json().id, 'the same referral');
  tt.equal(second.headers['idempotent-replayed'], 'true');
  tt.match(second.headers['content-type'], /^application\/fhir\+json/);
});

async function taskOf(referralId: string, token: string): Promise<Json> {
  return requireStatus(await get(`/fhir/R4/Task?focus=ServiceRequest/${referralId}`, token), 200, 'the Task').entry[0].resource;
}

t.test('Task updates move the referral by the /v1 rules', async (tt) => {
  const created = requireStatus(await post('/fhir/R4/ServiceRequest', office.physician.token, serviceRequest()), 201, 'create');
  const task = await taskOf(created.id, T.token);
  outcome(tt, await put(`/fhir/R4/Task/${task.id}`, other.therapist.token, { ...task, status: 'accepted' }), 404, "another practice's therapist");
  const denied = await auditEvents(test, { outcome: 'denied', actorId: other.therapist.id });
  tt.ok(denied.length >= 1, 'the attempt is audited');

  const withoutAcknowledgement = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'accepted' }), 422, 'accepting without acknowledging the precautions');
  tt.match(withoutAcknowledgement.issue[0], { code: 'business-rule', details: { coding: [{ code: 'precautions-not-acknowledged' }] } });
  outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'accepted', focus: { reference: `ServiceRequest/${task.id}` } }), 400, 'changing the focus');
  const unchanged = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, owner: { reference: `Organization/${practice.id}` } }), 400, 'a new owner without a move');
  tt.match(unchanged.issue[0].expression, ['Task.owner']);
  const long = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'rejected', statusReason: { text: 'x'.repeat(2001) } }), 400, 'a reason longer than /v1 takes');
  tt.match(long.issue[0].expression, ['Task.statusReason.text']);

  const acknowledged = [{ type: { text: 'acknowledged-precautions' }, valueBoolean: true }];
  // Sent back as read, with a display a client added: still the same focus.
  const focus = { ...task.focus, display: 'Whiplash order' };
  const accepted = await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, focus, status: 'accepted', input: acknowledged }, { 'if-match': 'W/"1"' });
  assertStatus(tt, accepted, 200, 'accepted with the acknowledgement');
  await assertValidFhir(tt, accepted.json(), 'the accepted Task');
  tt.match(accepted.json(), { status: 'accepted', owner: { reference: `Practitioner/${T.id}` } });
  tt.equal(accepted.headers.etag, 'W/"2"');
  const history = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${created.id}/history`, token: office.physician.token }), 200, 'history');
  tt.match(history.data.at(-1), { action: 'accept', changes: { therapistId: T.id, acknowledgedPrecautions: true } });

  const stale = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...task, status: 'cancelled', statusReason: { text: 'x' } }, { 'if-match': 'W/"1"' }), 412, 'a stale If-Match');
  tt.equal(stale.issue[0].code, 'conflict');
  outcome(tt, await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...task, status: 'cancelled' }), 400, 'cancelling without a reason');
  outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'completed' }), 409, 'completing by a Task update');
  const cancelled = requireStatus(await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...task, status: 'cancelled', statusReason: { text: 'Patient moved away' } }), 200, 'cancel');
  tt.match(cancelled, { status: 'cancelled', statusReason: { text: 'Patient moved away' }, businessStatus: { coding: [{ code: '6.0' }] } });
  const illegal = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'accepted' }), 409, 'accepting a cancelled referral');
  tt.match(illegal.issue[0], { code: 'business-rule', details: { coding: [{ code: 'illegal-transition' }] } });
});

t.test('reject with a reason, then the office sends it to another owner', async (tt) => {
  const created = requireStatus(await post('/fhir/R4/ServiceRequest', office.physician.token, serviceRequest()), 201, 'create');
  const task = await taskOf(created.id, T.token);
  const noReason = outcome(tt, await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'rejected' }), 400, 'rejecting without a reason');
  tt.match(noReason.issue[0].expression, ['Task.statusReason.text']);
  const rejected = requireStatus(await put(`/fhir/R4/Task/${task.id}`, T.token, { ...task, status: 'rejected', statusReason: { text: 'No openings until spring' } }), 200, 'reject');
  tt.match(rejected, { status: 'rejected', statusReason: { text: 'No openings until spring' } });
  tt.equal(requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${created.id}`, token: office.physician.token }), 200, 'read').status, 'declined');
  const again = await taskOf(created.id, office.physician.token);
  outcome(tt, await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...again, status: 'requested', owner: undefined }), 400, 'sending again without an owner');
  const rerouted = requireStatus(
    await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...again, status: 'requested', owner: { reference: `Organization/${other.id}` } }),
    200,
    'sent to another practice',
  );
  tt.match(rerouted, { status: 'requested', owner: { reference: `Organization/${other.id}` } });
  await assertValidFhir(tt, rerouted, 'the rerouted Task');
  const theirs = await taskOf(created.id, other.admin.token);
  requireStatus(await put(`/fhir/R4/Task/${task.id}`, other.admin.token, { ...theirs, status: 'rejected', statusReason: { text: 'Out of area' } }), 200, 'the other practice rejects too');
  const cancelled = requireStatus(
    await put(`/fhir/R4/Task/${task.id}`, office.physician.token, { ...(await taskOf(created.id, office.physician.token)), status: 'cancelled', statusReason: { text: 'Treating in house' } }),
    200,
    'the office cancels the rejected Task, as /v1 cancels a declined referral',
  );
  tt.equal(cancelled.status, 'cancelled');
});
