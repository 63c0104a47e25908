// Hardening item 9, OpenAPI fuzzing: requests generated from the OpenAPI document — valid bodies,
// boundary values, type-confused and random values, missing and extra fields, real ids of seeded
// resources beside random uuids and garbage path segments, odd headers and media types, and for the
// document upload multipart/form-data forms (valid ones, a part missing, repeated, of a refused
// value or a stranger, files of every type and some refused ones, a broken envelope) — for every
// operation, as several kinds of caller, against a seeded network so that valid requests reach the
// code behind validation. No answer may be a 5xx, and every answer must keep the response contract
// of the document (test/fixtures/response-contract.ts: declared status, media type and schema,
// every object closed).
//
// Reproducible: FUZZ_SEED fixes the generated requests (default 9009); FUZZ_REQUESTS sets how many
// (default 10,000); FUZZ_CONCURRENCY how many are in flight at once (default 1, which also makes
// the order of effects, and so the answers, repeatable: the same seed gives the same statuses on
// PGlite and PostgreSQL). For a closer look, FUZZ_PROGRESS=1 reports progress on stderr and
// FUZZ_PEEK=<operationId> prints every request of that operation with its answer.
//
// The events feed's long poll (wait) is asked for 0 or 1 s only, as a run sends one request at a
// time (openapi-fuzz-values.ts, queryHints, says why; resource-limits.test.ts probes the long poll).
//
// The values standing for seeded resources are in openapi-fuzz-values.ts, the arbitraries of values
// a schema takes or refuses in openapi-fuzz-schemas.ts, and those of whole requests in
// openapi-fuzz-requests.ts.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { documentForm, multipartBody, sampleFile, type Part } from '../fixtures/documents.js';
import { ResponseContract, type Operation, type Violation } from '../fixtures/response-contract.js';
import { adminEmail, adminPassword, buildTestApp, createOffice, createPractice, defaultPassword, type Json } from '../helper.js';
import { evaluationReportBody, renewalRequestBody } from './clinical-bodies.js';
import { recordFigure } from './figures.js';
import { garbageSegments, operationArb, toText, type FileKind, type MultipartPart, type RequestTemplate } from './openapi-fuzz-requests.js';
import { makeResolver } from './openapi-fuzz-schemas.js';
import { AsReadRef, CallerOrganizationRef, PairRef, PoolRef, addToPool, isoDay, ownerOf, pathPool, pools, resolveValue } from './openapi-fuzz-values.js';
import { jwksOf, signingKey } from '../fixtures/smart.js';
import { skipFileUnlessPostgres } from './postgres-only.js';
import { withParametersInline } from '../fixtures/openapi-parameters.js';

skipFileUnlessPostgres();

// Ten thousand requests through the embedded database take one and a half to four minutes, by how busy the machine is.
t.setTimeout(900_000);

const seed = Number(process.env.FUZZ_SEED ?? 9009);
// The figure (10,000 requests) is taken on PostgreSQL; the embedded run of the same suite is a fifth
// as long, so CI runs both databases within its time budget.
const requested = Number(process.env.FUZZ_REQUESTS ?? (process.env.TEST_DATABASE_URL ? 10_000 : 2_000));
const concurrency = Math.max(1, Number(process.env.FUZZ_CONCURRENCY ?? 1));

// ---------------------------------------------------------------------------------------------
// The seeded network.

const test = await buildTestApp(t, { env: { ROLE: 'api' } });
const document = withParametersInline(test.app.swagger() as Json);
const contract = new ResponseContract(document);
const resolve = makeResolver(document);
const adminToken = await test.loginAsAdmin();
const office = await createOffice(test, adminToken);
const otherOffice = await createOffice(test, adminToken, { lat: 45.6, lng: -122.7 });
const practice = await createPractice(test, adminToken);
const otherPractice = await createPractice(test, adminToken, { location: { lat: 45.52, lng: -122.65 }, techniques: ['trigger_point', 'swedish'] });

const post = async (url: string, token: string, payload: Json = {}, headers: Record<string, string> = {}) => {
  const response = await test.request({ method: 'POST', url, token, payload, headers });
  if (response.statusCode >= 300) throw new Error(`seeding ${url}: ${response.statusCode} ${response.body}`);
  return response.json();
};

const staffUsers: string[] = [];
for (const [organizationId, role, count] of [[office.id, 'office_staff', 3], [practice.id, 'practice_admin', 2]] as const) {
  for (let index = 0; index < count; index++) {
    const user = await post(`/v1/organizations/${organizationId}/users`, adminToken, { role, email: `spare.${role}.${index}.${randomUUID().slice(0, 8)}@fuzz.example`, password: defaultPassword, name: `Spare ${index}` });
    staffUsers.push(user.id);
    ownerOf.set(user.id, organizationId);
  }
}
const spareTherapist = await post(`/v1/organizations/${practice.id}/users`, adminToken, {
  role: 'therapist',
  email: `spare.therapist.${randomUUID().slice(0, 8)}@fuzz.example`,
  password: defaultPassword,
  name: 'Spare therapist',
  license: { number: 'MT-SPARE', state: 'OR', expiresOn: '2030-01-01' },
  techniques: ['swedish'],
  serviceRadiusKm: 10,
});
staffUsers.push(spareTherapist.id);
ownerOf.set(spareTherapist.id, practice.id);

// The office's EHR vouches for its prescribers (referrals:sign, SPEC §14.1): it creates signed orders, signs and amends.
const officeClient = await post(`/v1/organizations/${office.id}/api-clients`, office.admin.token, {
  name: 'Office EHR',
  scopes: ['directory:read', 'patients:read', 'patients:write', 'referrals:read', 'referrals:write', 'referrals:sign'],
});
const practiceClient = await post(`/v1/organizations/${practice.id}/api-clients`, practice.admin.token, { name: 'Practice app', scopes: ['directory:read', 'referrals:read', 'referrals:write'] });
const doomedClients: Json[] = [];
for (let index = 0; index < 4; index++) doomedClients.push(await post(`/v1/organizations/${index % 2 ? practice.id : office.id}/api-clients`, adminToken, { name: `Doomed ${index}`, scopes: ['referrals:read'] }));
// SMART Backend Services clients (private_key_jwt) of each side, whose keys the admins replace; and key sets to replace them with.
const keyClients: Json[] = [];
for (const [organizationId, token] of [[office.id, office.admin.token], [practice.id, practice.admin.token]] as const) {
  keyClients.push(await post(`/v1/organizations/${organizationId}/api-clients`, token, { name: 'Backend EHR', scopes: ['referrals:read'], authMethod: 'private_key_jwt', jwks: jwksOf(await signingKey('ES384')) }));
}
const jwkSets = [JSON.stringify(jwksOf(await signingKey('ES384'))), JSON.stringify(jwksOf(await signingKey('RS384'), await signingKey('ES384')))];
const clientToken = async (client: Json) =>
  (await post('/v1/auth/token', '', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret })).access_token as string;

const endpoints: string[] = [];
const doomedEndpoints: string[] = [];
const eventTypes = ['referral.sent', 'referral.accepted', 'referral.declined', 'referral.cancelled', 'progress_report.created', 'message.created'];
for (const [token, list] of [[office.admin.token, endpoints], [practice.admin.token, endpoints], [office.admin.token, doomedEndpoints], [office.admin.token, doomedEndpoints], [practice.admin.token, doomedEndpoints]] as const) {
  list.push((await post('/v1/webhook-endpoints', token, { url: `https://ehr.example/hooks/${randomUUID().slice(0, 8)}`, eventTypes })).id);
}

const patients: Json[] = [];
for (let index = 0; index < 4; index++) {
  patients.push(
    await post('/v1/patients', office.physician.token, {
      givenName: `Pat${index}`,
      familyName: 'Fuzz',
      birthDate: '1980-05-0' + (index + 1),
      sex: 'female',
      identifiers: [{ system: 'urn:fuzz:mrn', value: `MRN-${index}` }],
    }),
  );
}
const outsidePatient = await post('/v1/patients', otherOffice.physician.token, { givenName: 'Out', familyName: 'Side', birthDate: '1970-01-01', sex: 'male' });

const prescription = (patientId: string, target: Json, send = true) => ({
  patientId,
  diagnoses: [{ code: 'M54.50', display: 'Low back pain' }],
  reason: 'Chronic low back pain',
  techniques: ['trigger_point'],
  bodyRegions: ['lower_back'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  send,
  ...target,
});
const referrals: Json[] = [];
const create = async (token: string, body: Json) => {
  const referral = await post('/v1/referrals', token, body);
  referrals.push(referral);
  return referral;
};
for (let index = 0; index < 3; index++) await create(office.physician.token, prescription(patients[index % 4]!.id, { therapistId: practice.therapist.id }));
for (let index = 0; index < 3; index++) await create(office.physician.token, prescription(patients[(index + 1) % 4]!.id, { practiceId: practice.id }));
for (let index = 0; index < 2; index++) await create(office.physician.token, prescription(patients[2]!.id, { therapistId: otherPractice.therapist.id }, false));
await create(office.physician.token, prescription(patients[3]!.id, { network: { near: { lat: 45.5231, lng: -122.6765 }, radiusKm: 30 } }));
await create(otherOffice.physician.token, prescription(outsidePatient.id, { therapistId: otherPractice.therapist.id }));
/** Drafts the front desk prepared in the physician's name: unsigned until the physician signs them (SPEC §14.1). */
const unsignedDraft = async (patientId: string) => (await post('/v1/referrals', office.staff.token, { ...prescription(patientId, { practiceId: practice.id }, false), prescriberId: office.physician.id })).id as string;
const unsignedDrafts = [await unsignedDraft(patients[0]!.id), await unsignedDraft(patients[1]!.id)];
const reports: string[] = [];
const messages: string[] = [];
for (const referral of referrals.slice(0, 3)) {
  await post(`/v1/referrals/${referral.id}/accept`, practice.therapist.token);
  const report = await post(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, {
    visitDate: isoDay(0),
    subjective: 'S',
    objective: 'O',
    assessment: 'A',
    plan: 'P',
    painBefore: 6,
    painAfter: 3,
    outcomeMeasures: [{ instrument: 'NDI', score: 20 }],
    techniquesApplied: ['trigger_point'],
    minutes: 45,
  });
  reports.push(report.id);
  ownerOf.set(report.id, referral.id);
  await post(`/v1/referrals/${referral.id}/progress-reports/${report.id}/addenda`, practice.therapist.token, { text: 'Addendum' });
  messages.push((await post(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'How is it going?' })).id);
  messages.push((await post(`/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: 'Well.' })).id);
}
await post(`/v1/referrals/${referrals[3]!.id}/decline`, practice.therapist.token, { reason: 'Full' });
// Reports to the prescriber and renewal requests (SPEC §14.3, §14.4) of the accepted referrals: an
// evaluation to read and sign, and a request pending for the prescriber.
const clinicalReports: string[] = [];
const renewalRequests: string[] = [];
/** An evaluation and a pending renewal request on an accepted referral, each recorded with its owner. */
async function treat(referralId: string) {
  const report = await post(`/v1/referrals/${referralId}/reports`, practice.therapist.token, evaluationReportBody());
  const renewal = await post(`/v1/referrals/${referralId}/renewal-requests`, practice.therapist.token, renewalRequestBody({ reportId: report.id }));
  ownerOf.set(report.id, referralId);
  ownerOf.set(renewal.id, referralId);
  return { report: report.id as string, renewal: renewal.id as string };
}
for (const referral of referrals.slice(0, 3)) {
  const { report, renewal } = await treat(referral.id);
  clinicalReports.push(report);
  renewalRequests.push(renewal);
}
/**
 * The care team's records of an accepted referral (SPEC §14.5, §14.6): a document to read, one of
 * each side's to retract (only the uploading organization may), and a visit booked two days ahead.
 * Each goes straight into its pool, with its referral as its owner.
 */
async function share(referralId: string) {
  const upload = async (token: string, title: string) => {
    const form = documentForm(sampleFile.pdf(), { title });
    const response = await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/documents`, token, headers: { 'content-type': form.contentType }, payload: form.payload });
    if (response.statusCode !== 201) throw new Error(`seeding a document: ${response.statusCode} ${response.body}`);
    ownerOf.set(response.json().id, referralId);
    return response.json().id as string;
  };
  addToPool('documents', await upload(office.physician.token, 'Lumbar MRI report'));
  addToPool('doomedDocuments', await upload(office.physician.token, 'Referral letter'), await upload(practice.therapist.token, 'Posture photo'));
  const appointment = await post(`/v1/referrals/${referralId}/appointments`, practice.therapist.token, { startsAt: new Date(Date.now() + 48 * 3_600_000).toISOString(), minutes: 60 });
  ownerOf.set(appointment.id, referralId);
  addToPool('appointments', appointment.id);
  // Urgent news (SPEC §14.10): an urgent message of each side to acknowledge, and a mild adverse event.
  for (const token of [practice.therapist.token, office.physician.token]) {
    const urgent = await post(`/v1/referrals/${referralId}/messages`, token, { body: 'Please call me today.', priority: 'urgent' });
    ownerOf.set(urgent.id, referralId);
    addToPool('urgentMessages', urgent.id);
  }
  const event = await post(`/v1/referrals/${referralId}/adverse-events`, practice.therapist.token, adverseEvent('mild', false));
  ownerOf.set(event.id, referralId);
  addToPool('adverseEvents', event.id);
}
const adverseEvent = (severity: string, treatmentPaused: boolean) => ({
  occurredOn: isoDay(0),
  description: 'Soreness over the lumbar paraspinals the day after treatment',
  severity,
  actionTaken: 'Lighter pressure next visit',
  treatmentPaused,
});
/** A referral sent to the practice's therapist and accepted, held by a severe adverse event that paused treatment: for the prescriber to resume. */
async function heldReferral(patientId: string) {
  const held = await create(office.physician.token, prescription(patientId, { therapistId: practice.therapist.id }));
  await post(`/v1/referrals/${held.id}/accept`, practice.therapist.token);
  await post(`/v1/referrals/${held.id}/adverse-events`, practice.therapist.token, adverseEvent('severe', true));
  addToPool('heldReferrals', held.id);
}
for (const referral of referrals.slice(0, 3)) await share(referral.id);
for (const patient of patients.slice(0, 2)) await heldReferral(patient.id);
for (const endpoint of endpoints) await post(`/v1/webhook-endpoints/${endpoint}/test`, endpoint === endpoints[0] ? office.admin.token : practice.admin.token);
const deliveries: string[] = [];
for (const [endpoint, token] of [[endpoints[0]!, office.admin.token], [endpoints[1]!, practice.admin.token]] as const) {
  const listed = await test.request({ method: 'GET', url: `/v1/webhook-endpoints/${endpoint}/deliveries`, token });
  deliveries.push(...(listed.json().data as Json[]).map((delivery) => delivery.id as string));
}

// The callers: each kind of principal, and nobody.
const signInResponse = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: office.staff.email, password: defaultPassword } });
const callers: Array<{ name: string; token: string | undefined; organizationId?: string }> = [
  { name: 'network admin', token: adminToken },
  { name: 'physician', token: office.physician.token, organizationId: office.id },
  { name: 'office staff', token: office.staff.token, organizationId: office.id },
  { name: 'office admin', token: office.admin.token, organizationId: office.id },
  { name: 'therapist', token: practice.therapist.token, organizationId: practice.id },
  { name: 'practice admin', token: practice.admin.token, organizationId: practice.id },
  { name: 'office API client', token: await clientToken(officeClient), organizationId: office.id },
  { name: 'practice API client', token: await clientToken(practiceClient), organizationId: practice.id },
  { name: 'no token', token: undefined },
];

addToPool('organizations', office.id, practice.id, otherOffice.id, otherPractice.id);
addToPool('practices', practice.id, otherPractice.id);
addToPool('therapists', practice.therapist.id, otherPractice.therapist.id, spareTherapist.id);
addToPool('physicians', office.physician.id, otherOffice.physician.id);
addToPool('people', office.physician.id, office.staff.id, office.admin.id, practice.therapist.id, practice.admin.id, otherPractice.therapist.id, officeClient.id);
addToPool('staffUsers', ...staffUsers);
addToPool('doomedClients', ...doomedClients.map((client) => client.id as string));
for (const client of doomedClients) ownerOf.set(client.id, client.organizationId);
addToPool('keyClients', ...keyClients.map((client) => client.id as string));
for (const client of keyClients) ownerOf.set(client.id, client.organizationId);
addToPool('jwkSets', ...jwkSets);
addToPool('patients', ...patients.map((patient) => patient.id as string), outsidePatient.id);
addToPool('referrals', ...referrals.map((referral) => referral.id as string));
addToPool('acceptedReferrals', ...referrals.slice(0, 3).map((referral) => referral.id as string));
addToPool('declinedReferrals', referrals[3]!.id);
addToPool('sentReferrals', referrals[4]!.id, referrals[5]!.id, referrals[8]!.id);
addToPool('draftReferrals', referrals[6]!.id, referrals[7]!.id);
addToPool('unsignedReferrals', ...unsignedDrafts);
addToPool('referrals', ...unsignedDrafts);
addToPool('reports', ...reports);
addToPool('clinicalReports', ...clinicalReports);
addToPool('renewalRequests', ...renewalRequests);
addToPool('messages', ...messages);
addToPool('endpoints', ...endpoints);
addToPool('doomedEndpoints', ...doomedEndpoints);
addToPool('deliveries', ...deliveries);
// The FHIR façade's ids (SPEC §16): a referral's Task has an id of its own, found as a client finds it (by focus); a visit's pain before is an Observation.
const fhirHeaders = { accept: 'application/fhir+json' };
async function taskOf(referralId: string) {
  // Found by its prescriber: the office's physician, or the other office's for the one referral it sent.
  for (const token of [office.physician.token, otherOffice.physician.token]) {
    const response = await test.request({ method: 'GET', url: `/fhir/R4/Task?focus=ServiceRequest/${referralId}`, token, headers: fhirHeaders });
    if (response.statusCode !== 200) throw new Error(`seeding the Task of ${referralId}: ${response.statusCode} ${response.body.slice(0, 300)}`);
    const task = response.json().entry?.[0]?.resource;
    if (task) return task.id as string;
  }
  throw new Error(`seeding the Task of ${referralId}: no prescriber finds it`);
}
for (const referral of referrals) addToPool('tasks', await taskOf(referral.id));
for (const referral of referrals.slice(0, 3)) addToPool('acceptedTasks', await taskOf(referral.id));
addToPool('observations', ...reports.map((report) => `${report}-pain-before`));
// The audit log: sequenced and signed (this app runs no sequencer), its first events pooled.
await test.app.auditSequencer.run({ wait: true });
const auditEventIds = (await test.app.database.rows<{ event_id: string | number }>(sql`select event_id from audit_log_leaves where leaf_index < 20 order by leaf_index`)).map((row) => String(row.event_id));
addToPool('auditEvents', ...auditEventIds);
// In step, entry by entry: an account and its password (the last is nobody's).
addToPool('emails', office.physician.email, office.staff.email, practice.therapist.email, adminEmail, 'nobody@fuzz.example');
addToPool('passwords', defaultPassword, defaultPassword, defaultPassword, adminPassword, 'wrong-password-123');
addToPool('refreshTokens', signInResponse.json().refresh_token, 'not-a-refresh-token');
// In step too: a client id and its secret (the third, a revoked client's, with a wrong one).
addToPool('clientIds', officeClient.clientId, practiceClient.clientId, doomedClients[0]!.clientId);
addToPool('clientSecrets', officeClient.clientSecret, practiceClient.clientSecret, 'cs_wrong');
addToPool('identifiers', 'urn:fuzz:mrn|MRN-1', 'urn:fuzz:mrn|MRN-404');
addToPool('etags', '"1"', '"2"');
addToPool('cursors', 'not-a-cursor');

/** Grows the pools from answers, so later requests find what earlier ones made (and real cursors). */
function harvest(operationId: string, status: number, body: string) {
  if (status >= 300 || !body.startsWith('{')) return;
  let value: Json;
  try {
    value = JSON.parse(body);
  } catch {
    return;
  }
  for (const cursor of [value.nextCursor, value.syncCursor]) if (typeof cursor === 'string' && (pools.cursors?.length ?? 0) < 200) addToPool('cursors', cursor);
  if (typeof value.version === 'number' && (pools.etags?.length ?? 0) < 50) addToPool('etags', `"${value.version}"`);
  if (typeof value.id !== 'string' || status !== 201) return;
  const grows: Record<string, string> = {
    createReferral: 'referrals',
    createPatient: 'patients',
    createProgressReport: 'reports',
    createReport: 'clinicalReports',
    requestRenewal: 'renewalRequests',
    createMessage: 'messages',
    uploadDocument: 'documents',
    createAppointment: 'appointments',
    reportAdverseEvent: 'adverseEvents',
    createOrganization: 'organizations',
    createUser: 'staffUsers',
    createApiClient: 'doomedClients',
    createWebhookEndpoint: 'doomedEndpoints',
    fhirCreateServiceRequest: 'referrals',
    fhirCreateCommunication: 'messages',
  };
  const pool = grows[operationId];
  if (pool && (pools[pool]?.length ?? 0) < 100) addToPool(pool, value.id);
  // An urgent message waits for the other side's acknowledgement; a severe event that paused treatment holds its referral.
  if (operationId === 'createMessage' && value.priority === 'urgent' && (pools.urgentMessages?.length ?? 0) < 100) addToPool('urgentMessages', value.id);
  if (operationId === 'reportAdverseEvent' && value.severity === 'severe' && value.treatmentPaused === true && typeof value.referralId === 'string') addToPool('heldReferrals', value.referralId);
  const owner = value.organizationId ?? value.referralId;
  if (typeof owner === 'string') ownerOf.set(value.id, owner);
}

// ---------------------------------------------------------------------------------------------
// Which callers each operation is for: one request per operation and caller, whose 401/403 (given
// before any validation) says who is turned away at the door. Later requests go mostly to callers
// that get past it, so that they reach deeper; the rest still knock on the wrong door.

interface Outcome {
  operationId: string;
  caller: string;
  method: string;
  url: string;
  requestHeaders: Record<string, string>;
  requestBody: string;
  status: number;
  body: string;
  violations: Violation[];
  ms: number;
}
const outcomes: Outcome[] = [];
const statusCounts = new Map<number, number>();
let harnessErrors = 0;
const harnessErrorSamples: string[] = [];

async function send(operation: Operation, template: RequestTemplate): Promise<Outcome | undefined> {
  const caller = callers[template.caller % callers.length]!;
  const resolvedPath = Object.fromEntries(
    Object.entries(template.pathValues).map(([name, value]) => [
      name,
      value instanceof PairRef ? value : value instanceof CallerOrganizationRef ? (caller.organizationId ?? resolveValue(new PoolRef('organizations', template.caller))) : resolveValue(value),
    ]),
  );
  for (const [name, value] of Object.entries(resolvedPath)) {
    if (value instanceof PairRef) resolvedPath[name] = ownerOf.get(String(resolvedPath[value.child])) ?? randomUUID();
  }
  let url = operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const text = toText(resolvedPath[name]);
    return garbageSegments.includes(text) ? text : encodeURIComponent(text);
  });
  const query = template.query.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(toText(resolveValue(value)))}`);
  if (query.length > 0) url += `?${query.join('&')}`;
  const headers: Record<string, string> = {};
  if (caller.token) headers.authorization = `Bearer ${caller.token}`;
  else if (template.authVariant === 1) headers.authorization = 'Bearer not.a.jwt';
  else if (template.authVariant === 2) headers.authorization = 'Basic Zm9vOmJhcg==';
  for (const [name, value] of Object.entries(template.headers)) if (value !== null && value !== undefined) headers[name] = toText(resolveValue(value));
  let payload: string | Buffer | undefined;
  let described: string | undefined;
  if (template.body.kind === 'multipart') {
    const form = multipartOf(template.body.parts, template.body.damage);
    payload = form.payload;
    headers['content-type'] = form.contentType;
    described = form.described;
  } else if (template.body.kind === 'json') {
    const value = resolveValue(template.body.value);
    if (value !== undefined) {
      payload = JSON.stringify(value);
      headers['content-type'] = 'application/json';
    }
  } else if (template.body.kind === 'fhir') {
    // The Task to update is read first, as a client does before writing it back.
    const value = template.body.value instanceof AsReadRef ? await readBeforeWriting(template.body.value, resolvedPath, caller.token) : resolveValue(template.body.value);
    payload = JSON.stringify(value);
    headers['content-type'] = 'application/fhir+json';
    headers.accept = 'application/fhir+json';
  } else if (template.body.kind === 'raw') {
    payload = template.body.text;
    headers['content-type'] = template.body.contentType;
  } else if (template.body.kind === 'form') {
    payload = new URLSearchParams(Object.entries(resolveValue(template.body.value) as Json).map(([key, value]) => [key, toText(value)])).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const sentAt = performance.now();
  try {
    const response = await test.app.inject({ method: operation.method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) });
    const outcome: Outcome = {
      operationId: operation.operationId,
      caller: caller.name,
      method: operation.method,
      url,
      requestHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, name === 'authorization' ? `${value.slice(0, 12)}…` : value])),
      requestBody: described ?? (typeof payload === 'string' ? payload : ''),
      status: response.statusCode,
      body: response.body,
      violations: contract.check(operation.method, url, response.statusCode, response.headers, response.body),
      ms: performance.now() - sentAt,
    };
    if (process.env.FUZZ_PROGRESS && outcomes.length % 250 === 0) console.error(`${outcomes.length} requests, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    statusCounts.set(response.statusCode, (statusCounts.get(response.statusCode) ?? 0) + 1);
    harvest(operation.operationId, response.statusCode, response.body);
    if (process.env.FUZZ_PEEK === operation.operationId) console.error(`${caller.name} ${outcome.method} ${url} ${outcome.requestBody} → ${outcome.status} ${response.body.slice(0, 300)}`);
    outcomes.push(outcome.status >= 500 || outcome.violations.length > 0 ? outcome : { ...outcome, body: '', requestBody: '' });
    return outcome;
  } catch (error) {
    harnessErrors++;
    if (harnessErrorSamples.length < 5) harnessErrorSamples.push(`${operation.operationId} ${url}: ${(error as Error).message}`);
    return undefined;
  }
}

/** The resource a path parameter names, as the caller reads it (not counted: the read is the client's preparation, not a generated request). */
async function readBeforeWriting(asRead: AsReadRef, resolvedPath: Record<string, unknown>, token: string | undefined): Promise<Json> {
  const id = String(resolvedPath[asRead.parameter]);
  const response = await test.app.inject({ method: 'GET', url: `/fhir/R4/${asRead.type}/${encodeURIComponent(id)}`, headers: { ...fhirHeaders, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  return response.statusCode === 200 ? response.json() : { resourceType: asRead.type, id };
}

/** A file of the kind, built when the request is sent (its padding is random bytes, its type in its first bytes). */
function fileOf(kind: FileKind, padding: number): Buffer {
  if (kind === 'empty') return Buffer.alloc(0);
  if (kind === 'gif' || kind === 'text') return sampleFile[kind]();
  return sampleFile[kind](padding);
}
/** The body of a generated form, its media type, and a description of it for the report. */
function multipartOf(parts: MultipartPart[], damage: string): { payload: Buffer; contentType: string; described: string } {
  const built: Part[] = parts.map((part) =>
    'file' in part ? { name: part.name, filename: part.filename, contentType: part.contentType, data: fileOf(part.file, part.padding) } : { name: part.name, value: toText(resolveValue(part.value)) },
  );
  const form = multipartBody(built);
  const described = `multipart (${damage}): ${parts.map((part) => ('file' in part ? `${part.name}=<${part.file}, ${part.padding} B>` : `${part.name}=${toText(part.value).slice(0, 60)}`)).join(' ')}`;
  if (damage === 'no-boundary') return { payload: form.payload, contentType: 'multipart/form-data', described };
  if (damage === 'truncated') return { payload: form.payload.subarray(0, Math.floor(form.payload.length / 2)), contentType: form.contentType, described };
  if (damage === 'wrong-boundary') return { payload: form.payload, contentType: 'multipart/form-data; boundary=not-the-boundary', described };
  return { ...form, described };
}

const operationObjectOf = (operation: Operation) => document.paths[operation.path][operation.method.toLowerCase()] as Json;
const started = performance.now();

const admitted = new Map<string, number[]>();
for (const operation of contract.operations) {
  const template = fc.sample(operationArb(operation, operationObjectOf(operation), resolve, fc.constant(0)), { seed, numRuns: 1 })[0]!;
  const allowed: number[] = [];
  for (let caller = 0; caller < callers.length; caller++) {
    // Probed with real ids, so the answer is the door's and not a 404 of a garbage id.
    const probe = { ...template, caller, pathValues: Object.fromEntries(Object.keys(template.pathValues).map((name) => [name, new PoolRef(pathPool(operation, name), 0)])) };
    const outcome = await send(operation, probe);
    if (outcome && outcome.status !== 401 && outcome.status !== 403) allowed.push(caller);
  }
  admitted.set(operation.operationId, allowed);
}

// The generated requests, interleaved across operations as a client population would send them.
// Operations that take more input get more requests: a body counts thrice, parameters twice, nothing
// once. Those that are slow on purpose — a scrypt hash per password, client secret or sign-in, a walk
// of the whole audit chain — get a third as many: each costs as much as dozens of others, and their
// inputs are covered long before their share would run out.
const deliberatelySlow = new Set(['issueToken', 'createUser', 'createApiClient', 'verifyAuditLog']);
const weightOf = (operation: Operation) => {
  const operationObject = operationObjectOf(operation);
  const weight = operationObject.requestBody ? 3 : (operationObject.parameters ?? []).length > 0 ? 2 : 1;
  return deliberatelySlow.has(operation.operationId) ? weight / 3 : weight;
};
const totalWeight = contract.operations.reduce((sum, operation) => sum + weightOf(operation), 0);
const budget = Math.max(0, requested - outcomes.length);

/** The callers an operation is for by the rules of the domain (SPEC §3–§8), beyond who merely gets past the door. */
const preferredCallers: Record<string, string[]> = {};
const prefer = (names: string[], ...operationIds: string[]) => operationIds.forEach((operationId) => (preferredCallers[operationId] = names));
prefer(['network admin'], 'createOrganization', 'verifyAuditLog', 'getAuditEvent', 'getAuditInclusionProof');
prefer(['network admin', 'office admin', 'practice admin'], 'getLatestAuditCheckpoint', 'listAuditCheckpoints', 'getAuditPublicKey', 'getAuditConsistencyProof');
prefer(['network admin', 'office admin', 'practice admin'], 'createUser', 'updateUser', 'createApiClient', 'listApiClients', 'revokeApiClient', 'listAuditEvents', 'exportAuditEvents', 'listPatientViewers');
prefer(['office admin', 'practice admin', 'network admin'], 'createWebhookEndpoint', 'listWebhookEndpoints', 'getWebhookEndpoint', 'updateWebhookEndpoint', 'deleteWebhookEndpoint', 'rotateWebhookSecret', 'pingWebhookEndpoint', 'listWebhookDeliveries', 'resendWebhookDelivery', 'recoverWebhookDeliveries');
prefer(['physician', 'office staff', 'office API client'], 'createPatient', 'listPatients', 'getPatient', 'createReferral', 'amendReferral', 'sendReferral', 'cancelReferral', 'rerouteReferral');
prefer(['physician', 'office API client'], 'signReferral', 'signReport', 'approveRenewal', 'denyRenewal', 'resumeReferral');
prefer(['therapist', 'practice admin', 'practice API client'], 'acceptReferral', 'declineReferral');
prefer(['therapist'], 'createProgressReport', 'addProgressReportAddendum', 'createReport', 'requestRenewal');
// SPEC §14.5, §14.6: the care team (the office, the accepting therapist and practice) shares documents; the therapist side books visits.
prefer(['physician', 'office staff', 'therapist', 'office API client', 'practice API client'], 'uploadDocument', 'retractDocument', 'getDocument', 'getDocumentContent', 'listDocuments');
prefer(['therapist', 'practice admin', 'practice API client'], 'createAppointment', 'updateAppointment', 'reportAdverseEvent');
// SPEC §14.10: each side acknowledges the other's urgent messages; the office acknowledges adverse events.
prefer(['physician', 'office staff', 'therapist', 'office API client', 'practice API client'], 'acknowledgeMessage');
prefer(['physician', 'office staff', 'office API client'], 'acknowledgeAdverseEvent');
prefer(['office admin', 'practice admin', 'network admin'], 'replaceApiClientKeys');
// SPEC §16: the FHIR façade, as an EHR of the office or an app of the practice uses it.
prefer(['physician', 'office API client'], 'fhirCreateServiceRequest');
prefer(['physician', 'therapist', 'office API client', 'practice API client'], 'fhirUpdateTask', 'fhirCreateCommunication');

const queue: Array<{ operation: Operation; template: RequestTemplate }> = [];
contract.operations.forEach((operation, operationIndex) => {
  const allowed = admitted.get(operation.operationId)!;
  const preferred = (preferredCallers[operation.operationId] ?? []).map((name) => callers.findIndex((caller) => caller.name === name)).filter((index) => allowed.includes(index));
  const anyone = fc.nat({ max: callers.length - 1 });
  const callerArb = fc.oneof(
    ...(preferred.length > 0 ? [{ weight: 6, arbitrary: fc.constantFrom(...preferred) }] : []),
    ...(allowed.length > 0 ? [{ weight: preferred.length > 0 ? 3 : 8, arbitrary: fc.constantFrom(...allowed) }] : []),
    { weight: 2, arbitrary: anyone },
  );
  // Still a few dozen for every operation in a short run, so that each gets its valid requests in.
  const count = Math.max(40, Math.ceil((budget * weightOf(operation)) / totalWeight));
  const wellFormedCaller = preferred.length > 0 ? fc.constantFrom(...preferred) : allowed.length > 0 ? fc.constantFrom(...allowed) : anyone;
  const templates = fc.sample(operationArb(operation, operationObjectOf(operation), resolve, callerArb, wellFormedCaller), { seed: seed + operationIndex + 1, numRuns: count });
  for (const template of templates) queue.push({ operation, template });
});
// A fixed shuffle (by the seed), so operations interleave and state changes meet other operations.
let state = seed >>> 0 || 1;
for (let index = queue.length - 1; index > 0; index--) {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  const other = state % (index + 1);
  [queue[index], queue[other]] = [queue[other]!, queue[index]!];
}
/**
 * The fuzzer's own moves use referrals up (cancelled, completed, declined); every so often the
 * seeded office sends a few more, one accepted and one declined, so that the moves and visit notes
 * keep finding referrals in every state. These are seeding, not generated requests: not counted.
 */
let replenished = 0;
async function replenish() {
  const patient = patients[replenished % patients.length]!.id;
  const fresh = [
    await create(office.physician.token, prescription(patient, { practiceId: practice.id })),
    await create(office.physician.token, prescription(patient, { therapistId: practice.therapist.id })),
    await create(office.physician.token, prescription(patient, { therapistId: practice.therapist.id })),
    await create(office.physician.token, prescription(patient, { network: { near: { lat: 45.5231, lng: -122.6765 }, radiusKm: 30 } })),
    await create(office.physician.token, prescription(patient, { therapistId: practice.therapist.id })),
  ];
  const draft = await create(office.physician.token, prescription(patient, { practiceId: practice.id }, false));
  await post(`/v1/referrals/${fresh[1]!.id}/accept`, practice.therapist.token);
  await post(`/v1/referrals/${fresh[2]!.id}/decline`, practice.therapist.token, { reason: 'Full this month' });
  const { report, renewal } = await treat(fresh[1]!.id);
  addToPool('clinicalReports', report);
  addToPool('renewalRequests', renewal);
  await share(fresh[1]!.id);
  await heldReferral(patient);
  addToPool('referrals', ...fresh.map((referral) => referral.id as string), draft.id);
  addToPool('sentReferrals', fresh[0]!.id, fresh[3]!.id, fresh[4]!.id);
  addToPool('acceptedReferrals', fresh[1]!.id);
  addToPool('declinedReferrals', fresh[2]!.id);
  for (const referral of fresh) addToPool('tasks', await taskOf(referral.id));
  addToPool('acceptedTasks', await taskOf(fresh[1]!.id));
  addToPool('draftReferrals', draft.id);
  const unsigned = await unsignedDraft(patient);
  addToPool('unsignedReferrals', unsigned);
  addToPool('referrals', unsigned);
  replenished++;
}

let next = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < queue.length) {
      if (next % 250 === 0 && next / 250 >= replenished) await replenish();
      const { operation, template } = queue[next++]!;
      await send(operation, template);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;

// The principals must still be who they were, or the later requests tested nothing but 401s.
const stillSignedIn: string[] = [];
for (const caller of callers.filter((each) => each.token)) {
  const response = await test.app.inject({ method: 'GET', url: '/v1/me', headers: { authorization: `Bearer ${caller.token}` } });
  if (response.statusCode !== 200) stillSignedIn.push(`${caller.name}: ${response.statusCode}`);
}

// ---------------------------------------------------------------------------------------------
// The verdict.

const n = outcomes.length;
const failures5xx = outcomes.filter((outcome) => outcome.status >= 500);
const broken = outcomes.filter((outcome) => outcome.violations.length > 0);
const operationsHit = new Set(outcomes.map((outcome) => outcome.operationId));
const deep = outcomes.filter((outcome) => outcome.status < 400).length;
const byOperation = new Map<string, { total: number; success: number }>();
for (const outcome of outcomes) {
  const entry = byOperation.get(outcome.operationId) ?? { total: 0, success: 0 };
  entry.total++;
  if (outcome.status < 400) entry.success++;
  byOperation.set(outcome.operationId, entry);
}
const neverSucceeded = [...byOperation.entries()].filter(([, entry]) => entry.success === 0).map(([operationId]) => operationId);

const describeOutcome = (outcome: Outcome) =>
  [
    `${outcome.operationId} as ${outcome.caller}: ${outcome.method} ${outcome.url}`,
    `  request headers: ${JSON.stringify(outcome.requestHeaders)}`,
    `  request body: ${outcome.requestBody.slice(0, 600)}`,
    `  → ${outcome.status} ${outcome.body.slice(0, 600)}`,
    ...outcome.violations.slice(0, 8).map((violation) => `  ✗ ${violation.message}`),
  ].join('\n');

t.comment(`seed ${seed}: ${n} requests over ${operationsHit.size} operations as ${callers.length} callers in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)}/s, concurrency ${concurrency})`);
t.comment(`statuses: ${[...statusCounts.entries()].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(' ')}`);
const timeByOperation = new Map<string, number>();
for (const outcome of outcomes) timeByOperation.set(outcome.operationId, (timeByOperation.get(outcome.operationId) ?? 0) + outcome.ms);
t.comment(`time by operation: ${[...timeByOperation.entries()].sort(([, a], [, b]) => b - a).slice(0, 8).map(([operationId, ms]) => `${operationId} ${(ms / 1000).toFixed(1)} s/${byOperation.get(operationId)?.total}`).join('; ')}`);
const slowest = [...outcomes].sort((a, b) => b.ms - a.ms).slice(0, 5);
t.comment(`slowest: ${slowest.map((outcome) => `${outcome.operationId} ${outcome.status} ${outcome.ms.toFixed(0)} ms`).join('; ')}`);
t.comment(`${deep} requests answered below 400; operations that never did: ${neverSucceeded.join(', ') || 'none'}`);
for (const outcome of [...failures5xx, ...broken.filter((each) => each.status < 500)].slice(0, 5)) t.comment(describeOutcome(outcome));

t.test('the fuzzer did what it says', async (t) => {
  t.ok(n >= requested, `${n} requests sent (asked for ${requested})`);
  t.equal(operationsHit.size, contract.operations.length, `every one of the ${contract.operations.length} operations was called`);
  t.equal(harnessErrors, 0, 'every request could be made', { samples: harnessErrorSamples });
  t.same(stillSignedIn, [], 'every caller was still signed in at the end');
  t.same(neverSucceeded, [], 'every operation answered below 400 at least once, so valid requests got through');
});

/**
 * Defects this fuzzer found in src, reported rather than fixed here: their answers still count in
 * the figure, and each gets a check of its own marked todo until src is fixed; anything else that
 * breaks fails the test. None is open: the one it found — a path the router refuses (a malformed
 * percent-encoding such as /v1/referrals/%zz, or a path parameter over 100 characters) answered
 * with Fastify's own application/json error instead of problem details, 97 answers in 10,042 with
 * seed 9009 — is fixed by src/plugins/problem-details.ts (frameworkErrorHandler).
 */
const knownDefects: Array<{ description: string; matches: (outcome: Outcome) => boolean }> = [];
const explainedBy = (outcome: Outcome) => knownDefects.find((defect) => defect.matches(outcome));

t.test('no generated request gets a 5xx', async (t) => {
  const unexplained = failures5xx.filter((outcome) => !explainedBy(outcome));
  t.equal(unexplained.length, 0, `${unexplained.length} answers with status 5xx`, { first: unexplained.slice(0, 5).map(describeOutcome) });
});

t.test('every answer keeps its declared schema', async (t) => {
  const unexplained = broken.filter((outcome) => !explainedBy(outcome));
  t.equal(unexplained.length, 0, `${unexplained.length} answers break the contract in ways not yet reported`, { first: unexplained.slice(0, 5).map(describeOutcome) });
  for (const defect of knownDefects) {
    const found = outcomes.filter((outcome) => (outcome.status >= 500 || outcome.violations.length > 0) && defect.matches(outcome));
    t.equal(found.length, 0, `${found.length} answers: ${defect.description}`, { todo: defect.description, first: found.slice(0, 3).map(describeOutcome) });
  }
});

recordFigure({
  item: 9,
  check: 'OpenAPI fuzzing',
  figure: `${n} generated requests over ${operationsHit.size} operations as ${callers.length} callers: ${failures5xx.length} 5xx, ${broken.length} schema breaks`,
  pass: n >= 10_000 && failures5xx.length === 0 && broken.length === 0,
});
