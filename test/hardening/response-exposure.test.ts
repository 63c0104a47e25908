// Hardening item 5, response exposure: a tour of every documented operation, each called by the
// roles that may call it (and, for reads, by every other kind of caller too), where every response
// is held to its OpenAPI schema with all objects closed, and seeded canary secrets — passwords, the
// JWT secret, API client and webhook signing secrets, access and refresh tokens, and what the
// database keeps of them (scrypt hashes, token hashes) — appear in no response body or header but
// the one that is meant to hand them out.
//
// The app is called through app.inject directly rather than TestApp.request, which throws on the
// first contract violation: here every violation is counted and listed (response-exposure-recorder.ts).
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { documentForm, multipartBody, sampleFile } from '../fixtures/documents.js';
import { whiplashServiceRequest } from '../fixtures/fhir-bodies.js';
import { startReceiver } from '../fixtures/partner-ehr.js';
import { ResponseContract, type Violation } from '../fixtures/response-contract.js';
import { adminEmail, adminPassword, buildTestApp, nextNpi, testJwtSecret, type Json } from '../helper.js';
import { recordFigure } from './figures.js';
import { canaryPassword, exposureRecorder, fhirPatientIdentity, findLeaks, type Seen } from './response-exposure-recorder.js';
import { jwksOf, signingKey } from '../fixtures/smart.js';
import { skipFileUnlessPostgres } from './postgres-only.js';

skipFileUnlessPostgres();

const tag = randomBytes(3).toString('hex');
const today = new Date().toISOString().slice(0, 10);
const hourAgo = new Date(Date.now() - 3_600_000).toISOString();

const test = await buildTestApp(t, {
  // The worker runs only when the tour says so; receivers are on loopback; a failing delivery is dead after two tries.
  env: { ROLE: 'api', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,0' },
});
const document = test.app.swagger() as Json;
const contract = new ResponseContract(document);
const { seen, canaries, failures, canary, call, must, signIn, organization, member } = exposureRecorder(test, contract, tag);

// ---------------------------------------------------------------------------------------------
// Partner receivers on loopback: /ok answers 200, /fail answers 503 until the delivery is dead.
const receiver = await startReceiver(t, (request) =>
  request.path === '/ok' ? { status: 200, body: 'thanks' } : { status: 503, body: 'receiver is down for maintenance' },
);
const received = receiver.requests;
const receiverUrl = (path: string) => `http://127.0.0.1:${receiver.port}${path}`;

canary('JWT secret', testJwtSecret);
canary('password of the network admin', adminPassword);

// ---------------------------------------------------------------------------------------------
// The network: two offices, two practices, their people, each signed in.
const networkAdmin = await signIn('network admin', adminEmail, adminPassword);
const admin = networkAdmin.token;
const address = { line1: '12 Main St', city: 'Portland', state: 'OR', postalCode: '97201' };
const riverside = await organization(admin, { kind: 'physician_office', name: `Riverside ${tag}`, npi: nextNpi(), address, location: { lat: 45.5231, lng: -122.6765 } });
const northside = await organization(admin, { kind: 'physician_office', name: `Northside ${tag}`, npi: nextNpi(), address, location: { lat: 45.6, lng: -122.7 } });
const harbor = await organization(admin, { kind: 'therapy_practice', name: `Harbor ${tag}`, address: { ...address, line2: 'Suite 4' }, location: { lat: 45.5152, lng: -122.6734 } });
const eastside = await organization(admin, { kind: 'therapy_practice', name: `Eastside ${tag}`, address, location: { lat: 45.52, lng: -122.65 } });

const physician = await member(admin, riverside.id, 'physician', { role: 'physician', npi: nextNpi() });
const officeAdmin = await member(admin, riverside.id, 'office-admin', { role: 'office_admin' });
const staff = await member(officeAdmin.token, riverside.id, 'staff', { role: 'office_staff' });
const leaver = await member(officeAdmin.token, riverside.id, 'leaver', { role: 'office_staff' });
const outsider = await member(admin, northside.id, 'outsider', { role: 'physician', npi: nextNpi() });
const therapistProfile = (number: string) => ({
  license: { number, state: 'OR', expiresOn: '2029-12-31' },
  techniques: ['trigger_point', 'myofascial_release', 'swedish'],
  certifications: ['CMMP'],
  acceptingReferrals: true,
  serviceRadiusKm: 40,
});
const practiceAdmin = await member(admin, harbor.id, 'practice-admin', { role: 'practice_admin' });
const therapist = await member(practiceAdmin.token, harbor.id, 'therapist', { role: 'therapist', ...therapistProfile(`MT-${tag}-1`) });
// Onboarded by the network admin, who verifies the license at once (the first is verified below).
const therapist2 = await member(admin, eastside.id, 'therapist2', { role: 'therapist', ...therapistProfile(`MT-${tag}-2`), licenseVerified: true });

// ---------------------------------------------------------------------------------------------
// Auth, people and organizations.
for (const [label, person] of Object.entries({ admin: networkAdmin, physician, officeAdmin, staff, outsider, practiceAdmin, therapist, therapist2 })) {
  await call(`me as ${label}`, '/v1/me', { token: person.token, expect: 200 });
}
await call('wrong password', '/v1/auth/token', { method: 'POST', payload: { grant_type: 'password', username: staff.email, password: 'not-the-password-at-all' }, expect: 400 });
await call('unknown account', '/v1/auth/token', { method: 'POST', payload: { grant_type: 'password', username: `nobody.${tag}@exposure.example`, password: 'whatever-password-1' }, expect: 400 });
await call('password grant without a password', '/v1/auth/token', { method: 'POST', payload: { grant_type: 'password', username: staff.email }, expect: 400 });
{
  // The form-encoded token request of RFC 6749, refreshing the physician's session.
  const answer = await must('refresh (form)', '/v1/auth/token', {
    method: 'POST',
    payload: `grant_type=refresh_token&refresh_token=${encodeURIComponent(physician.refreshToken)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    expect: 200,
  });
  canary('access token of physician (refreshed)', answer.json().access_token, [answer.index]);
  canary('refresh token of physician (refreshed)', answer.json().refresh_token, [answer.index]);
  physician.token = answer.json().access_token;
  await call('revoke the refreshed session', '/v1/auth/revoke', { method: 'POST', token: physician.token, payload: { token: answer.json().refresh_token, token_type_hint: 'refresh_token' }, expect: 200 });
  await call('refresh with a rotated token', '/v1/auth/token', { method: 'POST', payload: { grant_type: 'refresh_token', refresh_token: physician.refreshToken }, expect: 400 });
}
await call('revoke an unknown token', '/v1/auth/revoke', { method: 'POST', token: staff.token, payload: { token: 'no-such-refresh-token' }, expect: 200 });

await call('list organizations (admin)', '/v1/organizations?kind=therapy_practice&limit=2', { token: admin, expect: 200 });
await call('list organizations (physician)', '/v1/organizations', { token: physician.token, expect: 200 });
await call('read own organization', `/v1/organizations/${riverside.id}`, { token: officeAdmin.token, expect: 200 });
await call('read another organization', `/v1/organizations/${riverside.id}`, { token: outsider.token, expect: 404 });
await call('verify a license', `/v1/organizations/${harbor.id}/users/${therapist.id}`, { method: 'PATCH', token: admin, payload: { licenseVerified: true }, expect: 200 });
await call('update a therapist profile', `/v1/organizations/${harbor.id}/users/${therapist.id}`, {
  method: 'PATCH',
  token: practiceAdmin.token,
  payload: { serviceRadiusKm: 50, certifications: ['CMMP', 'NCBTMB'], acceptingReferrals: true },
  expect: 200,
});
await call('rename staff', `/v1/organizations/${riverside.id}/users/${staff.id}`, { method: 'PATCH', token: officeAdmin.token, payload: { name: `Staff ${tag} (front desk)` }, expect: 200 });
await call('deactivate a leaver', `/v1/organizations/${riverside.id}/users/${leaver.id}`, { method: 'PATCH', token: officeAdmin.token, payload: { active: false }, expect: 200 });
await call('the leaver is signed out', '/v1/me', { token: leaver.token, expect: 401 });
await call('practice admin may not verify licenses', `/v1/organizations/${harbor.id}/users/${therapist.id}`, { method: 'PATCH', token: practiceAdmin.token, payload: { licenseVerified: true }, expect: 400 });
await call('list users (office admin)', `/v1/organizations/${riverside.id}/users`, { token: officeAdmin.token, expect: 200 });
await call('list therapists of a practice (admin)', `/v1/organizations/${harbor.id}/users?role=therapist`, { token: admin, expect: 200 });
await call('read a colleague', `/v1/organizations/${riverside.id}/users/${physician.id}`, { token: staff.token, expect: 200 });
await call('add a user to another organization', `/v1/organizations/${harbor.id}/users`, {
  method: 'POST',
  token: officeAdmin.token,
  payload: { role: 'therapist', email: `intruder.${tag}@exposure.example`, password: canaryPassword('intruder'), name: 'Intruder' },
  expect: 404,
});
await call('a duplicate email', `/v1/organizations/${riverside.id}/users`, {
  method: 'POST',
  token: officeAdmin.token,
  payload: { role: 'office_staff', email: staff.email, password: canaryPassword('duplicate'), name: 'Duplicate' },
  expect: 409,
});

// API clients: the secret is in the creation answer only; not even its idempotent replay shows it again.
const officeClientKey = `create-client-${tag}`;
const officeClientAnswer = await must('create the office API client', `/v1/organizations/${riverside.id}/api-clients`, {
  method: 'POST',
  token: officeAdmin.token,
  payload: { name: 'Riverside EHR', scopes: ['directory:read', 'patients:read', 'patients:write', 'referrals:read', 'referrals:write', 'referrals:sign'] },
  headers: { 'idempotency-key': officeClientKey },
  expect: 201,
});
const officeClient = officeClientAnswer.json();
// A replay is the first answer again, to the caller that made it (SPEC §10), but without the secret
// shown once (issue 12): the search below holds the replay to that.
const replay = await must('replay the client creation', `/v1/organizations/${riverside.id}/api-clients`, {
  method: 'POST',
  token: officeAdmin.token,
  payload: { name: 'Riverside EHR', scopes: ['directory:read', 'patients:read', 'patients:write', 'referrals:read', 'referrals:write', 'referrals:sign'] },
  headers: { 'idempotency-key': officeClientKey },
  expect: 201,
});
canary('secret of the office API client', officeClient.clientSecret, [officeClientAnswer.index]);
if (replay.json().clientId !== officeClient.clientId) throw new Error('the replay is not the first answer');
const spareClientAnswer = await must('create a second office client', `/v1/organizations/${riverside.id}/api-clients`, {
  method: 'POST',
  token: officeAdmin.token,
  payload: { name: 'Old EHR', scopes: ['referrals:read'] },
  expect: 201,
});
const spareClient = spareClientAnswer.json();
canary('secret of the revoked API client', spareClient.clientSecret, [spareClientAnswer.index]);
const practiceClientAnswer = await must('create the practice API client', `/v1/organizations/${harbor.id}/api-clients`, {
  method: 'POST',
  token: practiceAdmin.token,
  payload: { name: 'Harbor scheduling', scopes: ['directory:read', 'referrals:read', 'referrals:write'] },
  expect: 201,
});
const practiceClient = practiceClientAnswer.json();
canary('secret of the practice API client', practiceClient.clientSecret, [practiceClientAnswer.index]);

async function clientToken(label: string, client: Json, viaBasic = false): Promise<string> {
  const answer = await must(`client token ${label}`, '/v1/auth/token', {
    method: 'POST',
    ...(viaBasic
      ? {
          payload: 'grant_type=client_credentials',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`,
          },
        }
      : { payload: { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret } }),
    expect: 200,
  });
  canary(`access token of ${label}`, answer.json().access_token, [answer.index]);
  return answer.json().access_token;
}
const officeClientToken = await clientToken('office client', officeClient);
const practiceClientToken = await clientToken('practice client', practiceClient, true);
const spareClientToken = await clientToken('spare client', spareClient);
await call('a scope the client lacks', '/v1/auth/token', {
  method: 'POST',
  payload: { grant_type: 'client_credentials', client_id: spareClient.clientId, client_secret: spareClient.clientSecret, scope: 'patients:write' },
  expect: 400,
});
await call('list API clients', `/v1/organizations/${riverside.id}/api-clients?limit=1`, { token: officeAdmin.token, expect: 200 });
await call('list API clients (admin)', `/v1/organizations/${harbor.id}/api-clients`, { token: admin, expect: 200 });
await call('revoke an API client', `/v1/organizations/${riverside.id}/api-clients/${spareClient.id}`, { method: 'DELETE', token: officeAdmin.token, expect: 204 });
await call('the revoked client is refused', '/v1/me', { token: spareClientToken, expect: 401 });
await call('the revoked client cannot sign in', '/v1/auth/token', {
  method: 'POST',
  payload: { grant_type: 'client_credentials', client_id: spareClient.clientId, client_secret: spareClient.clientSecret },
  expect: 401,
});
await call('me as the office client', '/v1/me', { token: officeClientToken, expect: 200 });
await call('me as the practice client', '/v1/me', { token: practiceClientToken, expect: 200 });

// Directory.
await call('directory near a patient', '/v1/therapists?near=45.5231,-122.6765&radiusKm=30&technique=trigger_point&accepting=true', { token: physician.token, expect: 200 });
await call('directory page by name', '/v1/therapists?limit=1', { token: officeClientToken, expect: 200 });
await call('directory radius without near', '/v1/therapists?radiusKm=5', { token: physician.token, expect: 400 });

// ---------------------------------------------------------------------------------------------
// Webhook endpoints first, so that the referral story below feeds them events.
const endpointAnswer = await must('register a receiver', '/v1/webhook-endpoints', {
  method: 'POST',
  token: officeAdmin.token,
  payload: {
    url: receiverUrl('/ok'),
    eventTypes: [
      'referral.sent', 'referral.accepted', 'referral.amended', 'referral.completed', 'progress_report.created', 'message.created',
      'report.submitted', 'report.signed', 'report.overdue', 'renewal.requested', 'renewal.decided',
      'document.added', 'appointment.scheduled', 'appointment.no_show', 'message.urgent', 'adverse_event.reported', 'referral.resumed',
    ],
    description: 'Riverside EHR',
  },
  expect: 201,
});
const endpoint = endpointAnswer.json();
canary('first signing secret of the office receiver', endpoint.secret, [endpointAnswer.index]);
const failingAnswer = await must('register a failing receiver for the practice (admin)', '/v1/webhook-endpoints', {
  method: 'POST',
  token: admin,
  payload: { url: receiverUrl('/fail'), eventTypes: ['referral.sent', 'referral.accepted', 'message.created'], organizationId: harbor.id },
  expect: 201,
});
const failing = failingAnswer.json();
canary('signing secret of the failing receiver', failing.secret, [failingAnswer.index]);
const doomedAnswer = await must('register a receiver to delete', '/v1/webhook-endpoints', {
  method: 'POST',
  token: officeAdmin.token,
  payload: { url: 'https://ehr.example/hooks/old', eventTypes: ['referral.cancelled'] },
  expect: 201,
});
canary('signing secret of the deleted receiver', doomedAnswer.json().secret, [doomedAnswer.index]);
await call('a receiver without https is refused', '/v1/webhook-endpoints', {
  method: 'POST',
  token: officeAdmin.token,
  payload: { url: 'ftp://127.0.0.1/hook', eventTypes: ['referral.sent'] },
  expect: 400,
});
await call('delete a receiver', `/v1/webhook-endpoints/${doomedAnswer.json().id}`, { method: 'DELETE', token: officeAdmin.token, expect: 204 });
await call('the deleted receiver is gone', `/v1/webhook-endpoints/${doomedAnswer.json().id}`, { token: officeAdmin.token, expect: 404 });
const rotation = await must('rotate the signing secret', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, { method: 'POST', token: officeAdmin.token, expect: 200 });
canary('second signing secret of the office receiver', rotation.json().secret, [rotation.index]);
await call('change a receiver', `/v1/webhook-endpoints/${endpoint.id}`, { method: 'PATCH', token: officeAdmin.token, payload: { description: 'Riverside EHR (prod)', eventTypes: [...endpoint.eventTypes, 'referral.declined'] }, expect: 200 });
await call('list receivers', '/v1/webhook-endpoints', { token: officeAdmin.token, expect: 200 });
await call('list receivers of one organization (admin)', `/v1/webhook-endpoints?organizationId=${harbor.id}`, { token: admin, expect: 200 });
await call('read a receiver', `/v1/webhook-endpoints/${endpoint.id}`, { token: officeAdmin.token, expect: 200 });
await call('another organization cannot read it', `/v1/webhook-endpoints/${endpoint.id}`, { token: practiceAdmin.token, expect: 404 });
await call('ping', `/v1/webhook-endpoints/${endpoint.id}/test`, { method: 'POST', token: officeAdmin.token, expect: 202 });
await call('ping the failing receiver', `/v1/webhook-endpoints/${failing.id}/test`, { method: 'POST', token: practiceAdmin.token, expect: 202 });

// ---------------------------------------------------------------------------------------------
// Patients and referrals, through their lives.
const patientPayload = (given: string) => ({
  givenName: given,
  familyName: `Gomez-${tag}`,
  birthDate: '1978-04-02',
  sex: 'female',
  phone: '+1 503 555 0142',
  email: `${given.toLowerCase()}.${tag}@patient.example`,
  identifiers: [{ system: 'urn:riverside:mrn', value: `MRN-${given}-${tag}` }],
});
const maria = (await must('register a patient', '/v1/patients', { method: 'POST', token: physician.token, payload: patientPayload('Maria'), expect: 201 })).json();
const jon = (await must('register a patient (staff)', '/v1/patients', { method: 'POST', token: staff.token, payload: { givenName: 'Jon', familyName: `Li-${tag}`, birthDate: '1990-11-30', sex: 'male' }, expect: 201 })).json();
const ann = (await must('register a patient (EHR)', '/v1/patients', { method: 'POST', token: officeClientToken, payload: patientPayload('Ann'), expect: 201 })).json();
await call('a birth date in the future', '/v1/patients', { method: 'POST', token: physician.token, payload: { ...patientPayload('Future'), birthDate: '2999-01-01' }, expect: 400 });
await call('a therapist cannot register patients', '/v1/patients', { method: 'POST', token: therapist.token, payload: patientPayload('Nope'), expect: 403 });
await call('list patients', '/v1/patients?limit=2', { token: physician.token, expect: 200 });
await call('find a patient by MRN', `/v1/patients?identifier=${encodeURIComponent(`urn:riverside:mrn|MRN-Maria-${tag}`)}`, { token: officeClientToken, expect: 200 });
await call('read a patient', `/v1/patients/${maria.id}`, { token: staff.token, expect: 200 });
await call('read a patient of another office', `/v1/patients/${maria.id}`, { token: outsider.token, expect: 404 });

const prescription = (extra: Json) => ({
  diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }, { code: 'G44.209', display: 'Tension-type headache' }],
  reason: 'Chronic low back pain with lumbar paraspinal trigger points',
  goals: ['Pain at or below 3/10'],
  precautions: ['No deep pressure over L4-L5'],
  contraindications: 'None known',
  techniques: ['trigger_point', 'myofascial_release'],
  bodyRegions: ['lower_back', 'neck'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  startDate: today,
  priority: 'routine',
  insurance: { payer: 'Acme Health', memberId: `AH-${tag}`, groupNumber: 'GRP-1', authorizationNumber: 'PA-77812', cptCodes: ['97124', '97140'] },
  ...extra,
});
const referralPath = (id: string, rest = '') => `/v1/referrals/${id}${rest}`;

// R1: to the practice, accepted by its admin naming the therapist, treated, discussed, completed.
const r1Answer = await must('prescribe to a practice', '/v1/referrals', { method: 'POST', token: physician.token, payload: prescription({ patientId: maria.id, practiceId: harbor.id, send: true }), expect: 201 });
const r1 = r1Answer.json();
await call('amend with a stale version', referralPath(r1.id), { method: 'PATCH', token: physician.token, payload: { visitsAuthorized: 14 }, headers: { 'if-match': '"99"' }, expect: 412 });
await call('amend', referralPath(r1.id), { method: 'PATCH', token: physician.token, payload: { visitsAuthorized: 14, reason: 'More visits approved' }, headers: { 'if-match': r1Answer.headers.etag as string }, expect: 200 });
await call('the practice accepts for its therapist', referralPath(r1.id, '/accept'), { method: 'POST', token: practiceAdmin.token, payload: { therapistId: therapist.id, acknowledgedPrecautions: true }, expect: 200 });
await call('accept again', referralPath(r1.id, '/accept'), { method: 'POST', token: therapist.token, expect: 409 });
const visit = (extra: Json) => ({
  visitDate: today,
  subjective: 'Pain 7/10 after work shifts',
  objective: 'Taut bands L paraspinals',
  assessment: 'Improving tolerance to pressure',
  plan: 'Continue 2x/week',
  painBefore: 7,
  painAfter: 4,
  rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 45 }],
  outcomeMeasures: [{ instrument: 'ODI', score: 38 }, { instrument: 'other', name: 'Sleep quality', score: 6 }],
  techniquesApplied: ['trigger_point'],
  minutes: 60,
  billing: [{ cpt: '97140', units: 2 }],
  ...extra,
});
const note = (await must('first visit note', referralPath(r1.id, '/progress-reports'), { method: 'POST', token: therapist.token, payload: visit({ final: false }), expect: 201 })).json();
await call('a note by someone else', referralPath(r1.id, '/progress-reports'), { method: 'POST', token: physician.token, payload: visit({}), expect: 404 });
await call('addendum', referralPath(r1.id, `/progress-reports/${note.id}/addenda`), { method: 'POST', token: therapist.token, payload: { text: 'Correction: pain after was 3/10' }, expect: 201 });
const fromOffice = (await must('message from the office', referralPath(r1.id, '/messages'), { method: 'POST', token: physician.token, payload: { body: 'Any numbness after the session?' }, expect: 201 })).json();
await call('message from the therapist', referralPath(r1.id, '/messages'), { method: 'POST', token: therapist.token, payload: { body: 'None reported.' }, expect: 201 });
await call('message from the EHR', referralPath(r1.id, '/messages'), { method: 'POST', token: officeClientToken, payload: { body: 'Imaging attached in chart.' }, expect: 201 });
await call('mark read up to a message', referralPath(r1.id, '/messages/read'), { method: 'POST', token: therapist.token, payload: { upTo: fromOffice.id }, expect: 200 });
await call('mark all read', referralPath(r1.id, '/messages/read'), { method: 'POST', token: physician.token, expect: 200 });
await call('mark read up to a stranger', referralPath(r1.id, '/messages/read'), { method: 'POST', token: physician.token, payload: { upTo: crypto.randomUUID() }, expect: 400 });
await call('final visit note', referralPath(r1.id, '/progress-reports'), { method: 'POST', token: therapist.token, payload: visit({ painBefore: 3, painAfter: 1, final: true }), expect: 201 });
await call('no notes after completion', referralPath(r1.id, '/progress-reports'), { method: 'POST', token: therapist.token, payload: visit({}), expect: 409 });
await call('cancel a completed referral', referralPath(r1.id, '/cancel'), { method: 'POST', token: physician.token, payload: { reason: 'Too late' }, expect: 409 });

// R2: a draft by staff for an inline patient, signed by the physician, sent, declined, rerouted, taken by another practice.
const r2Answer = await must('draft with an inline patient (staff)', '/v1/referrals', {
  method: 'POST',
  token: staff.token,
  payload: prescription({ patient: patientPayload('Rosa'), prescriberId: physician.id, therapistId: therapist.id, visitsAuthorized: 10, priority: 'urgent' }),
  expect: 201,
});
const r2 = r2Answer.json();
await call('staff cannot send it unsigned', referralPath(r2.id, '/send'), { method: 'POST', token: staff.token, expect: 409 });
const signed = await must('the physician signs the draft', referralPath(r2.id, '/sign'), {
  method: 'POST',
  token: physician.token,
  payload: { attestation: true },
  headers: { 'if-match': r2Answer.headers.etag as string },
  expect: 200,
});
await call('a second signature', referralPath(r2.id, '/sign'), { method: 'POST', token: physician.token, payload: { attestation: true }, expect: 409 });
await call('staff cannot sign', referralPath(r2.id, '/sign'), { method: 'POST', token: staff.token, payload: { attestation: true }, expect: 403 });
await call('a physician of another office cannot sign', referralPath(r2.id, '/sign'), { method: 'POST', token: outsider.token, payload: { attestation: true }, expect: 404 });
const sent = await must('staff send the signed draft', referralPath(r2.id, '/send'), { method: 'POST', token: staff.token, headers: { 'if-match': signed.headers.etag as string }, expect: 200 });
await call('decline', referralPath(r2.id, '/decline'), { method: 'POST', token: therapist.token, payload: { reason: 'No availability this month' }, headers: { 'if-match': sent.headers.etag as string }, expect: 200 });
await call('reroute', referralPath(r2.id, '/reroute'), { method: 'POST', token: physician.token, payload: { therapistId: therapist2.id, reason: 'Try Eastside' }, expect: 200 });
await call('therapist2 accepts', referralPath(r2.id, '/accept'), { method: 'POST', token: therapist2.token, payload: { acknowledgedPrecautions: true }, expect: 200 });
await call('the first therapist lost it', referralPath(r2.id), { token: therapist.token, expect: 404 });

// R3: an open network offer; the first to accept wins.
const r3 = (
  await must('open network offer', '/v1/referrals', {
    method: 'POST',
    token: physician.token,
    payload: prescription({ patientId: jon.id, network: { techniques: ['trigger_point'], near: { lat: 45.5231, lng: -122.6765 }, radiusKm: 25 }, send: true }),
    expect: 201,
  })
).json();
await call('therapist2 sees the offer', referralPath(r3.id), { token: therapist2.token, expect: 200 });
await call('therapist takes the offer', referralPath(r3.id, '/accept'), { method: 'POST', payload: { acknowledgedPrecautions: true }, token: therapist.token, expect: 200 });
// Once taken, an offer is no longer shown to the others (SPEC §6): a late accept meets the outsider's 404.
await call('therapist2 is too late', referralPath(r3.id, '/accept'), { method: 'POST', payload: { acknowledgedPrecautions: true }, token: therapist2.token, expect: 404 });

// R4: from the partner EHR, then cancelled by the physician.
const r4 = (
  await must('prescribe through the EHR', '/v1/referrals', {
    method: 'POST',
    token: officeClientToken,
    payload: prescription({ patientId: ann.id, prescriberId: physician.id, therapistId: therapist.id, send: true }),
    headers: { 'idempotency-key': `r4-${tag}` },
    expect: 201,
  })
).json();
await call('the practice client reads it', referralPath(r4.id), { token: practiceClientToken, expect: 200 });
await call('cancel', referralPath(r4.id, '/cancel'), { method: 'POST', token: physician.token, payload: { reason: 'Patient moved out of state' }, expect: 200 });
// Rerouting is the office's move: the practice side is answered as an outsider.
await call('a move of the other side', referralPath(r4.id, '/reroute'), { method: 'POST', token: practiceClientToken, payload: { practiceId: eastside.id }, expect: 404 });
await call('an invalid prescription', '/v1/referrals', { method: 'POST', token: physician.token, payload: prescription({ patientId: maria.id, diagnoses: [{ code: 'U07.1', display: 'x' }], frequencyPerWeek: 9 }), expect: 400 });

// R5: left sent, for the sweep to find in every list.
const r5 = (await must('prescribe to a therapist', '/v1/referrals', { method: 'POST', token: physician.token, payload: prescription({ patientId: maria.id, therapistId: therapist.id, send: true }), expect: 201 })).json();

// R6: a new course for Maria continuing R1 (SPEC §14.4), a report due after every visit; the
// therapist evaluates, treats, reports, asks for more; the prescriber (and the EHR vouching for
// them) signs and decides; a discharge report completes it (SPEC §14.3). The clinical text of its
// reports and renewals is PHI: it may be shown in their own answers only (checked below).
const clinicalText = {
  evaluation: `Evaluation ${tag}: guarded lumbar flexion, taut bands L3-L5`,
  findings: `Findings ${tag}: antalgic gait on long walks`,
  goal: `Goal ${tag}: sit through a work shift`,
  progress: `Progress ${tag}: sitting tolerance up to 45 minutes`,
  comment: `Comment ${tag}: plan of care certified`,
  justification: `Justification ${tag}: ODI 44 to 30, goal not met`,
  denial: `Denial ${tag}: re-evaluate first`,
  discharge: `Discharge ${tag}: independent with the home program`,
};
await call('continue a course that is still open', '/v1/referrals', { method: 'POST', token: physician.token, payload: prescription({ patientId: maria.id, therapistId: therapist.id, continuesReferralId: r5.id }), expect: 400 });
const r6 = (
  await must('prescribe a new course continuing R1', '/v1/referrals', {
    method: 'POST',
    token: physician.token,
    payload: prescription({ patientId: maria.id, therapistId: therapist.id, continuesReferralId: r1.id, reportEveryVisits: 1, send: true }),
    expect: 201,
  })
).json();
await call('R1 shows the course that continues it', referralPath(r1.id), { token: physician.token, expect: 200 });
await call('a report before acceptance', referralPath(r6.id, '/reports'), {
  method: 'POST',
  token: therapist.token,
  payload: { kind: 'progress', summary: clinicalText.progress, goals: [{ description: clinicalText.goal, status: 'progressing' }], recommendation: 'continue' },
  expect: 409,
});
await call('accept without acknowledging the precautions', referralPath(r6.id, '/accept'), { method: 'POST', token: therapist.token, payload: {}, expect: 422 });
await call('accept acknowledging them', referralPath(r6.id, '/accept'), { method: 'POST', token: therapist.token, payload: { acknowledgedPrecautions: true }, expect: 200 });
const evaluationPayload = {
  kind: 'evaluation',
  summary: clinicalText.evaluation,
  goals: [{ description: clinicalText.goal, status: 'new', measure: 'pain (0-10)', target: '≤ 3' }],
  recommendation: 'continue',
  findings: { posture: 'Anterior pelvic tilt', palpation: 'Taut bands L3-L5 paraspinals', notes: clinicalText.findings },
  baseline: { pain: 8, rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 40 }], outcomeMeasures: [{ instrument: 'ODI', score: 44 }] },
  plannedFrequencyPerWeek: 2,
  plannedDurationWeeks: 6,
  techniques: ['trigger_point', 'myofascial_release'],
};
const evaluation = (await must('the evaluation, the plan of care', referralPath(r6.id, '/reports'), { method: 'POST', token: therapist.token, payload: evaluationPayload, expect: 201 })).json();
await call('an evaluation without its plan', referralPath(r6.id, '/reports'), {
  method: 'POST',
  token: therapist.token,
  payload: { kind: 'evaluation', summary: clinicalText.evaluation, goals: evaluationPayload.goals, recommendation: 'continue' },
  expect: 400,
});
await call('a report by the prescriber', referralPath(r6.id, '/reports'), { method: 'POST', token: physician.token, payload: evaluationPayload, expect: 404 });
await call('a report by the practice client', referralPath(r6.id, '/reports'), { method: 'POST', token: practiceClientToken, payload: evaluationPayload, expect: 403 });
for (const painBefore of [8, 6]) {
  await call(`visit of R6 (pain ${painBefore})`, referralPath(r6.id, '/progress-reports'), { method: 'POST', token: therapist.token, payload: visit({ painBefore, final: false }), expect: 201 });
}
await call('R6 is overdue for a report', referralPath(r6.id), { token: physician.token, expect: 200 });
const progress = (
  await must('a progress report', referralPath(r6.id, '/reports'), {
    method: 'POST',
    token: therapist.token,
    payload: { kind: 'progress', summary: clinicalText.progress, goals: [{ description: clinicalText.goal, status: 'progressing' }], recommendation: 'continue' },
    expect: 201,
  })
).json();
await call('list reports (physician)', referralPath(r6.id, '/reports'), { token: physician.token, expect: 200 });
await call('list reports (practice client)', referralPath(r6.id, '/reports?limit=1'), { token: practiceClientToken, expect: 200 });
await call('list reports of another office', referralPath(r6.id, '/reports'), { token: outsider.token, expect: 404 });
await call('read a report (office client)', referralPath(r6.id, `/reports/${evaluation.id}`), { token: officeClientToken, expect: 200 });
await call('read a report as a PDF', referralPath(r6.id, `/reports/${evaluation.id}`), { token: physician.token, headers: { accept: 'application/pdf' }, expect: 200 });
await call('read a report in a format it is not served in', referralPath(r6.id, `/reports/${evaluation.id}`), { token: physician.token, headers: { accept: 'text/csv' }, expect: 406 });
await call('another office asks for the PDF', referralPath(r6.id, `/reports/${evaluation.id}`), { token: outsider.token, headers: { accept: 'application/pdf' }, expect: 404 });
await call('a report under another referral', referralPath(r3.id, `/reports/${evaluation.id}`), { token: therapist.token, expect: 404 });
await call('staff cannot sign a report', referralPath(r6.id, `/reports/${evaluation.id}/sign`), { method: 'POST', token: staff.token, payload: { attestation: true }, expect: 403 });
await call('the therapist cannot sign it', referralPath(r6.id, `/reports/${evaluation.id}/sign`), { method: 'POST', token: therapist.token, payload: { attestation: true }, expect: 403 });
await call('a physician of another office cannot sign it', referralPath(r6.id, `/reports/${evaluation.id}/sign`), { method: 'POST', token: outsider.token, payload: { attestation: true }, expect: 404 });
await call('the prescriber signs the plan of care', referralPath(r6.id, `/reports/${evaluation.id}/sign`), { method: 'POST', token: physician.token, payload: { attestation: true, comment: clinicalText.comment }, expect: 200 });
await call('a second signature of the report', referralPath(r6.id, `/reports/${evaluation.id}/sign`), { method: 'POST', token: physician.token, payload: { attestation: true }, expect: 409 });
await call('the EHR signs for the prescriber', referralPath(r6.id, `/reports/${progress.id}/sign`), { method: 'POST', token: officeClientToken, payload: { attestation: true }, expect: 200 });

const renewal = (
  await must('the therapist asks for more visits', referralPath(r6.id, '/renewal-requests'), {
    method: 'POST',
    token: therapist.token,
    payload: { additionalVisits: 6, extendWeeks: 4, justification: clinicalText.justification, reportId: progress.id },
    expect: 201,
  })
).json();
await call('a second request while one is pending', referralPath(r6.id, '/renewal-requests'), { method: 'POST', token: therapist.token, payload: { additionalVisits: 2, extendWeeks: 0, justification: clinicalText.justification }, expect: 409 });
await call('the prescriber cannot ask', referralPath(r6.id, '/renewal-requests'), { method: 'POST', token: physician.token, payload: { additionalVisits: 2, extendWeeks: 0, justification: clinicalText.justification }, expect: 404 });
await call('list renewal requests (therapist)', referralPath(r6.id, '/renewal-requests'), { token: therapist.token, expect: 200 });
await call('read a renewal request (physician)', referralPath(r6.id, `/renewal-requests/${renewal.id}`), { token: physician.token, expect: 200 });
await call('staff cannot approve', referralPath(r6.id, `/renewal-requests/${renewal.id}/approve`), { method: 'POST', token: staff.token, payload: { attestation: true }, expect: 403 });
await call('the practice client cannot approve', referralPath(r6.id, `/renewal-requests/${renewal.id}/approve`), { method: 'POST', token: practiceClientToken, payload: { attestation: true }, expect: 403 });
await call('the prescriber approves fewer visits', referralPath(r6.id, `/renewal-requests/${renewal.id}/approve`), { method: 'POST', token: physician.token, payload: { attestation: true, additionalVisits: 4 }, expect: 200 });
await call('approve it again', referralPath(r6.id, `/renewal-requests/${renewal.id}/approve`), { method: 'POST', token: physician.token, payload: { attestation: true }, expect: 409 });
const secondRenewal = (
  await must('the therapist asks again', referralPath(r6.id, '/renewal-requests'), {
    method: 'POST',
    token: therapist.token,
    payload: { additionalVisits: 10, extendWeeks: 8, justification: clinicalText.justification },
    expect: 201,
  })
).json();
await call('the EHR denies for the prescriber', referralPath(r6.id, `/renewal-requests/${secondRenewal.id}/deny`), { method: 'POST', token: officeClientToken, payload: { reason: clinicalText.denial }, expect: 200 });
await call('deny it again', referralPath(r6.id, `/renewal-requests/${secondRenewal.id}/deny`), { method: 'POST', token: physician.token, payload: { reason: clinicalText.denial }, expect: 409 });
await call('the discharge report completes R6', referralPath(r6.id, '/reports'), {
  method: 'POST',
  token: therapist.token,
  payload: { kind: 'discharge', summary: clinicalText.discharge, goals: [{ description: clinicalText.goal, status: 'met' }], recommendation: 'discharge', reason: 'goals_met' },
  expect: 201,
});
await call('no progress report after discharge', referralPath(r6.id, '/reports'), {
  method: 'POST',
  token: therapist.token,
  payload: { kind: 'progress', summary: clinicalText.progress, goals: [{ description: clinicalText.goal, status: 'met' }], recommendation: 'continue' },
  expect: 409,
});
await call('R6 is completed', referralPath(r6.id), { token: therapist.token, expect: 200 });
await call('history of R6', referralPath(r6.id, '/history?limit=50'), { token: physician.token, expect: 200 });

// R3, taken from the network by the therapist: the care team shares files (SPEC §14.6) and the
// therapist side books visits (SPEC §14.5). A document's title is clinical text and its bytes are
// the patient's: the title may be shown in the documents' own answers only (checked below with the
// reports' text), the bytes only where they are served.
const documentTitle = `Lumbar MRI ${tag}: L4-L5 disc protrusion`;
const fileCanary = `file-canary-${tag}-${randomBytes(6).toString('hex')}`;
const pdfWithCanary = Buffer.concat([Buffer.from(`%PDF-1.7\n% ${fileCanary}\n`, 'latin1'), sampleFile.pdf(1024).subarray(9)]);
const upload = (label: string, token: string, form: { payload: Buffer; contentType: string }, expect: number, headers: Record<string, string> = {}) =>
  call(label, referralPath(r3.id, '/documents'), { method: 'POST', token, payload: form.payload, headers: { 'content-type': form.contentType, ...headers }, expect });
const officeDocument = (
  await upload('share a PDF (physician)', physician.token, documentForm(pdfWithCanary, { category: 'imaging', title: documentTitle, filename: 'mri.pdf', contentType: 'application/pdf' }), 201, {
    'idempotency-key': `document-${tag}`,
  })
).json();
await upload('replay the upload', physician.token, documentForm(pdfWithCanary, { category: 'imaging', title: documentTitle, filename: 'mri.pdf', contentType: 'application/pdf' }), 201, {
  'idempotency-key': `document-${tag}`,
});
const practiceDocument = (await upload('share a photo (therapist)', therapist.token, documentForm(sampleFile.png(), { category: 'other', title: documentTitle }), 201)).json();
const clientDocument = (await upload('share a file (practice client)', practiceClientToken, documentForm(sampleFile.tiff(), { category: 'intake', title: documentTitle }), 201)).json();
const r3Documents: string[] = [officeDocument.id, practiceDocument.id, clientDocument.id];
const refusedTitle = `Refused upload ${tag}: not a document type`;
canary('title of a refused upload', refusedTitle);
await upload('a GIF is not a document', physician.token, documentForm(sampleFile.gif(), { title: refusedTitle }), 415);
await upload('a part the form does not take', physician.token, multipartBody([{ name: 'category', value: 'imaging' }, { name: 'title', value: refusedTitle }, { name: 'notes', value: refusedTitle }]), 400);
await call('a JSON body for an upload', referralPath(r3.id, '/documents'), { method: 'POST', token: physician.token, payload: { category: 'imaging', title: refusedTitle, file: 'JVBERi0=' }, expect: 415 });
await upload('an outsider shares a file', outsider.token, documentForm(sampleFile.pdf(), { title: refusedTitle }), 404);
await upload('therapist2, who lost the offer, shares a file', therapist2.token, documentForm(sampleFile.pdf(), { title: refusedTitle }), 404);
await call('list documents (therapist)', referralPath(r3.id, '/documents'), { token: therapist.token, expect: 200 });
await call('list documents in pages (office client)', referralPath(r3.id, '/documents?limit=1'), { token: officeClientToken, expect: 200 });
await call('read a document (practice client)', referralPath(r3.id, `/documents/${officeDocument.id}`), { token: practiceClientToken, expect: 200 });
await call('download a document (therapist)', referralPath(r3.id, `/documents/${officeDocument.id}/content`), { token: therapist.token, expect: 200 });
await call('download it as its type', referralPath(r3.id, `/documents/${officeDocument.id}/content`), { token: staff.token, headers: { accept: 'application/pdf' }, expect: 200 });
await call('download it as JSON', referralPath(r3.id, `/documents/${officeDocument.id}/content`), { token: physician.token, headers: { accept: 'application/json' }, expect: 406 });
await call('an outsider downloads it', referralPath(r3.id, `/documents/${officeDocument.id}/content`), { token: outsider.token, expect: 404 });
await call('a document under another referral', referralPath(r1.id, `/documents/${officeDocument.id}`), { token: physician.token, expect: 404 });
await call("the practice retracts the office's document", referralPath(r3.id, `/documents/${officeDocument.id}`), { method: 'DELETE', token: therapist.token, expect: 403 });
await call('the office retracts its own', referralPath(r3.id, `/documents/${practiceDocument.id}`), { method: 'DELETE', token: practiceAdmin.token, payload: { reason: `Wrong patient ${tag}` }, expect: 204 });
await call('the retracted document is gone', referralPath(r3.id, `/documents/${practiceDocument.id}/content`), { token: physician.token, expect: 404 });

const inHours = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString();
/** An hour ago, but not before today (UTC), the day the referral was accepted: no visit may start before that day. */
const earlierToday = () => new Date(Math.max(Date.now() - 3_600_000, Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`))).toISOString();
const visitBooked = (await must('book a visit (therapist)', referralPath(r3.id, '/appointments'), { method: 'POST', token: therapist.token, payload: { startsAt: inHours(48), minutes: 60 }, expect: 201 })).json();
const visitHeld = (
  await must('enter a visit already held (practice client)', referralPath(r3.id, '/appointments'), { method: 'POST', token: practiceClientToken, payload: { startsAt: earlierToday(), minutes: 45 }, expect: 201 })
).json();
await call('the office does not book', referralPath(r3.id, '/appointments'), { method: 'POST', token: physician.token, payload: { startsAt: inHours(48), minutes: 60 }, expect: 404 });
await call('a visit of 500 minutes', referralPath(r3.id, '/appointments'), { method: 'POST', token: therapist.token, payload: { startsAt: inHours(48), minutes: 500 }, expect: 400 });
await call('attended before it began', referralPath(r3.id, `/appointments/${visitBooked.id}`), { method: 'PATCH', token: therapist.token, payload: { status: 'attended' }, expect: 409 });
await call('a no-show (practice admin)', referralPath(r3.id, `/appointments/${visitHeld.id}`), { method: 'PATCH', token: practiceAdmin.token, payload: { status: 'no_show' }, expect: 200 });
await call('the patient cancels', referralPath(r3.id, `/appointments/${visitBooked.id}`), { method: 'PATCH', token: therapist.token, payload: { status: 'cancelled_by_patient' }, expect: 200 });
await call('nothing returns to scheduled', referralPath(r3.id, `/appointments/${visitBooked.id}`), { method: 'PATCH', token: therapist.token, payload: { status: 'scheduled' }, expect: 409 });
await call('list appointments (physician)', referralPath(r3.id, '/appointments'), { token: physician.token, expect: 200 });
await call('R3 shows its no-shows', referralPath(r3.id), { token: physician.token, expect: 200 });

// Urgent news on R3 (SPEC §14.10): urgent messages each side acknowledges for the other; adverse
// events the therapist side reports and the office acknowledges, a severe one holding R3 until the
// prescriber resumes it. What happened to the patient is clinical text, shown in its own answers only.
const urgentFromTherapist = (
  await must('an urgent message (therapist)', referralPath(r3.id, '/messages'), { method: 'POST', token: therapist.token, payload: { body: 'Numbness in the left hand after the session', priority: 'urgent' }, expect: 201 })
).json();
const urgentFromOffice = (
  await must('an urgent message (office client)', referralPath(r3.id, '/messages'), { method: 'POST', token: officeClientToken, payload: { body: 'Hold deep work until the scan is read', priority: 'urgent' }, expect: 201 })
).json();
const routine = (await must('a routine message', referralPath(r3.id, '/messages'), { method: 'POST', token: therapist.token, payload: { body: 'Booked for Tuesday' }, expect: 201 })).json();
await call('the office acknowledges', referralPath(r3.id, `/messages/${urgentFromTherapist.id}/acknowledge`), { method: 'POST', token: physician.token, expect: 200 });
await call('acknowledged again (staff)', referralPath(r3.id, `/messages/${urgentFromTherapist.id}/acknowledge`), { method: 'POST', token: staff.token, expect: 200 });
await call('the author acknowledges its own', referralPath(r3.id, `/messages/${urgentFromTherapist.id}/acknowledge`), { method: 'POST', token: therapist.token, expect: 409 });
await call('a routine message is not acknowledged', referralPath(r3.id, `/messages/${routine.id}/acknowledge`), { method: 'POST', token: physician.token, expect: 409 });
await call('the practice client acknowledges the office', referralPath(r3.id, `/messages/${urgentFromOffice.id}/acknowledge`), { method: 'POST', token: practiceClientToken, expect: 200 });
await call('an outsider acknowledges', referralPath(r3.id, `/messages/${urgentFromOffice.id}/acknowledge`), { method: 'POST', token: outsider.token, expect: 404 });
const adverseText = {
  description: `Adverse ${tag}: marked bruising over the left lumbar paraspinals`,
  actionTaken: `Action ${tag}: stopped pressure work, cold compress`,
};
const adverse = (severity: string, treatmentPaused: boolean) => ({ occurredOn: today, description: adverseText.description, severity, actionTaken: adverseText.actionTaken, treatmentPaused });
const mildEvent = (await must('report an adverse event (therapist)', referralPath(r3.id, '/adverse-events'), { method: 'POST', token: therapist.token, payload: adverse('mild', false), expect: 201 })).json();
await call('the office does not report', referralPath(r3.id, '/adverse-events'), { method: 'POST', token: physician.token, payload: adverse('mild', false), expect: 404 });
await call('an event in the future', referralPath(r3.id, '/adverse-events'), { method: 'POST', token: therapist.token, payload: { ...adverse('mild', false), occurredOn: '2999-01-01' }, expect: 400 });
const severeEvent = (
  await must('a severe event pauses treatment (practice client)', referralPath(r3.id, '/adverse-events'), { method: 'POST', token: practiceClientToken, payload: adverse('severe', true), expect: 201 })
).json();
await call('no visit note while on hold', referralPath(r3.id, '/progress-reports'), { method: 'POST', token: therapist.token, payload: visit({ final: false }), expect: 409 });
await call('R3 is on hold', referralPath(r3.id), { token: practiceAdmin.token, expect: 200 });
await call('list adverse events (physician)', referralPath(r3.id, '/adverse-events'), { token: physician.token, expect: 200 });
await call('read an adverse event (practice client)', referralPath(r3.id, `/adverse-events/${severeEvent.id}`), { token: practiceClientToken, expect: 200 });
await call('therapist2 reads them', referralPath(r3.id, '/adverse-events'), { token: therapist2.token, expect: 404 });
await call('the office client acknowledges', referralPath(r3.id, `/adverse-events/${severeEvent.id}/acknowledge`), { method: 'POST', token: officeClientToken, expect: 200 });
await call('the reporting side acknowledges', referralPath(r3.id, `/adverse-events/${mildEvent.id}/acknowledge`), { method: 'POST', token: therapist.token, expect: 409 });
await call('staff cannot resume', referralPath(r3.id, '/resume'), { method: 'POST', token: staff.token, payload: { attestation: true }, expect: 403 });
await call('the therapist cannot resume', referralPath(r3.id, '/resume'), { method: 'POST', token: therapist.token, payload: { attestation: true }, expect: 403 });
await call('a physician of another office cannot resume', referralPath(r3.id, '/resume'), { method: 'POST', token: outsider.token, payload: { attestation: true }, expect: 404 });
const onHold = await must('R3 as its prescriber sees it', referralPath(r3.id), { token: physician.token, expect: 200 });
await call('resume with a stale version', referralPath(r3.id, '/resume'), { method: 'POST', token: physician.token, payload: { attestation: true }, headers: { 'if-match': '"999"' }, expect: 412 });
await call('the prescriber resumes', referralPath(r3.id, '/resume'), {
  method: 'POST',
  token: physician.token,
  payload: { attestation: true, comment: 'Bruising resolved; lighter pressure' },
  headers: { 'if-match': onHold.headers.etag as string },
  expect: 200,
});
await call('resume again', referralPath(r3.id, '/resume'), { method: 'POST', token: physician.token, payload: { attestation: true }, expect: 409 });

// The claim (SPEC §14.9): JSON or CSV, for the care team only.
await call('the claim (physician)', referralPath(r3.id, '/billing'), { token: physician.token, expect: 200 });
await call('the claim as CSV (practice client)', referralPath(r3.id, '/billing'), { token: practiceClientToken, headers: { accept: 'text/csv' }, expect: 200 });
await call('the claim as XML', referralPath(r3.id, '/billing'), { token: physician.token, headers: { accept: 'application/xml' }, expect: 406 });
await call('the claim of another office', referralPath(r3.id, '/billing'), { token: outsider.token, expect: 404 });

await call('list referrals (physician)', '/v1/referrals?status=sent,accepted,completed&limit=2', { token: physician.token, expect: 200 });
const feed = await must('sync feed (therapist)', `/v1/referrals?updatedSince=${encodeURIComponent(hourAgo)}`, { token: therapist.token, expect: 200 });
await call('sync feed from the cursor', `/v1/referrals?cursor=${encodeURIComponent(feed.json().syncCursor)}`, { token: therapist.token, expect: 200 });
await call('list referrals (practice client)', '/v1/referrals', { token: practiceClientToken, expect: 200 });
await call('list referrals of a patient (EHR)', `/v1/referrals?patientId=${maria.id}`, { token: officeClientToken, expect: 200 });
await call('history', referralPath(r2.id, '/history'), { token: physician.token, expect: 200 });
await call('history (therapist2)', referralPath(r2.id, '/history?limit=2'), { token: therapist2.token, expect: 200 });
await call('visit notes (office)', referralPath(r1.id, '/progress-reports'), { token: physician.token, expect: 200 });
await call('messages (therapist)', referralPath(r1.id, '/messages?limit=2'), { token: therapist.token, expect: 200 });

// ---------------------------------------------------------------------------------------------
// Deliveries: two worker rounds deliver to /ok and kill what goes to /fail.
for (let round = 0; round < 3; round++) await test.app.webhookWorker.runOnce();
const deliveries = (await must('deliveries of the office receiver', `/v1/webhook-endpoints/${endpoint.id}/deliveries`, { token: officeAdmin.token, expect: 200 })).json();
const dead = (await must('dead deliveries of the failing receiver', `/v1/webhook-endpoints/${failing.id}/deliveries?status=dead`, { token: practiceAdmin.token, expect: 200 })).json();
if (deliveries.data.length === 0 || dead.data.length === 0) throw new Error(`expected deliveries on both receivers: ${deliveries.data.length} ok, ${dead.data.length} dead`);
await call('resend a dead delivery', `/v1/webhook-deliveries/${dead.data[0].id}/resend`, { method: 'POST', token: practiceAdmin.token, expect: 202 });
await call('resend another organization\'s delivery', `/v1/webhook-deliveries/${dead.data[0].id}/resend`, { method: 'POST', token: officeAdmin.token, expect: 404 });
await call('recover the dead deliveries of the last hour', `/v1/webhook-endpoints/${failing.id}/recover`, { method: 'POST', token: admin, payload: { from: hourAgo }, expect: 202 });
await call('disable the failing receiver', `/v1/webhook-endpoints/${failing.id}`, { method: 'PATCH', token: practiceAdmin.token, payload: { status: 'disabled' }, expect: 200 });
await call('ping a disabled receiver', `/v1/webhook-endpoints/${failing.id}/test`, { method: 'POST', token: practiceAdmin.token, expect: 409 });
for (let round = 0; round < 2; round++) await test.app.webhookWorker.runOnce();
// A referral's events go out one at a time, in order: R6's dozen need a round each.
for (let round = 0; round < 40 && (await test.app.webhookWorker.runOnce()) > 0; round++);

// ---------------------------------------------------------------------------------------------
// The events feed (SPEC §14.7): each caller's whole feed, page by page, every event held to the
// schema (and, below, searched for clinical text: the events are thin, as webhooks are).
async function drainFeed(label: string, token: string, query = '') {
  let after: string | undefined;
  for (let page = 0; page < 50; page++) {
    const answer = await must(`${label}, page ${page + 1}`, `/v1/events?limit=100${query}${after ? `&after=${encodeURIComponent(after)}` : ''}`, { token, expect: 200 });
    after = answer.json().nextCursor;
    if (answer.json().data.length === 0) return after!;
  }
  throw new Error(`${label}: the feed did not end`);
}
const therapistCursor = await drainFeed('events feed (therapist)', therapist.token);
await drainFeed('events feed (physician)', physician.token);
await drainFeed('events feed of documents and appointments (practice client)', practiceClientToken, '&types=document.added,appointment.scheduled,appointment.no_show');
await drainFeed('events feed (office client)', officeClientToken);
await call('events feed without waiting at its end', `/v1/events?after=${encodeURIComponent(therapistCursor)}&wait=0`, { token: therapist.token, expect: 200 });
await call("another caller's cursor", `/v1/events?after=${encodeURIComponent(therapistCursor)}`, { token: therapist2.token, expect: 400 });
await call('an unknown event type', '/v1/events?types=referral.sent,referral.exploded', { token: therapist.token, expect: 400 });
await call('a wait over 30 s', '/v1/events?wait=31', { token: therapist.token, expect: 400 });
await call('the network admin has no feed', '/v1/events', { token: admin, expect: 403 });

// ---------------------------------------------------------------------------------------------
// The audit trail.
await call('audit: who touched a patient', `/v1/audit-events?patientId=${maria.id}&limit=20`, { token: admin, expect: 200 });
await call('audit: denied attempts', '/v1/audit-events?outcome=denied', { token: admin, expect: 200 });
await call('audit: referral actions of an actor', `/v1/audit-events?action=referral.&actorId=${physician.id}&from=${encodeURIComponent(hourAgo)}`, { token: officeAdmin.token, expect: 200 });
await call('audit: the practice\'s view', '/v1/audit-events?limit=5', { token: practiceAdmin.token, expect: 200 });
await call('audit export (admin)', '/v1/audit-events/export', { token: admin, expect: 200 });
await call('audit export of a resource (office admin)', `/v1/audit-events/export?resourceType=referral&resourceId=${r1.id}`, { token: officeAdmin.token, expect: 200 });
await call('audit log verification', '/v1/audit-events/verify', { token: admin, expect: 200 });
// The verifiable log (SPEC §15), once the events so far are sequenced and signed.
await test.app.auditSequencer.run({ wait: true });
const officeEvent = (await call('audit: the office\'s own events', `/v1/audit-events?actorId=${physician.id}&limit=1`, { token: officeAdmin.token, expect: 200 })).json().data[0].id;
await call('audit: the latest checkpoint', '/v1/audit-events/checkpoints/latest', { token: officeAdmin.token, expect: 200 });
await call('audit: the checkpoints', '/v1/audit-events/checkpoints?limit=5', { token: practiceAdmin.token, expect: 200 });
await call('audit: the public key', '/v1/audit-events/public-key', { token: officeAdmin.token, expect: 200 });
await call('audit: one event', `/v1/audit-events/${officeEvent}`, { token: officeAdmin.token, expect: 200 });
await call('audit: its inclusion proof', `/v1/audit-events/${officeEvent}/proof`, { token: officeAdmin.token, expect: 200 });
await call('audit: a consistency proof', '/v1/audit-events/consistency?from=1&to=2', { token: admin, expect: 200 });
await call("audit: another organization's event", `/v1/audit-events/${officeEvent}`, { token: practiceAdmin.token, expect: 404 });
await call('who saw the patient', `/v1/audit-events/viewers?patientId=${maria.id}`, { token: officeAdmin.token, expect: 200 });
await call('a physician may not read the audit trail', '/v1/audit-events', { token: physician.token, expect: 403 });

// Operations and documentation.
await call('liveness', '/health/live', { expect: 200 });
await call('readiness', '/health/ready', { expect: 200 });
await call('the OpenAPI document', '/openapi.json', { expect: 200 });
await call('the explorer', '/docs', {});
await call('no such route', `/v1/nothing-here-${tag}`, { token: physician.token, expect: 404 });
await call('no token', '/v1/referrals', { expect: 401 });
await call('a garbage token', '/v1/referrals', { token: 'not.a.jwt', expect: 401 });
await call('a body that is not JSON', '/v1/patients', { method: 'POST', token: physician.token, payload: '{"givenName":', headers: { 'content-type': 'application/json' }, expect: 400 });
await call('a media type the API does not take', '/v1/patients', { method: 'POST', token: physician.token, payload: 'hello', headers: { 'content-type': 'text/plain' }, expect: 415 });

// ---------------------------------------------------------------------------------------------
// API client keys (private_key_jwt): a client registered with a public key set, its keys replaced.
const firstKey = await signingKey('ES384');
const keyClient = (
  await must('create a private_key_jwt client', `/v1/organizations/${riverside.id}/api-clients`, {
    method: 'POST',
    token: officeAdmin.token,
    payload: { name: 'Riverside EHR (keys)', scopes: ['referrals:read'], authMethod: 'private_key_jwt', jwks: jwksOf(firstKey) },
    expect: 201,
  })
).json();
await call('replace its keys', `/v1/organizations/${riverside.id}/api-clients/${keyClient.id}`, { method: 'PATCH', token: officeAdmin.token, payload: { jwks: jwksOf(await signingKey('RS384')) }, expect: 200 });
await call('replace its keys with a URL (admin)', `/v1/organizations/${riverside.id}/api-clients/${keyClient.id}`, { method: 'PATCH', token: admin, payload: { jwksUrl: 'https://keys.example/jwks.json' }, expect: 200 });
await call('another organization replaces them', `/v1/organizations/${riverside.id}/api-clients/${keyClient.id}`, { method: 'PATCH', token: practiceAdmin.token, payload: { jwks: jwksOf(firstKey) }, expect: 404 });

// ---------------------------------------------------------------------------------------------
// The FHIR façade (SPEC §16): the same records as FHIR resources, read and written by the same
// callers, every answer held to the same checks. A therapist offered a referral but not yet its
// taker sees no patient identity there (SPEC §14.8): R7, sent to therapist2 for a patient of its
// own, is left unaccepted so that the check below has something to look at.
const fhir = '/fhir/R4';
const fhirJson = { accept: 'application/fhir+json' };
const fhirBody = { ...fhirJson, 'content-type': 'application/fhir+json' };
const eve = (
  await must('register a patient for R7', '/v1/patients', {
    method: 'POST',
    token: physician.token,
    payload: { ...patientPayload('Eve'), familyName: `Okafor-${tag}`, birthDate: '1966-09-14', identifiers: [{ system: 'urn:riverside:mrn', value: `MRN-Eve-${tag}` }] },
    expect: 201,
  })
).json();
const eveIdentity = { id: eve.id, familyName: `Okafor-${tag}`, birthDate: '1966-09-14', mrn: `MRN-Eve-${tag}` };
const r7 = (await must('prescribe R7 to therapist2', '/v1/referrals', { method: 'POST', token: physician.token, payload: prescription({ patientId: eve.id, therapistId: therapist2.id, send: true }), expect: 201 })).json();
/** A ServiceRequest as an EHR would write it (test/fixtures/fhir-bodies.ts): a contained Patient and Coverage. */
const fhirServiceRequest = (): Json =>
  whiplashServiceRequest({ requesterId: physician.id, performerId: therapist.id, familyName: `Halvorsen-${tag}`, mrn: `MRN-FHIR-${tag}` });
const fhirGet = (label: string, path: string, token: string | undefined, expect?: number, headers: Record<string, string> = fhirJson) => call(label, `${fhir}${path}`, { token, headers, ...(expect === undefined ? {} : { expect }) });
const taskOf = async (referralId: string, token: string) => {
  const bundle = (await fhirGet(`the Task of ${referralId}`, `/Task?focus=ServiceRequest/${referralId}`, token, 200)).json();
  const task = bundle.entry?.[0]?.resource;
  if (!task) throw new Error(`no Task for ServiceRequest/${referralId}: ${JSON.stringify(bundle)}`);
  return task as Json;
};
await fhirGet('FHIR capabilities', '/metadata', undefined, 200);
await fhirGet('SMART configuration', '/.well-known/smart-configuration', undefined, 200, { accept: 'application/json' });
const task1 = await taskOf(r1.id, physician.token);
const task3 = await taskOf(r3.id, therapist.token);
const task7 = await taskOf(r7.id, physician.token);
await fhirGet('FHIR ServiceRequest (physician)', `/ServiceRequest/${r1.id}`, physician.token, 200);
await fhirGet('FHIR ServiceRequest (office client)', `/ServiceRequest/${r6.id}`, officeClientToken, 200);
await fhirGet('FHIR ServiceRequest of another office', `/ServiceRequest/${r1.id}`, outsider.token, 404);
await fhirGet('FHIR ServiceRequest search (therapist)', `/ServiceRequest?_id=${r3.id}`, therapist.token, 200);
await fhirGet('FHIR Task (therapist)', `/Task/${task3.id}`, therapist.token, 200);
await fhirGet('FHIR Task of another office', `/Task/${task1.id}`, outsider.token, 404);
await fhirGet('FHIR Patient (staff)', `/Patient/${maria.id}`, staff.token, 200);
await fhirGet('FHIR Patient (accepting therapist)', `/Patient/${jon.id}`, therapist.token, 200);
await fhirGet('FHIR Patient of another office', `/Patient/${maria.id}`, outsider.token, 404);
await fhirGet('FHIR Patient search by MRN (office client)', `/Patient?identifier=${encodeURIComponent(`urn:riverside:mrn|MRN-Maria-${tag}`)}`, officeClientToken, 200);
await fhirGet('FHIR Practitioner', `/Practitioner/${therapist.id}`, physician.token, 200);
await fhirGet('FHIR PractitionerRole', `/PractitionerRole/${therapist.id}`, physician.token, 200);
await fhirGet('FHIR Organization', `/Organization/${harbor.id}`, physician.token, 200);
await fhirGet('FHIR Encounter (physician)', `/Encounter/${note.id}`, physician.token, 200);
await fhirGet('FHIR Encounter search (therapist)', `/Encounter?based-on=ServiceRequest/${r1.id}`, therapist.token, 200);
await fhirGet('FHIR Observation (practice client)', `/Observation/${note.id}-pain-before`, practiceClientToken, 200);
await fhirGet('FHIR Observation search (physician)', `/Observation?based-on=ServiceRequest/${r1.id}`, physician.token, 200);
await fhirGet('FHIR Observation of another office', `/Observation/${note.id}-pain-before`, outsider.token, 404);
await fhirGet('FHIR Communication (therapist)', `/Communication/${fromOffice.id}`, therapist.token, 200);
await fhirGet('FHIR Communication search by Task (physician)', `/Communication?part-of=Task/${task1.id}`, physician.token, 200);
await fhirGet('FHIR Communication search (office client)', `/Communication?based-on=ServiceRequest/${r3.id}`, officeClientToken, 200);
await fhirGet('FHIR DocumentReference (therapist)', `/DocumentReference/${officeDocument.id}`, therapist.token, 200);
await fhirGet('FHIR DocumentReference search (physician)', `/DocumentReference?based-on=ServiceRequest/${r3.id}`, physician.token, 200);
await fhirGet('FHIR DocumentReference of a report', `/DocumentReference/${evaluation.id}`, physician.token, 200);
await fhirGet('FHIR Binary (staff)', `/Binary/${officeDocument.id}`, staff.token, 200, { accept: 'application/pdf' });
await fhirGet('FHIR Binary as FHIR JSON (therapist)', `/Binary/${officeDocument.id}`, therapist.token, 200);
await fhirGet('FHIR Binary of another office', `/Binary/${officeDocument.id}`, outsider.token, 404);
await fhirGet('FHIR AuditEvent search (admin)', `/AuditEvent?patient=Patient/${maria.id}`, admin, 200);
await fhirGet('FHIR AuditEvent (office admin)', `/AuditEvent/${officeEvent}`, officeAdmin.token, 200);
await fhirGet('FHIR AuditEvent of another organization', `/AuditEvent/${officeEvent}`, practiceAdmin.token, 404);
await call('FHIR create a ServiceRequest (physician)', `${fhir}/ServiceRequest`, { method: 'POST', token: physician.token, headers: fhirBody, payload: JSON.stringify(fhirServiceRequest()), expect: 201 });
await call('FHIR create a ServiceRequest (therapist)', `${fhir}/ServiceRequest`, { method: 'POST', token: therapist.token, headers: fhirBody, payload: JSON.stringify(fhirServiceRequest()), expect: 403 });
await call('FHIR update a Task as read (therapist)', `${fhir}/Task/${task3.id}`, { method: 'PUT', token: therapist.token, headers: fhirBody, payload: JSON.stringify(task3), expect: 200 });
await call('FHIR update a Task of another office', `${fhir}/Task/${task1.id}`, { method: 'PUT', token: outsider.token, headers: fhirBody, payload: JSON.stringify(task1), expect: 404 });
const fhirMessage = (taskId: string) => ({ resourceType: 'Communication', status: 'completed', partOf: [{ reference: `Task/${taskId}` }], payload: [{ contentString: 'Scan reviewed: fine to continue' }] });
await call('FHIR post a Communication (physician)', `${fhir}/Communication`, { method: 'POST', token: physician.token, headers: fhirBody, payload: JSON.stringify(fhirMessage(task3.id)), expect: 201 });
await call('FHIR post a Communication to another office', `${fhir}/Communication`, { method: 'POST', token: outsider.token, headers: fhirBody, payload: JSON.stringify(fhirMessage(task3.id)), expect: 404 });

// R7 before acceptance: what the office sees (the identity, so the search means something) and
// what therapist2, offered it, sees (no identity in any FHIR answer).
const identityShown = fhirPatientIdentity((await fhirGet('FHIR Patient of R7 (physician)', `/Patient/${eve.id}`, physician.token, 200)).body, eveIdentity);
const beforeAcceptance = [
  await fhirGet('FHIR ServiceRequest of R7 (therapist2, before accepting)', `/ServiceRequest/${r7.id}`, therapist2.token, 200),
  await fhirGet('FHIR ServiceRequest search of R7 (therapist2, before accepting)', `/ServiceRequest?_id=${r7.id}`, therapist2.token, 200),
  await fhirGet('FHIR Task of R7 (therapist2, before accepting)', `/Task/${task7.id}`, therapist2.token, 200),
  await fhirGet('FHIR Task search of R7 (therapist2, before accepting)', `/Task?focus=ServiceRequest/${r7.id}`, therapist2.token, 200),
  await fhirGet('FHIR Patient of R7 (therapist2, before accepting)', `/Patient/${eve.id}`, therapist2.token),
  await fhirGet('FHIR Patient search of R7 (therapist2, before accepting)', `/Patient?_id=${eve.id}`, therapist2.token),
  await fhirGet('FHIR Communication search of R7 (therapist2, before accepting)', `/Communication?based-on=ServiceRequest/${r7.id}`, therapist2.token),
];
const identityLeaks = beforeAcceptance.flatMap((answer) => fhirPatientIdentity(answer.body, eveIdentity).map((found) => `#${answer.index} ${seen[answer.index]!.label}: ${found}`));

// ---------------------------------------------------------------------------------------------
// The sweep: every read operation with real ids, as every kind of caller — the ones it is for get
// their data, the others their 401/403/404, and all of it is checked the same way.
const callers: Record<string, string | undefined> = {
  'network admin': admin,
  physician: physician.token,
  'office staff': staff.token,
  'office admin': officeAdmin.token,
  'outside physician': outsider.token,
  therapist: therapist.token,
  therapist2: therapist2.token,
  'practice admin': practiceAdmin.token,
  'office client': officeClientToken,
  'practice client': practiceClientToken,
  anonymous: undefined,
};
const reads = [
  '/v1/me',
  '/v1/organizations',
  `/v1/organizations/${harbor.id}`,
  `/v1/organizations/${riverside.id}/users`,
  `/v1/organizations/${harbor.id}/users/${therapist.id}`,
  `/v1/organizations/${riverside.id}/api-clients`,
  '/v1/therapists?near=45.52,-122.67',
  '/v1/patients',
  `/v1/patients/${ann.id}`,
  '/v1/referrals',
  ...[r1, r2, r3, r4, r5, r6].flatMap((referral) => [referralPath(referral.id), referralPath(referral.id, '/history')]),
  referralPath(r1.id, '/progress-reports'),
  referralPath(r1.id, '/messages'),
  referralPath(r6.id, '/reports'),
  referralPath(r6.id, `/reports/${evaluation.id}`),
  referralPath(r6.id, '/renewal-requests'),
  referralPath(r6.id, `/renewal-requests/${secondRenewal.id}`),
  referralPath(r3.id, '/documents'),
  referralPath(r3.id, `/documents/${officeDocument.id}`),
  referralPath(r3.id, `/documents/${officeDocument.id}/content`),
  referralPath(r3.id, '/appointments'),
  referralPath(r3.id, '/adverse-events'),
  referralPath(r3.id, `/adverse-events/${severeEvent.id}`),
  referralPath(r3.id, '/billing'),
  '/v1/events?limit=20',
  '/v1/audit-events?limit=50',
  `/v1/audit-events/export?patientId=${maria.id}`,
  '/v1/audit-events/verify',
  `/v1/audit-events/viewers?patientId=${ann.id}`,
  '/v1/webhook-endpoints',
  `/v1/webhook-endpoints/${endpoint.id}`,
  `/v1/webhook-endpoints/${failing.id}/deliveries`,
  `/v1/webhook-endpoints/${endpoint.id}/deliveries?status=succeeded`,
];
for (const url of reads) {
  for (const [name, token] of Object.entries(callers)) await call(`sweep ${url} as ${name}`, url, { token });
}
// And the FHIR façade's reads, asked for as FHIR JSON (refusals are OperationOutcomes).
const fhirReads = [
  `/ServiceRequest/${r3.id}`,
  `/ServiceRequest?_id=${r7.id}`,
  `/Task/${task3.id}`,
  `/Task?focus=ServiceRequest/${r7.id}`,
  `/Patient/${jon.id}`,
  `/Patient/${eve.id}`,
  `/Patient?_id=${ann.id}`,
  `/Encounter/${note.id}`,
  `/Observation/${note.id}-pain-before`,
  `/Communication/${fromOffice.id}`,
  `/Communication?part-of=Task/${task3.id}`,
  `/DocumentReference/${officeDocument.id}`,
  `/DocumentReference?based-on=ServiceRequest/${r3.id}`,
  `/Binary/${officeDocument.id}`,
  `/AuditEvent?patient=Patient/${maria.id}`,
];
for (const path of fhirReads) {
  for (const [name, token] of Object.entries(callers)) {
    const answer = await fhirGet(`sweep ${fhir}${path} as ${name}`, path, token);
    // Therapist2 was offered R7 and has not taken it: no FHIR answer to it may show Eve's identity.
    if (name === 'therapist2') identityLeaks.push(...fhirPatientIdentity(answer.body, eveIdentity).map((found) => `#${answer.index} ${seen[answer.index]!.label}: ${found}`));
  }
}

// ---------------------------------------------------------------------------------------------
// What the database keeps of the secrets: none of it may be in any answer.
const stored = await test.app.database.rows<{ kind: string; owner: string; value: string }>(sql`
  select 'password hash' as kind, email as owner, password_hash as value from users
  union all select 'client secret hash', client_id, secret_hash from api_clients
  union all select 'refresh token hash', user_id::text, token_hash from refresh_tokens`);
for (const row of stored) {
  // A private_key_jwt client keeps no secret: there is no hash of it to search for.
  if (row.value === null || row.value === '') continue;
  canary(`${row.kind} of ${row.owner}`, row.value);
  // A scrypt hash is scheme$N$r$p$salt$key: the salt or the key alone would be a leak too.
  if (row.value.startsWith('scrypt$')) {
    const [, , , , salt, key] = row.value.split('$');
    canary(`${row.kind} salt of ${row.owner}`, salt!);
    canary(`${row.kind} key of ${row.owner}`, key!);
  }
}

// The bytes of a document: in the answers that serve them, and nowhere else.
canary(
  'a line inside the bytes of a document',
  fileCanary,
  seen
    .filter(
      (response) =>
        response.status === 200 &&
        response.method === 'GET' &&
        // The /v1 download and the FHIR Binary (SPEC §16) both serve them (a Binary asked for as FHIR JSON holds them in base64).
        (response.url.startsWith(referralPath(r3.id, `/documents/${officeDocument.id}/content`)) || (response.url === `${fhir}/Binary/${officeDocument.id}` && !String(response.headers['content-type']).startsWith('application/fhir+json'))),
    )
    .map((response) => response.index),
);

// ---------------------------------------------------------------------------------------------
// The verdict.
const { leaks, internalMembers } = findLeaks(seen, canaries);

const undeclared = seen.flatMap((response) =>
  response.violations.filter((violation) => violation.kind === 'undeclared-property').map((violation) => `#${response.index} ${response.label}: ${violation.message}`),
);
const breaks = seen.flatMap((response) =>
  response.violations.filter((violation) => violation.kind !== 'undeclared-property').map((violation) => `#${response.index} ${response.label}: ${violation.message}`),
);
// The clinical text of R6's reports and renewals, and where it may be shown: the 2xx answers of
// R6's own reports, renewal requests and history. Never in an error, another resource (the referral
// itself, lists of referrals, the audit trail), or a webhook delivery, whose payloads are thin (SPEC §8).
const ownAnswer = (response: Seen) => response.status >= 200 && response.status < 300 && /^\/v1\/referrals\/[^/]+\/(reports|renewal-requests|history)/.test(response.url) && response.url.startsWith(referralPath(r6.id, '/'));
// A document's title likewise (SPEC §14.6): in the 2xx answers of R3's documents (their metadata, and
// the Content-Disposition of their bytes), never in the events feed, a webhook delivery or an error.
const documentAnswer = (response: Seen) =>
  response.status >= 200 &&
  response.status < 300 &&
  (response.url.startsWith(referralPath(r3.id, '/documents')) ||
    // The same documents through the FHIR façade: R3's DocumentReferences and the Binary of one.
    r3Documents.some((id) => response.url === `${fhir}/DocumentReference/${id}` || response.url === `${fhir}/Binary/${id}`) ||
    response.url === `${fhir}/DocumentReference?based-on=ServiceRequest/${r3.id}`);

// And what an adverse event says happened (SPEC §14.10): in R3's adverse events only.
const adverseAnswer = (response: Seen) => response.status >= 200 && response.status < 300 && response.url.startsWith(referralPath(r3.id, '/adverse-events'));
const phiTexts = [
  ...Object.entries(clinicalText).map(([name, value]) => ({ name, value, own: ownAnswer })),
  { name: 'document title', value: documentTitle, own: documentAnswer },
  ...Object.entries(adverseText).map(([name, value]) => ({ name: `adverse event ${name}`, value, own: adverseAnswer })),
];
const phiLeaks = phiTexts.flatMap(({ name, value, own }) => [
  ...seen.filter((response) => !own(response) && (response.body.includes(value) || JSON.stringify(response.headers).includes(value))).map((response) => `${name}: #${response.index} ${response.label} (${response.method} ${response.url} → ${response.status})`),
  ...received.filter((delivery) => delivery.body.includes(value) || JSON.stringify(delivery.headers).includes(value)).map((delivery) => `${name}: webhook delivery to ${delivery.path}`),
]);
const leakCount = leaks.length + internalMembers.length + phiLeaks.length + identityLeaks.length;

t.test('the tour went as the rules say', async (t) => {
  t.same(failures, [], 'every call of the tour answered the status the rules give it');
  const answered = new Set(
    seen.filter((response) => response.status >= 200 && response.status < 300).map((response) => contract.operationFor(response.method, response.url)?.operationId),
  );
  const missed = contract.operations.map((operation) => operation.operationId).filter((operationId) => !answered.has(operationId));
  t.same(missed, [], `every one of the ${contract.operations.length} documented operations answered 2xx at least once`);
  for (const { name, value, designated } of canaries) {
    for (const index of designated) t.ok(seen[index]!.body.includes(value), `${name} is in its designated answer (#${index}), so the search for it means something`);
  }
  t.ok(received.length > 0, `${received.length} webhook deliveries reached the receivers`);
});

t.test('the checker sees what it is meant to see (a zero means nothing was there, not that nothing was looked at)', async (t) => {
  const recorded = (operationId: string, status: number) => {
    const found = seen.find((response) => response.status === status && contract.operationFor(response.method, response.url)?.operationId === operationId);
    if (!found) throw new Error(`no ${status} answer of ${operationId} was recorded`);
    return found;
  };
  const kindsOf = (response: Seen, body: unknown, changes: Partial<Seen> = {}) => {
    const changed = { ...response, ...changes };
    return contract.check(changed.method, changed.url, changed.status, changed.headers, typeof body === 'string' ? body : JSON.stringify(body));
  };
  const undeclaredNames = (violations: Violation[]) => violations.filter((violation) => violation.kind === 'undeclared-property').map((violation) => violation.property);

  const patient = recorded('getPatient', 200);
  t.same(kindsOf(patient, JSON.parse(patient.body)), [], 'a real answer passes as it is');
  t.same(undeclaredNames(kindsOf(patient, { ...JSON.parse(patient.body), passwordHash: 'scrypt$…' })), ['passwordHash'], 'a member at the top');
  const withIdentifier = JSON.parse(patient.body);
  withIdentifier.identifiers = [{ system: 'urn:x', value: '1', assigner: 'someone' }];
  t.same(undeclaredNames(kindsOf(patient, withIdentifier)), ['assigner'], 'a member of an object in an array');
  const endpointCreation = recorded('createWebhookEndpoint', 201);
  t.same(undeclaredNames(kindsOf(endpointCreation, { ...JSON.parse(endpointCreation.body), previousSecret: 'whsec_…' })), ['previousSecret'], 'a member beside the parts of an allOf');
  const referral = recorded('getReferral', 200);
  const accepted = seen.find((response) => response.status === 200 && contract.operationFor(response.method, response.url)?.operationId === 'getReferral' && JSON.parse(response.body).acceptedBy);
  const acceptedBody = JSON.parse((accepted ?? referral).body);
  acceptedBody.acceptedBy = { therapistId: crypto.randomUUID(), practiceId: crypto.randomUUID(), at: new Date().toISOString(), leaseId: 'x' };
  t.same(kindsOf(referral, acceptedBody).map((violation) => violation.kind), ['undeclared-property'], 'a member of a nullable object is named as such, not as a failed anyOf');
  t.same(kindsOf(referral, { ...acceptedBody, acceptedBy: null, version: '1' }).map((violation) => violation.kind), ['schema'], 'a wrong type');
  // The signature (SPEC §14.1) is a declared member, required, and closed like every other object.
  const signing = recorded('signReferral', 200);
  const signedBody = JSON.parse(signing.body);
  t.match(signedBody.signature, { signedBy: physician.id, method: 'physician' }, 'the signed referral shows its signature');
  t.same(kindsOf(signing, signedBody), [], 'a signed referral passes as it is: signature is declared');
  const { signature: _signature, ...unsignedShape } = signedBody;
  t.same(kindsOf(signing, unsignedShape).map((violation) => violation.kind), ['schema'], 'a referral without its signature member breaks the schema');
  t.same(undeclaredNames(kindsOf(signing, { ...signedBody, signature: { ...signedBody.signature, keyId: 'k-1' } })), ['keyId'], 'a member of the signature');
  const forgedMethod = kindsOf(signing, { ...signedBody, signature: { ...signedBody.signature, method: 'rubber_stamp' } });
  t.ok(forgedMethod.length > 0 && forgedMethod.every((violation) => violation.kind === 'schema'), 'a signing method the document does not list', { found: forgedMethod });
  const problem = seen.find((response) => response.status === 404 && response.url.startsWith('/v1/referrals/'))!;
  t.same(undeclaredNames(kindsOf(problem, { ...JSON.parse(problem.body), stack: 'Error: at …' })), ['stack'], 'a member of a problem');
  t.same(kindsOf(problem, JSON.parse(problem.body), { headers: { ...problem.headers, 'content-type': 'application/json' } }).map((violation) => violation.kind), ['content-type'], 'an error that is not problem+json');
  t.same(kindsOf(problem, { ...JSON.parse(problem.body), status: 500 }).map((violation) => violation.kind), ['schema'], 'a problem whose status member is not its status');
  const created = recorded('createPatient', 201);
  t.same(kindsOf(created, JSON.parse(created.body), { status: 200 }).map((violation) => violation.kind), ['undeclared-status'], 'a 2xx the operation does not declare');
  const content = recorded('getDocumentContent', 200);
  t.same(kindsOf(content, content.body), [], 'the bytes of a document pass as they are');
  t.same(kindsOf(content, content.body, { headers: { ...content.headers, 'content-type': 'text/html' } }).map((violation) => violation.kind), ['content-type'], 'bytes served as a type the document does not declare');
  const exported = recorded('exportAuditEvents', 200);
  const [firstLine, ...rest] = exported.body.split('\n');
  t.same(undeclaredNames(kindsOf(exported, [JSON.stringify({ ...JSON.parse(firstLine!), tokenHash: 'x' }), ...rest].join('\n'))), ['tokenHash'], 'a member of one NDJSON line');
});

t.test('every response keeps its OpenAPI schema, with no undeclared properties', async (t) => {
  t.equal(undeclared.length, 0, `undeclared properties: ${undeclared.length}`, { found: undeclared.slice(0, 20) });
  t.equal(breaks.length, 0, `other schema breaks: ${breaks.length}`, { found: breaks.slice(0, 20) });
});

t.test('no canary secret appears outside its designated answer', async (t) => {
  t.ok(canaries.length > 40, `${canaries.length} canaries seeded`);
  t.same(leaks, [], 'no canary in any other response body or header');
  t.same(internalMembers, [], 'no internal column in any response');
  // The deliveries carry a signature, never a secret, a token or a hash.
  const webhookLeaks = received.flatMap((delivery) =>
    canaries.filter(({ value }) => delivery.body.includes(value) || JSON.stringify(delivery.headers).includes(value)).map(({ name }) => `${delivery.path}: ${name}`),
  );
  t.same(webhookLeaks, [], `no canary in any of the ${received.length} webhook deliveries`);
});

t.test('the clinical text of reports, renewals, documents and adverse events appears only in their own answers (PHI, SPEC §8, §14.3, §14.4, §14.6, §14.10)', async (t) => {
  for (const { name, value, own } of phiTexts) {
    t.ok(seen.some((response) => own(response) && response.body.includes(value)), `${name} is shown in an answer of its own, so the search for it means something`);
  }
  const kinds = new Set(received.map((delivery) => (JSON.parse(delivery.body) as Json).type));
  for (const type of [
    'report.submitted', 'report.signed', 'report.overdue', 'renewal.requested', 'renewal.decided', 'document.added', 'appointment.scheduled', 'appointment.no_show',
    'message.urgent', 'adverse_event.reported', 'referral.resumed',
  ]) {
    t.ok(kinds.has(type), `a ${type} event reached the receiver`);
  }
  const feedEvents = seen
    .filter((response) => response.status === 200 && response.url.startsWith('/v1/events'))
    .flatMap((response) => (JSON.parse(response.body).data as Json[]).map((event) => event.type as string));
  for (const type of ['document.added', 'appointment.scheduled', 'report.signed']) t.ok(feedEvents.includes(type), `a ${type} event was read from the events feed`);
  t.same(phiLeaks, [], 'in no other answer, no error, and no webhook delivery');
});

t.test('a therapist offered a referral, not yet its taker, sees no patient identity in any FHIR answer (SPEC §14.8)', async (t) => {
  t.ok(identityShown.length > 0, 'the office sees the name, birth date and MRN in the FHIR Patient, so the search for them means something', { found: identityShown });
  t.ok(beforeAcceptance.filter((answer) => answer.status === 200).length >= 4, 'therapist2 was answered about R7 before accepting it');
  t.comment(beforeAcceptance.map((answer) => `${seen[answer.index]!.label} → ${answer.status}`).join('; '));
  t.same(identityLeaks, [], 'no name, birth date or MRN of the patient');
});

const pass = failures.length === 0 && undeclared.length === 0 && breaks.length === 0 && leakCount === 0;
t.comment(`${seen.length} responses checked against ${contract.operations.length} operations; ${canaries.length} canaries`);
recordFigure({
  item: 5,
  check: 'Response exposure',
  figure: `${seen.length} responses checked: ${undeclared.length} undeclared properties, ${breaks.length} schema breaks, ${leakCount} canary leaks`,
  pass,
});
