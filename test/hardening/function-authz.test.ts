// Hardening item 6, function-level authorization: every route of the app, called by every kind of
// caller, against the policy the route declares (src/modules/auth/policy.ts). The callers are a
// network admin, every user role of an office and of a practice, and partner API clients of both
// with every scope and with one scope only (an API client needs at least one). A combination the
// policy forbids must answer 403, be audited as denied and change nothing; it is called on the
// caller's own records, so that nothing but the role can be what refuses it. A combination the
// policy admits must never answer 401 or 403. The routes that answer without a token are exactly
// health, the OpenAPI document and its browser, the token endpoint, and the FHIR façade's
// CapabilityStatement (/fhir/R4/metadata) and SMART configuration, which a FHIR client reads before
// it signs in. The FHIR façade's routes are called on the same records by their FHIR ids, and
// refuse with an OperationOutcome (application/fhir+json) rather than problem+json.
//
// What only the prescriber orders (SPEC §14.1: signing, and amending; §14.3, §14.4: signing a
// report, deciding a renewal) is admitted for physicians and for API clients with referrals:sign
// whatever role they act as (clientsByScopeAlone), which isAllowed knows; there an office's callers
// aim at a record of which the office's physician is the prescriber (the shared referral for
// amending, an unsigned draft of their own for signing, a report of their own to sign, a pending
// renewal request of their own to approve or deny), so that an admitted call goes through and a
// wrongly admitted one would.
//
// Documents (SPEC §14.6) are uploaded as multipart/form-data, so that a call admitted by the policy
// stores a file and a wrongly admitted one would; each caller retracts a document its own
// organization uploaded (another organization's is 403 by the record, which is not this file's
// question). Appointments (SPEC §14.5) are booked on the shared referral, and each caller records
// what became of one of its own; the events feed (SPEC §14.7) takes no parameter. Of urgent news
// (SPEC §14.10), each caller acknowledges an urgent message of the other side and an adverse event
// of its own (the office acknowledges; the therapist side's answer is a 409, not a refusal of the
// role), and resumes a referral of its own that a severe adverse event holds.
//
// The routes are collected as they are registered, the way route-policy.test.ts does, so a route
// added later is called here too; a path parameter this file cannot fill fails the test.
import { randomBytes } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import t from 'tap';
import { rowsOf } from '../../src/db/database.js';
import { auditEvents as auditTable, type UserRole } from '../../src/db/schema.js';
import { isAllowed, organizationAdmins, officeRoles, type ApiClientScope, type RoutePolicy } from '../../src/modules/auth/policy.js';
import { documentForm, sampleFile } from '../fixtures/documents.js';
import { whiplashServiceRequest } from '../fixtures/fhir-bodies.js';
import { addApiClient } from '../fixtures/network.js';
import { jwksOf, signingKey } from '../fixtures/smart.js';
import { referralBody as fixtureReferralBody, visitNoteBody } from '../fixtures/referral-bodies.js';
import { createOffice, createPractice, nextNpi, type Json, type TestApp } from '../helper.js';
import { decodeJwt, signJwt } from '../tokens.js';
import { buildTestAppWithRoutes, caller, everyScope, everyScopeButSign, type Caller, type CollectedRoute, type Method } from './authz-shared.js';
import { evaluationReportBody, progressReportBody, renewalRequestBody } from './clinical-bodies.js';
import { recordFigure } from './figures.js';
import { skipFileUnlessPostgres } from './postgres-only.js';

skipFileUnlessPostgres();

type Response = Awaited<ReturnType<TestApp['request']>>;

// ─── The app and its routes ─────────────────────────────────────────────────────────────────────

// ROLE=api: no webhook worker, so the deliveries and pings this file queues never leave the process.
const { test, routes: collected } = await buildTestAppWithRoutes(t, { env: { ROLE: 'api' } });
const routes = [...new Map(collected.map((route) => [`${route.method} ${route.url}`, route])).values()];
const isPublic = (route: CollectedRoute) => route.policy === undefined || route.policy === 'public';
const protectedRoutes = routes.filter((route) => !isPublic(route));

// ─── Callers, each in an organization with records of its own ──────────────────────────────────

const networkAdminToken = await test.loginAsAdmin();
const [office, practice] = await Promise.all([createOffice(test, networkAdminToken), createPractice(test, networkAdminToken)]);

const victimClient = (organizationId: string, adminToken: string) =>
  test.create(`/v1/organizations/${organizationId}/api-clients`, adminToken, { name: `victim ${randomBytes(3).toString('hex')}`, scopes: ['directory:read'] });
// PATCH …/api-clients/{apiClientId} replaces the keys of a private_key_jwt client: these, signing with a key set.
const [clientKey, rotatedKey] = await Promise.all([signingKey('ES384'), signingKey('RS384')]);
const keyedClient = (organizationId: string, adminToken: string) =>
  test.create(`/v1/organizations/${organizationId}/api-clients`, adminToken, {
    name: `keyed ${randomBytes(3).toString('hex')}`,
    scopes: ['directory:read'],
    authMethod: 'private_key_jwt',
    jwks: jwksOf(clientKey),
  });
const [keyedOfNetworkAdmin, keyedOfOffice, keyedOfPractice] = await Promise.all([
  keyedClient(office.id, office.admin.token),
  keyedClient(office.id, office.admin.token),
  keyedClient(practice.id, practice.admin.token),
]);
const [officeClient, practiceClient, officeUnsigningClient, officeDirectoryClient, practiceReadClient, victimOfNetworkAdmin, victimOfOffice, victimOfPractice] = await Promise.all([
  addApiClient(test, office.admin.token, office.id, everyScope),
  addApiClient(test, practice.admin.token, practice.id, everyScope),
  // An EHR that reads and writes referrals but does not vouch for its prescribers (SPEC §14.1).
  addApiClient(test, office.admin.token, office.id, everyScopeButSign),
  addApiClient(test, office.admin.token, office.id, ['directory:read']),
  addApiClient(test, practice.admin.token, practice.id, ['referrals:read']),
  // DELETE …/api-clients/{apiClientId} is aimed at these, never at a caller's own credentials.
  victimClient(office.id, office.admin.token),
  victimClient(office.id, office.admin.token),
  victimClient(practice.id, practice.admin.token),
]);

const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdminToken })).json().id;
const callers: Caller[] = [
  caller('network_admin', { id: networkAdminId, token: networkAdminToken }),
  caller('physician', office.physician),
  caller('office_staff', office.staff),
  caller('office_admin', office.admin),
  caller('therapist', practice.therapist),
  caller('practice_admin', practice.admin),
  caller('office API client (every scope)', officeClient!),
  caller('practice API client (every scope)', practiceClient!),
  caller('office API client (every scope but referrals:sign)', officeUnsigningClient!),
  caller('office API client (directory:read only)', officeDirectoryClient!),
  caller('practice API client (referrals:read only)', practiceReadClient!),
  // The API refuses to create a client without a scope (minItems 1), so this token is signed here,
  // with the claims the service gives that client and the scope emptied.
  caller('office API client (no scope)', { id: officeDirectoryClient!.id, token: signJwt({ ...decodeJwt(officeDirectoryClient!.token).payload, scope: '' }) }),
];
const isOffice = (c: Caller) => c.principal.organizationKind === 'physician_office';
const isPractice = (c: Caller) => c.principal.organizationKind === 'therapy_practice';

// ─── Their records ──────────────────────────────────────────────────────────────────────────────

async function ok(response: Response, status: number, what: string): Promise<Json> {
  if (response.statusCode !== status) throw new Error(`${what} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}
// The fixture's order without its inline patient: each referral here says whose it is.
const { patient: _inlinePatient, ...order } = fixtureReferralBody();
const referralBody = (overrides: Json = {}) => ({ ...order, ...overrides });
const visitNote = visitNoteBody({ subjective: 'Pain 6/10', assessment: 'Improving', painBefore: 6 });
const endpoint = (token: string, description: string) =>
  test.create('/v1/webhook-endpoints', token, { url: 'https://ehr.example/hooks/massage', eventTypes: ['referral.sent', 'referral.accepted', 'message.created'], description });

// Registered before the referral is sent, so that sending it queues a delivery to each.
const [officeEndpoint, practiceEndpoint, officeVictimEndpoint, practiceVictimEndpoint, networkAdminVictimEndpoint] = await Promise.all([
  endpoint(office.admin.token, 'office EHR'),
  endpoint(practice.admin.token, 'practice EHR'),
  endpoint(office.admin.token, 'office victim'),
  endpoint(practice.admin.token, 'practice victim'),
  endpoint(office.admin.token, 'victim of the network admin'),
]);
// The referral every caller but the network admin takes part in: office → the practice's therapist.
const referral = await test.create(
  '/v1/referrals',
  office.physician.token,
  referralBody({ patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' }, therapistId: practice.therapist.id, send: true }),
);
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token }), 200, 'accept');
const report = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNote);
const messageRead = await test.create(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'How did the first session go?' });
// The shared referral's Task, as the FHIR façade names it (PUT /fhir/R4/Task/{id} takes it back unchanged).
const taskBundle = await ok(
  await test.request({ method: 'GET', url: `/fhir/R4/Task?focus=ServiceRequest/${referral.id}`, token: office.physician.token, headers: { accept: 'application/fhir+json' } }),
  200,
  'read the Task',
);
const taskRead = (taskBundle.entry as Json[] | undefined)?.[0]?.resource as Json | undefined;
if (!taskRead?.id) throw new Error(`no Task of the shared referral: ${JSON.stringify(taskBundle)}`);
const task: Json = taskRead;
const taskId: string = task.id;
const deliveryOf = async (endpointId: string, token: string) =>
  ((await ok(await test.request({ method: 'GET', url: `/v1/webhook-endpoints/${endpointId}/deliveries`, token }), 200, 'deliveries')).data as Json[])[0]!.id as string;
const officeDelivery = await deliveryOf(officeEndpoint.id, office.admin.token);
const practiceDelivery = await deliveryOf(practiceEndpoint.id, practice.admin.token);
// An audit event of each side's own people, sequenced and in a signed checkpoint, for
// /v1/audit-events/:id and its proof (this app runs no sequencer of its own).
await test.app.auditSequencer.run({ wait: true });
const auditEventOf = async (organizationId: string) =>
  String(
    rowsOf<{ id: string | number }>(
      await test.app.db.execute(sql`
        select e.id from audit_events e join audit_log_leaves l on l.event_id = e.id
        where e.actor_organization_id = ${organizationId} and e.patient_id is null order by e.id limit 1`),
    )[0]!.id,
  );
const officeAuditEvent = await auditEventOf(office.id);
const practiceAuditEvent = await auditEventOf(practice.id);
// What each caller signs: a draft the office staff prepared in the physician's name, unsigned (SPEC
// §14.1), one per caller, as a referral is signed once. The practice side sees no draft of the
// office; it aims at the referral it takes part in.
const unsignedDrafts = new Map<string, string>();
for (const c of callers.filter((candidate) => !isPractice(candidate))) {
  const draft = await test.create('/v1/referrals', office.staff.token, referralBody({ patientId: referral.patientId, prescriberId: office.physician.id, therapistId: practice.therapist.id }));
  if (draft.signature !== null || draft.status !== 'draft') throw new Error(`the draft to sign is not an unsigned draft: ${JSON.stringify(draft.signature)} ${draft.status}`);
  unsignedDrafts.set(c.label, draft.id);
}

// Reports to the prescriber and renewals (SPEC §14.3, §14.4). A renewal request of the shared
// referral, already denied, for reading: with none pending, the therapist's own request goes through.
const renewalRead = await test.create(`/v1/referrals/${referral.id}/renewal-requests`, practice.therapist.token, renewalRequestBody());
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/renewal-requests/${renewalRead.id}/deny`, token: office.physician.token, payload: { reason: 'Re-evaluate first' } }), 200, 'deny');
const reportRead = await test.create(`/v1/referrals/${referral.id}/reports`, practice.therapist.token, evaluationReportBody());
// What each caller signs, approves or denies, as each is done once: a report of the shared referral,
// and a pending renewal request of a referral of its own (one is pending at a time per referral).
// The practice side aims at them too: it takes part in those referrals, but does not prescribe them.
const reportsToSign = new Map<string, string>();
const renewalsToDecide = { approve: new Map<string, { referralId: string; requestId: string }>(), deny: new Map<string, { referralId: string; requestId: string }>() };
for (const c of callers) {
  reportsToSign.set(c.label, (await test.create(`/v1/referrals/${referral.id}/reports`, practice.therapist.token, progressReportBody())).id);
  for (const decisions of [renewalsToDecide.approve, renewalsToDecide.deny]) {
    const own = await test.create('/v1/referrals', office.physician.token, referralBody({ patientId: referral.patientId, therapistId: practice.therapist.id, send: true }));
    await ok(await test.request({ method: 'POST', url: `/v1/referrals/${own.id}/accept`, token: practice.therapist.token }), 200, 'accept');
    decisions.set(c.label, { referralId: own.id, requestId: (await test.create(`/v1/referrals/${own.id}/renewal-requests`, practice.therapist.token, renewalRequestBody())).id });
  }
}
// Documents and appointments (SPEC §14.5, §14.6) of the shared referral, whose care team every caller
// but the network admin is on: a document to read; one per caller to retract, uploaded by its own
// side (only the uploading organization retracts, SPEC §14.6); and an appointment per caller,
// booked by the therapist, whose outcome the caller records.
/** A file uploaded to the shared referral as multipart/form-data; its metadata. */
async function upload(token: string, title: string): Promise<Json> {
  const form = documentForm(sampleFile.pdf(), { title });
  return ok(
    await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token, headers: { 'content-type': form.contentType }, payload: form.payload }),
    201,
    'upload',
  );
}
const documentRead = await upload(office.physician.token, 'Lumbar MRI report');
const documentsToRetract = new Map<string, string>();
const appointmentsToChange = new Map<string, string>();
const inTwoDays = () => new Date(Date.now() + 48 * 3_600_000).toISOString();
for (const c of callers) {
  documentsToRetract.set(c.label, (await upload(isPractice(c) ? practice.therapist.token : office.physician.token, `To retract (${c.label})`)).id);
  appointmentsToChange.set(c.label, (await test.create(`/v1/referrals/${referral.id}/appointments`, practice.therapist.token, { startsAt: inTwoDays(), minutes: 60 })).id);
}

// Urgent news (SPEC §14.10) of the shared referral: an adverse event to read and, per caller, an
// urgent message of the other side to acknowledge (the therapist's for the office and the network
// admin, the physician's for the practice) and an adverse event, mild, which the office acknowledges.
// And per caller a referral of the office's on hold after a severe adverse event, to resume.
const today = () => new Date().toISOString().slice(0, 10);
const adverseEventBody = (overrides: Json = {}) => ({
  occurredOn: today(),
  description: 'Mild soreness over the lumbar paraspinals the day after treatment',
  severity: 'mild',
  actionTaken: 'Lighter pressure next visit',
  treatmentPaused: false,
  ...overrides,
});
const adverseEventRead = await test.create(`/v1/referrals/${referral.id}/adverse-events`, practice.therapist.token, adverseEventBody());
const urgentToAcknowledge = new Map<string, string>();
const adverseEventsToAcknowledge = new Map<string, string>();
const heldReferrals = new Map<string, string>();
for (const c of callers) {
  const author = isPractice(c) ? office.physician.token : practice.therapist.token;
  urgentToAcknowledge.set(c.label, (await test.create(`/v1/referrals/${referral.id}/messages`, author, { body: `Urgent for ${c.label}`, priority: 'urgent' })).id);
  adverseEventsToAcknowledge.set(c.label, (await test.create(`/v1/referrals/${referral.id}/adverse-events`, practice.therapist.token, adverseEventBody())).id);
  const own = await test.create('/v1/referrals', office.physician.token, referralBody({ patientId: referral.patientId, therapistId: practice.therapist.id, send: true }));
  await ok(await test.request({ method: 'POST', url: `/v1/referrals/${own.id}/accept`, token: practice.therapist.token }), 200, 'accept');
  await test.create(`/v1/referrals/${own.id}/adverse-events`, practice.therapist.token, adverseEventBody({ severity: 'severe', treatmentPaused: true, description: 'Bruising; treatment paused' }));
  heldReferrals.set(c.label, own.id);
}

const renewalDecisionRoutes: Record<string, keyof typeof renewalsToDecide> = {
  '/v1/referrals/:id/renewal-requests/:requestId/approve': 'approve',
  '/v1/referrals/:id/renewal-requests/:requestId/deny': 'deny',
};

/** The caller's own record for a path parameter, so that a refusal can only be about the role. */
function parameterValue(route: CollectedRoute, name: string, c: Caller): string {
  const ownOrganization = c.principal.organizationId ?? office.id;
  const byOrganization = <T>(forOffice: T, forPractice: T, forNetworkAdmin: T) => (isOffice(c) ? forOffice : isPractice(c) ? forPractice : forNetworkAdmin);
  const path = route.url;
  if (path.startsWith('/v1/organizations/:id')) {
    if (name === 'id') return ownOrganization;
    if (name === 'userId') return c.principal.kind === 'user' && c.principal.role !== 'network_admin' ? c.id : byOrganization(office.physician.id, practice.therapist.id, office.physician.id);
    if (name === 'apiClientId' && route.method === 'PATCH') return byOrganization(keyedOfOffice.id, keyedOfPractice.id, keyedOfNetworkAdmin.id);
    if (name === 'apiClientId') return byOrganization(victimOfOffice!.id, victimOfPractice!.id, victimOfNetworkAdmin!.id);
  }
  // The FHIR façade: the same records, by their FHIR ids. As on /v1, the network admin passes the
  // referral-reading policies but is on no care team, so the shared referral's resources answer it
  // 404 (as GET /v1/referrals/{id} does); Patient admits API clients of any scope, and one without
  // referrals:read or patients:read knows no patient (404), the record, not the role, refusing it.
  if (path.startsWith('/fhir/R4/') && name === 'id') {
    const type = path.split('/')[3];
    const fhirIds: Record<string, () => string> = {
      ServiceRequest: () => referral.id,
      Task: () => taskId,
      Patient: () => referral.patientId,
      Practitioner: () => (isPractice(c) ? practice.therapist.id : office.physician.id),
      PractitionerRole: () => (isPractice(c) ? practice.therapist.id : office.physician.id),
      Organization: () => ownOrganization,
      Communication: () => messageRead.id,
      Encounter: () => report.id,
      Observation: () => `${report.id}-pain-before`,
      DocumentReference: () => documentRead.id,
      Binary: () => documentRead.id,
      AuditEvent: () => byOrganization(officeAuditEvent, practiceAuditEvent, officeAuditEvent),
    };
    const value = fhirIds[type!];
    if (value) return value();
  }
  if (path.startsWith('/v1/patients/:id') && name === 'id') return referral.patientId;
  if (path === '/v1/referrals/:id/sign' && name === 'id') return unsignedDrafts.get(c.label) ?? referral.id;
  if (path === '/v1/referrals/:id/resume' && name === 'id') return heldReferrals.get(c.label)!;
  const decision = renewalDecisionRoutes[path];
  if (decision) {
    const own = renewalsToDecide[decision].get(c.label)!;
    if (name === 'id') return own.referralId;
    if (name === 'requestId') return own.requestId;
  }
  if (path.startsWith('/v1/referrals/:id')) {
    if (name === 'id') return referral.id;
    if (path === '/v1/referrals/:id/reports/:reportId/sign' && name === 'reportId') return reportsToSign.get(c.label)!;
    if (path.startsWith('/v1/referrals/:id/reports/:reportId') && name === 'reportId') return reportRead.id;
    if (name === 'reportId') return report.id;
    if (name === 'requestId') return renewalRead.id;
    if (name === 'documentId') return route.method === 'DELETE' ? documentsToRetract.get(c.label)! : documentRead.id;
    if (name === 'appointmentId') return appointmentsToChange.get(c.label)!;
    if (name === 'messageId') return urgentToAcknowledge.get(c.label)!;
    if (name === 'eventId') return path.endsWith('/acknowledge') ? adverseEventsToAcknowledge.get(c.label)! : adverseEventRead.id;
  }
  if (path.startsWith('/v1/webhook-endpoints/:id') && name === 'id') {
    if (route.method === 'DELETE') return byOrganization(officeVictimEndpoint.id, practiceVictimEndpoint.id, networkAdminVictimEndpoint.id);
    return byOrganization(officeEndpoint.id, practiceEndpoint.id, officeEndpoint.id);
  }
  if (path.startsWith('/v1/webhook-deliveries/:id') && name === 'id') return byOrganization(officeDelivery, practiceDelivery, officeDelivery);
  if (path.startsWith('/v1/audit-events/:id') && name === 'id') return byOrganization(officeAuditEvent, practiceAuditEvent, officeAuditEvent);
  throw new Error(`no value for :${name} of ${route.method} ${route.url}: give this route's parameters a record of the caller's own`);
}

const queries: Record<string, string> = {
  '/v1/audit-events/viewers': `?patientId=${referral.patientId}`,
  // The FHIR thread searches name what they search in (else 400): the shared referral.
  '/fhir/R4/Communication': `?based-on=ServiceRequest/${referral.id}`,
  '/fhir/R4/Encounter': `?based-on=ServiceRequest/${referral.id}`,
  '/fhir/R4/Observation': `?based-on=ServiceRequest/${referral.id}`,
  '/fhir/R4/DocumentReference': `?based-on=ServiceRequest/${referral.id}`,
};

/** Amendments so far: each raises visitsAuthorized again, as an amendment must add care. */
let amendments = 0;

/**
 * A referral as a FHIR ServiceRequest (test/fixtures/fhir-bodies.ts), the office's physician to the
 * practice's therapist. A draft, as POST /v1/referrals makes one: sending it (active) needs the
 * prescriber's signature, which the office's other roles cannot give (409), and signing is POST
 * /v1/referrals/{id}/sign's question.
 */
const fhirServiceRequest = (tag: string): Json =>
  whiplashServiceRequest(
    { requesterId: office.physician.id, performerId: practice.therapist.id, familyName: `Halvorsen${tag}`, mrn: `MRN-${tag}` },
    { status: 'draft', note: [{ text: 'Goal: Full cervical rotation' }] },
  );

/** A valid body for each route that takes one, so that a wrongly admitted call would go through. */
function bodyOf(route: CollectedRoute, c: Caller): Json | undefined {
  const tag = randomBytes(4).toString('hex');
  const ownOrganization = c.principal.organizationId ?? office.id;
  const bodies: Record<string, () => Json> = {
    'POST /v1/auth/revoke': () => ({ token: `rt_unknown_${tag}` }),
    'POST /v1/organizations': () => ({
      kind: 'physician_office',
      name: `Office ${tag}`,
      npi: nextNpi(),
      address: { line1: '1 Test St', city: 'Portland', state: 'OR', postalCode: '97201' },
      location: { lat: 45.5, lng: -122.6 },
    }),
    'POST /v1/organizations/:id/users': () => ({ role: isPractice(c) ? 'practice_admin' : 'office_staff', email: `new.${tag}@example.com`, password: 'a-long-test-password', name: `New ${tag}` }),
    'PATCH /v1/organizations/:id/users/:userId': () => ({ name: `Renamed ${tag}` }),
    'POST /v1/organizations/:id/api-clients': () => ({ name: `EHR ${tag}`, scopes: everyScope }),
    'PATCH /v1/organizations/:id/api-clients/:apiClientId': () => ({ jwks: jwksOf(clientKey, rotatedKey) }),
    'POST /v1/patients': () => ({ givenName: 'Ana', familyName: `Test${tag}`, birthDate: '1980-01-01', sex: 'female' }),
    'POST /v1/referrals': () =>
      referralBody({ patientId: referral.patientId, prescriberId: office.physician.id, therapistId: practice.therapist.id }),
    'PATCH /v1/referrals/:id': () => ({ visitsAuthorized: Math.min(100, (referral.visitsAuthorized as number) + ++amendments) }),
    'POST /v1/referrals/:id/sign': () => ({ attestation: true }),
    'POST /v1/referrals/:id/accept': () => (c.principal.role === 'therapist' ? {} : { therapistId: practice.therapist.id }),
    'POST /v1/referrals/:id/decline': () => ({ reason: 'No availability' }),
    'POST /v1/referrals/:id/cancel': () => ({ reason: 'Patient moved' }),
    'POST /v1/referrals/:id/reroute': () => ({ practiceId: practice.id }),
    'POST /v1/referrals/:id/progress-reports': () => visitNote,
    'POST /v1/referrals/:id/progress-reports/:reportId/addenda': () => ({ text: 'Correction' }),
    // A progress report: a discharge would complete the referral the later admitted calls act on.
    'POST /v1/referrals/:id/reports': () => progressReportBody({ summary: `Progress ${tag}` }),
    'POST /v1/referrals/:id/reports/:reportId/sign': () => ({ attestation: true, comment: `Signed ${tag}` }),
    'POST /v1/referrals/:id/renewal-requests': () => renewalRequestBody({ justification: `Renewal ${tag}` }),
    'POST /v1/referrals/:id/renewal-requests/:requestId/approve': () => ({ attestation: true }),
    'POST /v1/referrals/:id/renewal-requests/:requestId/deny': () => ({ reason: `Denied ${tag}` }),
    'POST /v1/referrals/:id/messages': () => ({ body: `Message ${tag}` }),
    'DELETE /v1/referrals/:id/documents/:documentId': () => ({ reason: `Filed in error ${tag}` }),
    'POST /v1/referrals/:id/appointments': () => ({ startsAt: inTwoDays(), minutes: 45 }),
    // A visit not begun yet: cancelled, the one outcome it may have before it starts.
    'PATCH /v1/referrals/:id/appointments/:appointmentId': () => ({ status: 'cancelled_by_practice' }),
    // Mild and not paused: a hold would refuse the visit notes the later admitted calls write.
    'POST /v1/referrals/:id/adverse-events': () => adverseEventBody({ description: `Soreness ${tag}` }),
    'POST /v1/referrals/:id/resume': () => ({ attestation: true, comment: `Resumed ${tag}` }),
    'POST /v1/referrals/:id/messages/read': () => ({}),
    'POST /v1/webhook-endpoints': () => ({ url: 'https://ehr.example/hooks/other', eventTypes: ['referral.sent'], organizationId: ownOrganization }),
    'PATCH /v1/webhook-endpoints/:id': () => ({ description: `changed ${tag}` }),
    // The FHIR façade's writes, sent as application/fhir+json (see call()).
    'POST /fhir/R4/ServiceRequest': () => fhirServiceRequest(tag),
    // The Task as read: its status unchanged, a valid move that changes nothing.
    'PUT /fhir/R4/Task/:id': () => task,
    'POST /fhir/R4/Communication': () => ({ resourceType: 'Communication', status: 'completed', partOf: [{ reference: `Task/${taskId}` }], payload: [{ contentString: `Message ${tag}` }] }),
    'POST /v1/webhook-endpoints/:id/recover': () => ({ from: '2000-01-01T00:00:00Z' }),
  };
  return bodies[`${route.method} ${route.url}`]?.();
}

/** The bodies that are not JSON: a document is uploaded as multipart/form-data (SPEC §14.6). */
function formOf(route: CollectedRoute, c: Caller): { payload: Buffer; contentType: string } | undefined {
  if (`${route.method} ${route.url}` !== 'POST /v1/referrals/:id/documents') return undefined;
  return documentForm(sampleFile.png(), { category: 'intake', title: `Intake form (${c.label})` });
}

/** Moves that end the referral's care go last, so the admitted calls before them meet it in progress. */
const terminal = new Set(['POST /v1/referrals/:id/cancel', 'POST /v1/referrals/:id/decline', 'DELETE /v1/webhook-endpoints/:id', 'DELETE /v1/organizations/:id/api-clients/:apiClientId']);
const ordered = [...protectedRoutes].sort((a, b) => Number(terminal.has(`${a.method} ${a.url}`)) - Number(terminal.has(`${b.method} ${b.url}`)));

function urlOf(route: CollectedRoute, c: Caller): string {
  const path = route.url.replace(/:([A-Za-z]+)/g, (_match, name: string) => parameterValue(route, name, c));
  return `${path}${queries[route.url] ?? ''}`;
}

const isFhir = (route: CollectedRoute) => route.url.startsWith('/fhir/R4/');

let requestCounter = 0;
/**
 * Each call from an address of its own. Identical refusals (same caller, action, record, status and
 * address) beyond a few a window are audited as one counted event (src/modules/audit/denial-aggregator.ts),
 * and the FHIR façade shares its actions with /v1 (referral.list for /v1/referrals, ServiceRequest
 * and Task, each also as HEAD): from one address a caller's refusals would be counted, not each
 * written, and this file asks that each forbidden call leave its own denied event.
 */
const addressOf = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

async function call(route: CollectedRoute, c: Caller): Promise<{ response: Response; requestId: string; url: string }> {
  const n = ++requestCounter;
  const requestId = `function-authz-${n}-${randomBytes(4).toString('hex')}`;
  const url = urlOf(route, c);
  const form = formOf(route, c);
  const fhir = isFhir(route);
  const json = bodyOf(route, c);
  // The FHIR façade reads and answers application/fhir+json; its bodies are sent as that, a JSON string.
  const body = form ? form.payload : fhir && json ? JSON.stringify(json) : json;
  const headers = {
    'x-request-id': requestId,
    ...(form ? { 'content-type': form.contentType } : {}),
    ...(fhir ? { accept: 'application/fhir+json', ...(json ? { 'content-type': 'application/fhir+json' } : {}) } : {}),
  };
  const response = await test.request({ method: route.method, url, token: c.token, headers, remoteAddress: addressOf(n), ...(body ? { payload: body } : {}) });
  return { response, requestId, url };
}

const allowed = (route: CollectedRoute, c: Caller) => isAllowed(route.policy as Exclude<RoutePolicy, 'public'>, c.principal);

/** Defects this file found, by `${method} ${url}` and caller label → todo text; empty while none are known. */
const knownDefects: Array<{ route: string; caller?: string; todo: string }> = [];
const defectOf = (route: CollectedRoute, c: Caller) => knownDefects.find((defect) => defect.route === `${route.method} ${route.url}` && (!defect.caller || defect.caller === c.label))?.todo;

const tally = { forbidden: 0, forbiddenSucceeded: 0, forbidden403: 0, forbiddenAudited: 0, admitted: 0, admittedRefused: 0 };
const offenders: string[] = [];
const admittedAnswers = new Map<number, number>();
const admittedOther: string[] = [];

// ─── Setup checks ───────────────────────────────────────────────────────────────────────────────

t.test('setup › routes were collected, each caller is who it says, and every path parameter can be filled', async (t) => {
  t.ok(protectedRoutes.length >= 40, `${protectedRoutes.length} protected routes, ${routes.length} in all`);
  const document = test.app.swagger() as Json;
  for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, Json>>)) {
    for (const method of Object.keys(operations)) {
      t.ok(routes.some((route) => route.method === method.toUpperCase() && route.url === path.replace(/\{(\w+)\}/g, ':$1')), `${method.toUpperCase()} ${path} was collected`);
    }
  }
  for (const c of callers) {
    const me = await test.request({ method: 'GET', url: '/v1/me', token: c.token });
    t.equal(me.statusCode, 200, `${c.label} is signed in`);
    t.equal(me.json().id, c.principal.id, `${c.label}: the token's subject is the caller`);
  }
  for (const route of protectedRoutes) for (const c of callers) t.doesNotThrow(() => urlOf(route, c), `${route.method} ${route.url} for ${c.label}`);
});

// ─── Forbidden combinations: 403, audited, never a success, nothing changed ─────────────────────

const businessTables = [
  'organizations', 'users', 'therapist_profiles', 'api_clients', 'refresh_tokens', 'patients', 'referrals', 'referral_offers', 'referral_events',
  'progress_reports', 'progress_report_addenda', 'clinical_reports', 'clinical_report_signatures', 'renewal_requests', 'messages', 'message_read_markers',
  'idempotency_records', 'webhook_endpoints', 'webhook_events', 'webhook_deliveries', 'webhook_attempts', 'documents', 'document_chunks', 'appointments',
  'scheduling_alerts', 'event_feed', 'adverse_events',
];
/** A digest of every table but the audit trail (which refused calls append to), in one statement. */
async function digestOfData(): Promise<Record<string, string>> {
  const columns = businessTables.map((table) => `(select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from ${table} x) as ${table}`);
  const [row] = rowsOf<Record<string, string>>(await test.app.db.execute(sql.raw(`select ${columns.join(', ')}`)));
  return row!;
}
let beforeForbidden: Record<string, string> = {};
let forbiddenChanged: string[] = [];
t.test('forbidden › (the data before the forbidden calls)', async () => {
  beforeForbidden = await digestOfData();
});

for (const route of ordered) {
  const refused = callers.filter((c) => !allowed(route, c));
  if (refused.length === 0) continue;
  t.test(`forbidden › ${route.method} ${route.url} › ${refused.map((c) => c.label).join(', ')}: 403, audited as denied`, async (t) => {
    for (const c of refused) {
      const todo = defectOf(route, c);
      const options = todo ? { todo } : {};
      const { response, requestId, url } = await call(route, c);
      tally.forbidden++;
      const succeeded = response.statusCode >= 200 && response.statusCode < 300;
      if (succeeded) {
        tally.forbiddenSucceeded++;
        offenders.push(`${route.method} ${route.url} by ${c.label}: ${response.statusCode}`);
      }
      if (response.statusCode === 403) tally.forbidden403++;
      t.notOk(succeeded, `${c.label}: not a success (got ${response.statusCode})`, options);
      t.equal(response.statusCode, 403, `${c.label}: 403${response.statusCode === 403 ? '' : ` (got ${response.statusCode}: ${response.body.slice(0, 200)})`}`, options);
      // The FHIR façade refuses with an OperationOutcome (application/fhir+json), the /v1 API with problem+json.
      if (isFhir(route)) t.match(response.headers['content-type'], /^application\/fhir\+json/, `${c.label}: an OperationOutcome`, options);
      else t.match(response.headers['content-type'], /^application\/problem\+json/, `${c.label}: problem+json`, options);
      const events = await test.app.db
        .select()
        .from(auditTable)
        .where(and(eq(auditTable.requestId, requestId), eq(auditTable.actorId, c.id), eq(auditTable.outcome, 'denied')));
      const audited = events.length === 1 && events[0]!.httpStatus === 403 && events[0]!.action === (route.auditAction ?? 'access.denied');
      if (audited) tally.forbiddenAudited++;
      t.ok(audited, `${c.label}: one denied audit event with the route's action and 403 (${url})`, options);
    }
  });
}

t.test('forbidden › none of the forbidden calls changed any record', async (t) => {
  const after = await digestOfData();
  forbiddenChanged = businessTables.filter((table) => after[table] !== beforeForbidden[table]);
  t.same(forbiddenChanged, [], 'every table but the audit trail is as it was');
});

// ─── Admitted combinations: never refused for the role ──────────────────────────────────────────

for (const route of ordered) {
  const admitted = callers.filter((c) => allowed(route, c));
  if (admitted.length === 0) continue;
  t.test(`admitted › ${route.method} ${route.url} › ${admitted.map((c) => c.label).join(', ')}: neither 401 nor 403`, async (t) => {
    for (const c of admitted) {
      const todo = defectOf(route, c);
      const { response } = await call(route, c);
      tally.admitted++;
      admittedAnswers.set(response.statusCode, (admittedAnswers.get(response.statusCode) ?? 0) + 1);
      if (![200, 201, 202, 204].includes(response.statusCode)) admittedOther.push(`${route.method} ${route.url} by ${c.label}: ${response.statusCode}`);
      const refusedForRole = response.statusCode === 401 || response.statusCode === 403;
      if (refusedForRole) {
        tally.admittedRefused++;
        offenders.push(`${route.method} ${route.url} by ${c.label}: ${response.statusCode} though admitted`);
      }
      t.notOk(refusedForRole, `${c.label}: ${response.statusCode}${refusedForRole ? ` ${response.body.slice(0, 200)}` : ''}`, todo ? { todo } : {});
      t.ok(response.statusCode < 500, `${c.label}: no server error`, todo ? { todo } : {});
    }
  });
}

t.test('admitted › the prescriber and the EHR vouching with referrals:sign signed their drafts; no one else signed one', async (t) => {
  const signRoute = protectedRoutes.find((route) => route.method === 'POST' && route.url === '/v1/referrals/:id/sign');
  if (!signRoute) return t.fail('POST /v1/referrals/:id/sign was collected');
  for (const c of callers.filter((candidate) => unsignedDrafts.has(candidate.label))) {
    const draft = await ok(await test.request({ method: 'GET', url: `/v1/referrals/${unsignedDrafts.get(c.label)}`, token: office.physician.token }), 200, 'read the draft');
    if (!allowed(signRoute, c)) {
      t.equal(draft.signature, null, `${c.label}: refused, the draft stays unsigned`);
      continue;
    }
    const method = c.principal.kind === 'api_client' ? 'ehr_attested' : 'physician';
    t.match(draft.signature, { signedBy: office.physician.id, method }, `${c.label}: signed for the prescriber (${method})`);
    t.equal(draft.status, 'draft', `${c.label}: signing alone sends nothing`);
  }
});

t.test("admitted › the prescriber and the EHR vouching with referrals:sign signed their reports and decided their renewals; no one else did", async (t) => {
  const admits = (url: string, c: Caller) => {
    const route = protectedRoutes.find((candidate) => candidate.method === 'POST' && candidate.url === url);
    if (!route) throw new Error(`POST ${url} was not collected`);
    return allowed(route, c);
  };
  for (const c of callers) {
    // Admitted and of the office: the practice's EHR holds referrals:sign, but vouches for no prescriber of the office.
    const decides = (url: string) => admits(url, c) && isOffice(c);
    const method = c.principal.kind === 'api_client' ? 'ehr_attested' : 'physician';
    const signed = await ok(
      await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/reports/${reportsToSign.get(c.label)}`, token: office.physician.token }),
      200,
      'read the report',
    );
    if (decides('/v1/referrals/:id/reports/:reportId/sign')) t.match(signed.signature, { signedBy: office.physician.id, method }, `${c.label}: signed the report for the prescriber (${method})`);
    else t.equal(signed.signature, null, `${c.label}: refused, the report stays unsigned`);
    for (const [url, decision] of Object.entries(renewalDecisionRoutes)) {
      const { referralId, requestId } = renewalsToDecide[decision].get(c.label)!;
      const request = await ok(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}/renewal-requests/${requestId}`, token: office.physician.token }), 200, 'read the request');
      const expected = decides(url) ? (decision === 'approve' ? 'approved' : 'denied') : 'pending';
      t.equal(request.status, expected, `${c.label}: ${decision}, the request is ${expected}`);
    }
  }
});

t.test('admitted › the care team retracted its own documents and the therapist side recorded its appointments; no one else did', async (t) => {
  const routeOf = (method: Method, url: string) => {
    const route = protectedRoutes.find((candidate) => candidate.method === method && candidate.url === url);
    if (!route) throw new Error(`${method} ${url} was not collected`);
    return route;
  };
  const retractRoute = routeOf('DELETE', '/v1/referrals/:id/documents/:documentId');
  const changeRoute = routeOf('PATCH', '/v1/referrals/:id/appointments/:appointmentId');
  const documentsById = new Map(
    (await test.app.database.rows<{ id: string; retracted: boolean }>(sql`select id::text, retracted_at is not null as retracted from documents where referral_id = ${referral.id}::uuid`)).map((row) => [row.id, row.retracted]),
  );
  const appointmentsById = new Map(
    (await test.app.database.rows<{ id: string; status: string }>(sql`select id::text, status from appointments where referral_id = ${referral.id}::uuid`)).map((row) => [row.id, row.status]),
  );
  for (const c of callers) {
    // The network admin passes the policy but is on no care team (404); the office reads appointments but does not book (404).
    const retracts = allowed(retractRoute, c) && c.principal.role !== 'network_admin';
    t.equal(documentsById.get(documentsToRetract.get(c.label)!), retracts, `${c.label}: ${retracts ? 'retracted its own document' : 'refused, the document stays'}`);
    const records = allowed(changeRoute, c) && isPractice(c);
    t.equal(appointmentsById.get(appointmentsToChange.get(c.label)!), records ? 'cancelled_by_practice' : 'scheduled', `${c.label}: ${records ? 'cancelled its appointment' : 'refused, the appointment stays scheduled'}`);
  }
  t.equal(documentsById.get(documentRead.id), false, 'the document everyone read is still there');
});

t.test('admitted › each side acknowledged the urgent news of the other, and the prescriber resumed treatment; no one else did', async (t) => {
  const routeOf = (url: string) => {
    const route = protectedRoutes.find((candidate) => candidate.method === 'POST' && candidate.url === url);
    if (!route) throw new Error(`POST ${url} was not collected`);
    return route;
  };
  const acknowledgeMessage = routeOf('/v1/referrals/:id/messages/:messageId/acknowledge');
  const acknowledgeEvent = routeOf('/v1/referrals/:id/adverse-events/:eventId/acknowledge');
  const resume = routeOf('/v1/referrals/:id/resume');
  const acknowledgedMessages = new Set(
    (await test.app.database.rows<{ id: string }>(sql`select id::text from messages where referral_id = ${referral.id}::uuid and acknowledged_at is not null`)).map((row) => row.id),
  );
  const acknowledgedEvents = new Set(
    (await test.app.database.rows<{ id: string }>(sql`select id::text from adverse_events where referral_id = ${referral.id}::uuid and acknowledged_at is not null`)).map((row) => row.id),
  );
  for (const c of callers) {
    // On the care team (not the network admin): the office acknowledges the therapist's message, the practice side the office's.
    const onCareTeam = c.principal.role !== 'network_admin';
    const messageDone = allowed(acknowledgeMessage, c) && onCareTeam;
    t.equal(acknowledgedMessages.has(urgentToAcknowledge.get(c.label)!), messageDone, `${c.label}: ${messageDone ? 'acknowledged' : 'did not acknowledge'} the urgent message of the other side`);
    // Adverse events are acknowledged by the office; the therapist side that reported them is answered 409 own-side.
    const eventDone = allowed(acknowledgeEvent, c) && isOffice(c);
    t.equal(acknowledgedEvents.has(adverseEventsToAcknowledge.get(c.label)!), eventDone, `${c.label}: ${eventDone ? 'acknowledged' : 'did not acknowledge'} an adverse event`);
    const held = await ok(await test.request({ method: 'GET', url: `/v1/referrals/${heldReferrals.get(c.label)}`, token: office.physician.token }), 200, 'read the held referral');
    // The prescriber, or the office's EHR vouching for them; the practice's EHR holds referrals:sign but vouches for no prescriber of the office.
    const resumed = allowed(resume, c) && isOffice(c);
    t.equal(held.hold === null, resumed, `${c.label}: ${resumed ? 'resumed treatment' : 'refused, the referral stays on hold'}`);
  }
});

// ─── Privileges a body or a token request might smuggle in ───────────────────────────────────────
// Not in the figure (they are admitted calls); each must be refused without changing anything.

t.test('escalation › an organization admin cannot create a network admin, or a role of the other kind of organization', async (t) => {
  const before = await digestOfData();
  const attempts: Array<[string, string, string]> = [
    ['office_admin', office.id, 'network_admin'],
    ['office_admin', office.id, 'therapist'],
    ['practice_admin', practice.id, 'network_admin'],
    ['practice_admin', practice.id, 'physician'],
  ];
  for (const [label, organizationId, role] of attempts) {
    const c = callers.find((candidate) => candidate.label === label)!;
    const tag = randomBytes(4).toString('hex');
    const response = await test.request({
      method: 'POST',
      url: `/v1/organizations/${organizationId}/users`,
      token: c.token,
      payload: { role, email: `escalate.${tag}@example.com`, password: 'a-long-test-password', name: `Escalate ${tag}`, ...(role === 'physician' ? { npi: nextNpi() } : {}) },
    });
    t.equal(response.statusCode, 400, `${label} creating a ${role}: 400`);
    t.ok(((response.json().errors ?? []) as Json[]).some((problem) => problem.field === 'role'), `${label} creating a ${role}: the role is named`);
  }
  const after = await digestOfData();
  t.same(businessTables.filter((table) => after[table] !== before[table]), [], 'no user was created');
});

t.test('escalation › a practice admin cannot verify a license, which is for network admins', async (t) => {
  const url = `/v1/organizations/${practice.id}/users/${practice.therapist.id}`;
  // The fixture's therapist was verified at onboarding; the network admin withdraws it first.
  await ok(await test.request({ method: 'PATCH', url, token: networkAdminToken, payload: { licenseVerified: false } }), 200, 'network admin unverifies');
  const response = await test.request({ method: 'PATCH', url, token: practice.admin.token, payload: { licenseVerified: true } });
  t.equal(response.statusCode, 400, '400');
  t.ok(((response.json().errors ?? []) as Json[]).some((problem) => problem.field === 'licenseVerified'), 'naming licenseVerified');
  const therapist = await ok(await test.request({ method: 'GET', url, token: practice.admin.token }), 200, 'GET therapist');
  t.equal(therapist.therapist?.license?.verified, false, 'the license stays unverified');
  await ok(await test.request({ method: 'PATCH', url, token: networkAdminToken, payload: { licenseVerified: true } }), 200, 'network admin verifies again');
});

t.test('escalation › an API client cannot obtain a token with a scope it was not granted', async (t) => {
  const client = await test.create(`/v1/organizations/${practice.id}/api-clients`, practice.admin.token, { name: 'read-only EHR', scopes: ['referrals:read'] });
  for (const scope of ['referrals:write', 'referrals:read referrals:write', 'patients:read', 'referrals:sign', 'referrals:read referrals:sign']) {
    const response = await test.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret, scope },
    });
    t.equal(response.statusCode, 400, `scope "${scope}": 400`);
    t.equal(response.json().error, 'invalid_scope', `scope "${scope}": invalid_scope`);
    t.notOk(response.json().access_token, `scope "${scope}": no token`);
  }
});

// ─── Declared policies against the spec ─────────────────────────────────────────────────────────

// Where SPEC §1, §2, §6–§8, §14.1 say who may do something, the declared policy must be no wider.
// `clientScope`: the one scope that admits API clients; only a bound with `byScopeAlone` lets a
// client of any role in by that scope.
const everyUserRole: readonly UserRole[] = ['physician', 'office_staff', 'office_admin', 'therapist', 'practice_admin', 'network_admin'];
const specBounds: Array<{ routes: RegExp; roles: readonly UserRole[]; clients: boolean; clientScope?: ApiClientScope; byScopeAlone?: true; why: string }> = [
  { routes: /^POST \/v1\/organizations$/, roles: ['network_admin'], clients: false, why: 'network admins onboard organizations' },
  { routes: /^(POST|PATCH|DELETE) \/v1\/organizations\/:id\/(users|api-clients)/, roles: organizationAdmins, clients: false, why: 'organization admins manage their own users and API clients' },
  { routes: /^GET \/v1\/organizations\/:id\/api-clients$/, roles: organizationAdmins, clients: false, why: 'organization admins manage their own API clients' },
  { routes: /^\w+ \/v1\/webhook-/, roles: organizationAdmins, clients: false, why: 'organization admins manage webhook endpoints' },
  { routes: /^\w+ \/v1\/audit-events/, roles: organizationAdmins, clients: false, why: 'the audit trail is read by admins' },
  { routes: /^GET \/v1\/audit-events\/verify$/, roles: ['network_admin'], clients: false, why: 'verifying the whole chain is for network admins' },
  { routes: /^\w+ \/v1\/patients/, roles: officeRoles, clients: true, why: 'a patient belongs to the office that created it' },
  { routes: /^POST \/v1\/referrals$/, roles: officeRoles, clients: true, why: 'physician offices prescribe' },
  {
    routes: /^(POST \/v1\/referrals\/:id\/(sign|resume)|PATCH \/v1\/referrals\/:id)$/,
    roles: ['physician'],
    clients: true,
    clientScope: 'referrals:sign',
    byScopeAlone: true,
    why: "the prescriber signs and amends the order, and resumes it after an adverse event; an office's EHR only by vouching with referrals:sign (SPEC §14.1, §14.10)",
  },
  { routes: /^POST \/v1\/referrals\/:id\/progress-reports/, roles: ['physician', 'office_staff', 'office_admin', 'therapist', 'practice_admin', 'network_admin'], clients: false, why: 'visit notes are signed by the therapist who wrote them, never by a client' },
  {
    routes: /^POST \/v1\/referrals\/:id\/(reports|renewal-requests)$/,
    roles: ['physician', 'office_staff', 'office_admin', 'therapist', 'practice_admin', 'network_admin'],
    clients: false,
    why: 'reports to the prescriber and renewal requests come from the therapist who accepted the referral, never from a client (SPEC §14.3, §14.4)',
  },
  {
    routes: /^POST \/v1\/referrals\/:id\/(reports\/:reportId\/sign|renewal-requests\/:requestId\/(approve|deny))$/,
    roles: ['physician'],
    clients: true,
    clientScope: 'referrals:sign',
    byScopeAlone: true,
    why: "the prescriber signs reports and decides renewals; an office's EHR only by vouching with referrals:sign (SPEC §14.3, §14.4)",
  },
  // SPEC §14.5, §14.6: the care team shares documents and the therapist side books; a partner's EHR may do both with referrals:write.
  { routes: /^(POST|DELETE) \/v1\/referrals\/:id\/documents/, roles: everyUserRole, clients: true, clientScope: 'referrals:write', why: 'documents are shared and retracted by the care team, an EHR with referrals:write (SPEC §14.6)' },
  { routes: /^(POST|PATCH) \/v1\/referrals\/:id\/appointments/, roles: everyUserRole, clients: true, clientScope: 'referrals:write', why: 'the therapist side books visits, an EHR with referrals:write (SPEC §14.5)' },
  {
    routes: /^POST \/v1\/referrals\/:id\/(adverse-events|messages\/:messageId\/acknowledge)/,
    roles: everyUserRole,
    clients: true,
    clientScope: 'referrals:write',
    why: 'the care team reports and acknowledges urgent news, an EHR with referrals:write (SPEC §14.10)',
  },
  {
    routes: /^GET \/v1\/events$/,
    roles: everyUserRole.filter((role) => role !== 'network_admin'),
    clients: true,
    clientScope: 'referrals:read',
    why: 'the events feed is of the referrals a caller takes part in, which a network admin never does (SPEC §14.7)',
  },
];

t.test('declared policies are no wider than the spec says', async (t) => {
  for (const route of protectedRoutes) {
    const policy = route.policy as Exclude<RoutePolicy, 'public'>;
    for (const bound of specBounds.filter((candidate) => candidate.routes.test(`${route.method} ${route.url}`))) {
      const wider = policy.roles.filter((role) => !bound.roles.includes(role));
      t.same(wider, [], `${route.method} ${route.url}: no role beyond ${bound.roles.join(', ')} (${bound.why})`);
      if (!bound.clients) t.equal(policy.clientScope, undefined, `${route.method} ${route.url}: closed to API clients (${bound.why})`);
      if (bound.clientScope) t.equal(policy.clientScope, bound.clientScope, `${route.method} ${route.url}: API clients need ${bound.clientScope} (${bound.why})`);
      if (!bound.byScopeAlone) t.notOk(policy.clientsByScopeAlone, `${route.method} ${route.url}: no API client beyond those roles (${bound.why})`);
    }
  }
});

// ─── Public routes ──────────────────────────────────────────────────────────────────────────────

const expectedPublic: Array<{ label: string; methods: Method[]; url: RegExp }> = [
  { label: 'GET /health/live', methods: ['GET', 'HEAD'], url: /^\/health\/live$/ },
  { label: 'GET /health/ready', methods: ['GET', 'HEAD'], url: /^\/health\/ready$/ },
  { label: 'GET /openapi.json', methods: ['GET', 'HEAD'], url: /^\/openapi\.json$/ },
  { label: 'GET /docs…', methods: ['GET', 'HEAD'], url: /^\/docs(\/.*)?$/ },
  { label: 'POST /v1/auth/token', methods: ['POST'], url: /^\/v1\/auth\/token$/ },
  // What a FHIR client reads before it signs in: the CapabilityStatement and the SMART configuration.
  { label: 'GET /fhir/R4/metadata', methods: ['GET', 'HEAD'], url: /^\/fhir\/R4\/metadata$/ },
  { label: 'GET /fhir/R4/.well-known/smart-configuration', methods: ['GET', 'HEAD'], url: /^\/fhir\/R4\/\.well-known\/smart-configuration$/ },
];
const publicRoutes = routes.filter(isPublic);
const labelOf = (route: CollectedRoute) => expectedPublic.find((allowed) => allowed.methods.includes(route.method) && allowed.url.test(route.url))?.label ?? `${route.method} ${route.url}`;
const rank = (label: string) => (expectedPublic.findIndex((allowed) => allowed.label === label) + expectedPublic.length + 1) % (expectedPublic.length + 1);
const publicLabels = [...new Set(publicRoutes.map(labelOf))].sort((a, b) => rank(a) - rank(b));
let publicMatches = true;

t.test('public routes › exactly health, the OpenAPI document and its browser, the token endpoint, and the FHIR metadata and SMART configuration', async (t) => {
  for (const route of publicRoutes) {
    const known = expectedPublic.some((allowed) => allowed.methods.includes(route.method) && allowed.url.test(route.url));
    if (!known) publicMatches = false;
    t.ok(known, `${route.method} ${route.url} may be public`);
  }
  for (const allowed of expectedPublic) {
    const present = publicRoutes.some((route) => allowed.methods.includes(route.method) && allowed.url.test(route.url));
    if (!present) publicMatches = false;
    t.ok(present, `${allowed.label} is public`);
  }
});

t.test('public routes › without a token, every other route answers 401, and the public ones do not', async (t) => {
  for (const route of routes) {
    if (route.url.includes('*')) continue;
    const url = route.url.replace(/:([A-Za-z]+)/g, () => crypto.randomUUID());
    const response = await test.request({ method: route.method, url, ...(['POST', 'PATCH', 'PUT'].includes(route.method) ? { payload: {} } : {}) });
    if (isPublic(route)) {
      if (response.statusCode === 401) publicMatches = false;
      t.not(response.statusCode, 401, `${route.method} ${route.url} answers without a token`);
    } else {
      if (response.statusCode !== 401) publicMatches = false;
      t.equal(response.statusCode, 401, `${route.method} ${route.url} needs a token`);
    }
  }
});

// ─── The figure ─────────────────────────────────────────────────────────────────────────────────

t.test('figure › function-level authorization', async (t) => {
  const list = publicLabels.join(', ');
  const figure = `${tally.forbiddenSucceeded} of ${tally.forbidden} forbidden route × role calls succeeded (${protectedRoutes.length} routes × ${callers.length} callers); public routes: ${list}`;
  const pass =
    tally.forbidden > 0 &&
    tally.forbiddenSucceeded === 0 &&
    tally.forbidden403 === tally.forbidden &&
    tally.forbiddenAudited === tally.forbidden &&
    tally.admittedRefused === 0 &&
    forbiddenChanged.length === 0 &&
    publicMatches;
  recordFigure({ item: 6, check: 'Function-level authorization', figure, pass });
  t.comment(figure);
  t.comment(`forbidden: ${tally.forbidden} (403: ${tally.forbidden403}, audited: ${tally.forbiddenAudited}); admitted: ${tally.admitted} (refused for the role: ${tally.admittedRefused})`);
  t.comment(`admitted answers: ${[...admittedAnswers].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(', ')}`);
  if (process.env.FUNCTION_AUTHZ_VERBOSE) t.comment(admittedOther.join('\n'));
  if (offenders.length > 0) t.comment(`offenders: ${offenders.join('; ')}`);
  t.equal(tally.forbiddenSucceeded, 0, 'no forbidden combination succeeded');
  t.equal(tally.forbidden403, tally.forbidden, 'every forbidden combination answered 403');
  t.equal(tally.forbiddenAudited, tally.forbidden, 'every forbidden combination was audited as denied');
  t.equal(tally.admittedRefused, 0, 'no admitted combination was refused');
  t.ok(publicMatches, 'the public routes are exactly the documented ones');
});
