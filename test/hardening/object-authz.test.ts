// Hardening item 1, object-level authorization, from the attacker's side (SPEC §6, §7): every
// operation of the OpenAPI document that takes an id is called, aimed at records of office A and
// practice Q, by every caller who has no business with them: the members and partner API clients
// of office B and practice P (P's therapist is the unaffiliated therapist: no referral of A targets P),
// practice Q's members against office A's own records and the other way round, a second therapist
// of Q whom the referral does not name, Q's side against drafts A has not sent (one of them
// cancelled unsent), non-authors against a visit note, the participants who did not accept the
// referral against what only its therapist writes (reports to the prescriber, renewal requests,
// SPEC §14.3, §14.4), the outsiders against R's report and renewal request addressed under a
// referral of their own (RB, office B → P), org admins against the network admin as a
// "user" of their own organization, the non-admin members of the owning organization against
// what only its admins manage, and, on what only the prescriber orders (signing and amending, SPEC
// §14.1), the owning office's members who are not the prescriber, against an unsigned draft U.
// Where the route's declared policy admits the caller's role the answer is the 404 of a missing
// record; where the policy refuses the role outright, 403 (the convention of
// tenant-isolation.test.ts); a physician of the office who is not the prescriber sees the record,
// and is refused it with 403. Every attempt must be audited as denied against the
// record, and must change nothing. Signing R's report and deciding its renewal are the prescriber's
// like signing the order: Q's side takes part but is refused them too. Documents and appointments
// (SPEC §14.5, §14.6) are the care team's: besides the outsiders, Q's side is refused them on a
// referral S that A sent to Q and nobody has accepted (Q sees the order, not who the patient is,
// SPEC §14.8); a second therapist of Q, who is not on R's care team, is refused them on R; office A,
// which reads R's appointments, does not book them (404, as for visit notes); and a document is
// retracted only by the organization that uploaded it (403 for the rest of the care team). So is
// urgent news (SPEC §14.10) and the billing summary (SPEC §14.9): besides the outsiders, a second
// therapist of Q is refused them on a referral T that A sent to all of Q and Q's therapist accepted
// (T's order is theirs to read, its care team is not theirs to join); office A does not report
// adverse events; and resuming treatment that a severe adverse event held (referral H) is the
// prescriber's alone, like signing. Foreign ids in a body or a query string, and the events feed
// (SPEC §14.7), are probed after that, outside the figure.
//
// The list of id-routes comes from the OpenAPI document: a route added without a case here fails.
import { randomBytes, randomUUID } from 'node:crypto';
import { and, eq, sql, type SQL } from 'drizzle-orm';
import t from 'tap';
import { rowsOf } from '../../src/db/database.js';
import * as schema from '../../src/db/schema.js';
import { isAllowed } from '../../src/modules/auth/policy.js';
import { addApiClient, addMember, addTherapist, nextNpi } from '../fixtures/network.js';
import { jwksOf, signingKey } from '../fixtures/smart.js';
import { documentForm, sampleFile } from '../fixtures/documents.js';
import * as bodies from '../fixtures/referral-bodies.js';
import { createOffice, createPractice, defaultPassword, type Json, type TestApp } from '../helper.js';
import { buildTestAppWithRoutes, caller as actor, everyScope, everyScopeButSign, type Caller as Actor } from './authz-shared.js';
import * as clinical from './clinical-bodies.js';
import { recordFigure } from './figures.js';
import { skipFileUnlessPostgres } from './postgres-only.js';

skipFileUnlessPostgres();

type Response = Awaited<ReturnType<TestApp['request']>>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

// ─── The app, with every route's declared policy ───────────────────────────────────────────────

// Every route's declared policy is collected as the app is built (authz-shared.ts). ROLE=api: no
// webhook worker, so no delivery ever leaves the process, however many events the setup causes.
const { test, routes } = await buildTestAppWithRoutes(t, { env: { ROLE: 'api' } });
const policies = new Map(routes.map((route) => [`${route.method} ${route.url}`, route.policy]));
const auditActions = new Map(routes.map((route) => [`${route.method} ${route.url}`, route.auditAction]));
const networkAdmin = await test.loginAsAdmin();

// ─── Callers ─────────────────────────────────────────────────────────────────────────────────────

const [officeA, officeB, practiceQ, practiceP] = await Promise.all([
  createOffice(test, networkAdmin),
  createOffice(test, networkAdmin),
  createPractice(test, networkAdmin),
  createPractice(test, networkAdmin),
]);

const [secondTherapistQ, colleagueOfA, clientA, unsigningClientA, clientB, clientQ, clientP, victimClientA, victimClientQ] = await Promise.all([
  // A second therapist of Q, whom the referral below does not name.
  addTherapist(test, networkAdmin, practiceQ.id, { name: 'Second therapist of Q' }),
  // A second physician of A, who prescribes none of the referrals below.
  addMember(test, networkAdmin, officeA.id, { role: 'physician', email: `colleague.${randomBytes(4).toString('hex')}@office-a.example`, name: 'Second physician of A', npi: nextNpi() }),
  addApiClient(test, officeA.admin.token, officeA.id, everyScope),
  // An EHR of A that does not vouch for A's prescribers (no referrals:sign).
  addApiClient(test, officeA.admin.token, officeA.id, everyScopeButSign),
  addApiClient(test, officeB.admin.token, officeB.id, everyScope),
  addApiClient(test, practiceQ.admin.token, practiceQ.id, everyScope),
  addApiClient(test, practiceP.admin.token, practiceP.id, everyScope),
  // Aimed at by DELETE …/api-clients/{apiClientId}, so a wrongly admitted revocation cannot lock out a caller.
  test.create(`/v1/organizations/${officeA.id}/api-clients`, officeA.admin.token, { name: 'A victim', scopes: ['directory:read'] }),
  test.create(`/v1/organizations/${practiceQ.id}/api-clients`, practiceQ.admin.token, { name: 'Q victim', scopes: ['directory:read'] }),
]);

const physicianA = actor('the physician of office A', officeA.physician);
const staffA = actor('office staff of office A', officeA.staff);
const adminA = actor('the office admin of office A', officeA.admin);
const partnerA = actor("office A's partner API client (every scope)", clientA!);
const colleagueA = actor('a second physician of office A, not the prescriber', colleagueOfA!);
const unsigningPartnerA = actor("office A's API client without referrals:sign", unsigningClientA!);
const physicianB = actor('a physician of office B', officeB.physician);
const staffB = actor('office staff of office B', officeB.staff);
const adminB = actor('the office admin of office B', officeB.admin);
const partnerB = actor("office B's partner API client (every scope)", clientB!);
const therapistQ = actor('the therapist of practice Q', practiceQ.therapist);
const secondQ = actor('a second therapist of practice Q, not the one the referral names', secondTherapistQ!);
const adminQ = actor('the practice admin of practice Q', practiceQ.admin);
const partnerQ = actor("practice Q's partner API client (every scope)", clientQ!);
const unaffiliatedTherapist = actor('the unaffiliated therapist (of practice P, which no referral of A targets)', practiceP.therapist);
const adminP = actor('the practice admin of practice P', practiceP.admin);
const partnerP = actor("practice P's partner API client (every scope)", clientP!);

const officeBSide = [physicianB, staffB, adminB, partnerB];
const practicePSide = [unaffiliatedTherapist, adminP, partnerP];
const officeASide = [physicianA, staffA, adminA, partnerA];
const practiceQSide = [therapistQ, adminQ, partnerQ];
const officeANonAdmins = [physicianA, staffA, partnerA];
const practiceQNonAdmins = [therapistQ, secondQ, partnerQ];

// ─── Office A's and practice Q's records ─────────────────────────────────────────────────────────

async function ok(response: Response, status: number, what: string): Promise<Json> {
  if (response.statusCode !== status) throw new Error(`${what} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

// The fixture's order with a goal, without its inline patient: each referral here says whose it is.
const { patient: _inlinePatient, ...order } = bodies.referralBody({ goals: ['Pain at or below 3/10'] });
const referralBody = (overrides: Json) => ({ ...order, ...overrides });
const visitNote = bodies.visitNoteBody();

// Registered before the referral is sent, so that sending it queues a delivery to it.
const endpointA: string = (
  await test.create('/v1/webhook-endpoints', officeA.admin.token, {
    url: 'https://ehr-a.example/hooks/massage',
    eventTypes: ['referral.sent', 'referral.accepted', 'progress_report.created', 'message.created'],
    description: 'Office A EHR',
  })
).id;

// Referral R: office A → Q's therapist by name, accepted, with a visit note, an addendum and a thread.
const referral = await test.create(
  '/v1/referrals',
  officeA.physician.token,
  referralBody({
    patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female', identifiers: [{ system: 'urn:office-a:mrn', value: 'MRN-0042' }] },
    therapistId: practiceQ.therapist.id,
    send: true,
  }),
);
const R: string = referral.id;
const patientA: string = referral.patientId;
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${R}/accept`, token: practiceQ.therapist.token }), 200, 'accept R');
const reportR: string = (await test.create(`/v1/referrals/${R}/progress-reports`, practiceQ.therapist.token, visitNote)).id;
await test.create(`/v1/referrals/${R}/progress-reports/${reportR}/addenda`, practiceQ.therapist.token, { text: 'Correction: pain after was 3/10' });
await test.create(`/v1/referrals/${R}/messages`, officeA.physician.token, { body: 'How did the first session go?' });
await test.create(`/v1/referrals/${R}/messages`, practiceQ.therapist.token, { body: 'Well; pain down to 4/10.' });
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${R}/messages/read`, token: officeA.physician.token, payload: {} }), 200, 'mark read');

// R's reports to the prescriber and renewals (SPEC §14.3, §14.4): an evaluation, unsigned, and a
// renewal request, pending: what an attacker would read, sign, approve or deny.
const clinicalReportR: string = (await test.create(`/v1/referrals/${R}/reports`, practiceQ.therapist.token, clinical.evaluationReportBody())).id;
const renewalR: string = (await test.create(`/v1/referrals/${R}/renewal-requests`, practiceQ.therapist.token, clinical.renewalRequestBody())).id;

// Draft D: office A → Q's therapist, not sent; a draft is the office's alone (access.ts).
const D: string = (await test.create('/v1/referrals', officeA.physician.token, referralBody({ patientId: patientA, therapistId: practiceQ.therapist.id }))).id;
// Draft C: the same, cancelled before it was ever sent; still the office's alone.
const C: string = (await test.create('/v1/referrals', officeA.physician.token, referralBody({ patientId: patientA, therapistId: practiceQ.therapist.id }))).id;
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${C}/cancel`, token: officeA.physician.token, payload: { reason: 'Written in error' } }), 200, 'cancel C');
// Draft U: office A → Q's therapist, prepared by A's staff in the physician's name, so unsigned
// until the physician signs it (SPEC §14.1); what an attacker would sign, send or amend.
const U: string = (
  await test.create('/v1/referrals', officeA.staff.token, referralBody({ patientId: patientA, prescriberId: officeA.physician.id, therapistId: practiceQ.therapist.id }))
).id;
// Referral RB: office B → P's therapist, accepted, with an evaluation: a referral the outsiders
// take part in themselves, under which they address R's report and renewal request by id. It is
// B's and P's own business, so P's therapist stays a stranger to everything of A and Q.
const RB: string = (
  await test.create(
    '/v1/referrals',
    officeB.physician.token,
    referralBody({ patient: { givenName: 'Ana', familyName: 'Silva', birthDate: '1981-06-07', sex: 'female' }, therapistId: practiceP.therapist.id, send: true }),
  )
).id;
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${RB}/accept`, token: practiceP.therapist.token }), 200, 'accept RB');
const clinicalReportRB: string = (await test.create(`/v1/referrals/${RB}/reports`, practiceP.therapist.token, clinical.evaluationReportBody())).id;
// Documents and an appointment of R (SPEC §14.5, §14.6): a file each side uploaded, and a visit Q's
// therapist booked; what an attacker would read, download, retract or cancel.
async function uploaded(referralId: string, token: string, title: string): Promise<string> {
  const form = documentForm(sampleFile.pdf(), { title });
  return (await ok(await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/documents`, token, headers: { 'content-type': form.contentType }, payload: form.payload }), 201, `upload ${title}`)).id;
}
const documentR = await uploaded(R, officeA.physician.token, 'Lumbar MRI report');
const documentRQ = await uploaded(R, practiceQ.therapist.token, 'Posture photo');
const inTwoDays = () => new Date(Date.now() + 48 * 3_600_000).toISOString();
const appointmentR: string = (await test.create(`/v1/referrals/${R}/appointments`, practiceQ.therapist.token, { startsAt: inTwoDays(), minutes: 60 })).id;
// Referral S: office A → practice Q, sent, accepted by nobody, with a document: Q's side sees the
// order but not who the patient is (SPEC §14.8), so neither its documents nor its appointments.
const S: string = (await test.create('/v1/referrals', officeA.physician.token, referralBody({ patientId: patientA, practiceId: practiceQ.id, send: true }))).id;
const documentS = await uploaded(S, officeA.physician.token, 'Referral letter');
// Urgent news of R (SPEC §14.10): an urgent message of each side, and a mild adverse event Q's therapist reported.
const today = () => new Date().toISOString().slice(0, 10);
const adverseEventBody = (overrides: Json = {}) => ({
  occurredOn: today(),
  description: 'Mild soreness over the lumbar paraspinals the day after treatment',
  severity: 'mild',
  actionTaken: 'Lighter pressure next visit',
  treatmentPaused: false,
  ...overrides,
});
const urgentRQ: string = (await test.create(`/v1/referrals/${R}/messages`, practiceQ.therapist.token, { body: 'Numbness after the session', priority: 'urgent' })).id;
const adverseEventR: string = (await test.create(`/v1/referrals/${R}/adverse-events`, practiceQ.therapist.token, adverseEventBody())).id;
// Referral T: office A → practice Q, accepted by Q's therapist. A second therapist of Q may read the
// order, but is no part of its care team: its documents, appointments, urgent news and claim are not theirs.
const T: string = (await test.create('/v1/referrals', officeA.physician.token, referralBody({ patientId: patientA, practiceId: practiceQ.id, send: true }))).id;
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${T}/accept`, token: practiceQ.admin.token, payload: { therapistId: practiceQ.therapist.id } }), 200, 'accept T');
const documentT = await uploaded(T, officeA.physician.token, 'Prescription');
const appointmentT: string = (await test.create(`/v1/referrals/${T}/appointments`, practiceQ.therapist.token, { startsAt: inTwoDays(), minutes: 60 })).id;
const urgentTA: string = (await test.create(`/v1/referrals/${T}/messages`, officeA.physician.token, { body: 'Please call the patient today', priority: 'urgent' })).id;
const adverseEventT: string = (await test.create(`/v1/referrals/${T}/adverse-events`, practiceQ.therapist.token, adverseEventBody())).id;
// Referral H: office A → Q's therapist, accepted, on hold after a severe adverse event that paused
// treatment: what an attacker would resume.
const H: string = (await test.create('/v1/referrals', officeA.physician.token, referralBody({ patientId: patientA, therapistId: practiceQ.therapist.id, send: true }))).id;
await ok(await test.request({ method: 'POST', url: `/v1/referrals/${H}/accept`, token: practiceQ.therapist.token, payload: {} }), 200, 'accept H');
await test.create(`/v1/referrals/${H}/adverse-events`, practiceQ.therapist.token, adverseEventBody({ severity: 'severe', treatmentPaused: true, description: 'Bruising; treatment paused' }));
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;

const readAsPrescriber = async (id: string) => ok(await test.request({ method: 'GET', url: `/v1/referrals/${id}`, token: officeA.physician.token }), 200, `GET ${id}`);
const deliveries = await ok(await test.request({ method: 'GET', url: `/v1/webhook-endpoints/${endpointA}/deliveries`, token: officeA.admin.token }), 200, 'list deliveries');
const deliveryA: string = (deliveries.data as Json[])[0]!.id;
// An audit event of office A's own people about no patient (a failed sign-in of A's physician),
// sequenced so that its proof exists. Its id is made as long as the missing ids it is compared
// with (16 digits), so that a 404 for it and for a missing one are the same length.
await test.app.db.execute(sql`select setval('audit_events_id_seq', 1000000000000000)`);
await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: officeA.physician.email, password: 'not-the-password-at-all' } });
await test.app.auditSequencer.run({ wait: true });
const [auditEventOfA] = rowsOf<{ id: string | number }>(
  await test.app.db.execute(sql`
    select e.id from audit_events e join audit_log_leaves l on l.event_id = e.id
    where e.actor_organization_id = ${officeA.id} and e.patient_id is null order by e.id desc limit 1`),
);
const auditEventA = String(auditEventOfA!.id);

// The FHIR façade (/fhir/R4) answers in application/fhir+json; its refusals are OperationOutcomes.
const fhirBase = '/fhir/R4';
const fhirJson = 'application/fhir+json';
const isFhir = (url: string) => url.startsWith(`${fhirBase}/`);
/** The Task of a referral, as office A's physician reads it (GET /fhir/R4/Task?focus=ServiceRequest/{id}). */
async function taskOf(referralId: string): Promise<Json> {
  const url = `${fhirBase}/Task?focus=${encodeURIComponent(`ServiceRequest/${referralId}`)}`;
  const bundle = await ok(await test.request({ method: 'GET', url, token: officeA.physician.token, headers: { accept: fhirJson } }), 200, `GET ${url}`);
  const task = (bundle.entry as Json[] | undefined)?.[0]?.resource;
  if (!task) throw new Error(`no Task of ${referralId}: ${JSON.stringify(bundle)}`);
  return task;
}
const [taskR, taskD, taskC] = await Promise.all([taskOf(R), taskOf(D), taskOf(C)]);
const tasks = new Map<string, Json>([[R, taskR], [D, taskD], [C, taskC]]);
/** The Task as read, moved: a draft or a cancelled one sent, anything else accepted (or, once accepted, cancelled). */
const movedTask = (task: Json) => ({
  ...task,
  status: task.status === 'draft' || task.status === 'cancelled' ? 'requested' : task.status === 'requested' ? 'accepted' : 'cancelled',
});

/** An id of no record, of the same kind: a random UUID, or for a numbered record (an audit event) a number past any. */
const missingIdLike = (id: string) => (/^\d+$/.test(id) ? String(2 ** 52 + Math.floor(Math.random() * 1000)) : randomUUID());

// ─── The cases: every id-route of the OpenAPI document ──────────────────────────────────────────

interface Aim {
  /** The record aimed at, in words. */
  label: string;
  url: (caller: Actor) => string;
  /** What a 404 is audited against: the record whose visibility decides the call. */
  decisive: { type: string; id: string };
  callers: Actor[];
  /** The answer where the record, not the role, refuses an admitted caller: the prescriber's alone (SPEC §14.1). */
  status?: 403;
  /** Why the record refuses with that 403, when it is not that only the prescriber may. */
  refusal?: string;
  /** The body sent at this record, where it depends on the record (a Task as read, moved). */
  payload?: (caller: Actor) => Json;
}
/** A multipart/form-data body (a document upload, SPEC §14.6) rather than JSON. */
class Multipart {
  constructor(
    readonly payload: Buffer,
    readonly contentType: string,
  ) {}
}
interface RouteCase {
  payload?: (caller: Actor) => Json | Multipart;
  aims: Aim[];
}

const org = (id: string) => `/v1/organizations/${id}`;
const decisiveOrg = (id: string) => ({ type: 'organization', id });
/** The organization routes aimed at A and at Q; admin-only ones also by the owner's non-admin members. */
const organizationAims = (path: (organizationId: string) => string, adminOnly: boolean): Aim[] => [
  { label: "office A's organization", url: () => path(officeA.id), decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide, ...practiceQSide, ...(adminOnly ? officeANonAdmins : [])] },
  { label: "practice Q's organization", url: () => path(practiceQ.id), decisive: decisiveOrg(practiceQ.id), callers: [...officeASide, ...officeBSide, ...practicePSide, ...(adminOnly ? practiceQNonAdmins : [])] },
];
/** A record of office A addressed under the caller's own organization. */
const ownParentAim = (label: string, path: (ownOrganizationId: string) => string, decisive: { type: string; id: string }): Aim => ({
  label: `${label}, under the caller's own organization`,
  url: (caller) => path(caller.principal.organizationId!),
  decisive,
  callers: [...officeBSide, ...practicePSide, ...practiceQSide],
});

/** The network admin, who belongs to no organization, addressed as a user of the caller's own. */
const networkAdminAim: Aim = {
  label: "the network admin, as a user of the caller's own organization",
  url: (caller) => `${org(caller.principal.organizationId!)}/users/${networkAdminId}`,
  decisive: { type: 'user', id: networkAdminId },
  callers: [adminB, adminQ, adminP],
};

const referralAims = (path: (referralId: string) => string): Aim[] => [
  { label: 'referral R (office A → Q, in progress)', url: () => path(R), decisive: { type: 'referral', id: R }, callers: [...officeBSide, ...practicePSide, secondQ] },
  { label: "office A's unsent draft D naming Q's therapist", url: () => path(D), decisive: { type: 'referral', id: D }, callers: [...practiceQSide, secondQ] },
  { label: "office A's draft C naming Q's therapist, cancelled unsent", url: () => path(C), decisive: { type: 'referral', id: C }, callers: practiceQSide },
];
/**
 * What only the prescriber orders, or needs the signature (signing, amending, sending): the
 * referrals above, and the unsigned draft U, by every outsider; with `ownOffice`, that referral also
 * by office A's members other than its prescriber: refused by the policy for staff, admin and an EHR
 * that does not vouch, by the record for a second physician of A.
 */
const prescriberAims = (path: (referralId: string) => string, ownOffice?: string): Aim[] => [
  ...referralAims(path),
  { label: "office A's unsigned draft U", url: () => path(U), decisive: { type: 'referral', id: U }, callers: [...officeBSide, ...practicePSide, ...practiceQSide, secondQ] },
  ...(ownOffice
    ? [
        {
          label: `${ownOffice === R ? 'referral R' : "office A's unsigned draft U"}, which A's physician prescribes`,
          url: () => path(ownOffice),
          decisive: { type: 'referral', id: ownOffice },
          callers: [colleagueA, staffA, adminA, unsigningPartnerA],
          status: 403 as const,
        },
      ]
    : []),
];
/**
 * What only the accepting therapist writes (reports to the prescriber, renewal requests, SPEC §14.3,
 * §14.4): the referrals above by outsiders, and R by its other participants, who see it but did
 * not accept it: the answer of an outsider (404; API clients, which never write these, 403).
 */
const treatingAims = (path: (referralId: string) => string): Aim[] => [
  ...referralAims(path),
  {
    label: 'referral R, by its participants other than the therapist who accepted it',
    url: () => path(R),
    decisive: { type: 'referral', id: R },
    callers: [physicianA, colleagueA, staffA, adminA, partnerA, adminQ, partnerQ],
  },
];
/**
 * What only the prescriber decides on a referral's report or renewal (signing, approving, denying,
 * SPEC §14.3, §14.4): the referrals above by outsiders; R by practice Q's side, which takes part
 * but does not prescribe; and R by office A's members other than its prescriber: refused by the
 * policy for staff, admin and an EHR that does not vouch, by the record for a second physician.
 */
const prescriberDecisionAims = (path: (referralId: string) => string): Aim[] => [
  ...referralAims(path),
  { label: 'referral R, by practice Q, which treats but does not prescribe', url: () => path(R), decisive: { type: 'referral', id: R }, callers: practiceQSide },
  {
    label: 'referral R, which A\'s physician prescribes',
    url: () => path(R),
    decisive: { type: 'referral', id: R },
    callers: [colleagueA, staffA, adminA, unsigningPartnerA],
    status: 403,
  },
];
/** A record of R addressed under referral RB, which the outsiders of office B and practice P take part in themselves. */
const ownReferralAim = (label: string, path: (referralId: string) => string, decisive: { type: string; id: string }): Aim => ({
  label: `${label}, under referral RB (office B → practice P), the caller's own`,
  url: () => path(RB),
  decisive,
  callers: [...officeBSide, ...practicePSide],
});

/**
 * What is the care team's (documents, SPEC §14.6; a referral's appointments, SPEC §14.5): the
 * referrals above by outsiders, and S by practice Q's side, which sees the order but not who the
 * patient is until someone accepts it (SPEC §14.8).
 */
const careTeamAims = (path: (referralId: string) => string): Aim[] => [
  ...referralAims(path),
  { label: 'referral S (office A → practice Q, not accepted), by Q, who sees the order only', url: () => path(S), decisive: { type: 'referral', id: S }, callers: [...practiceQSide, secondQ] },
  colleagueAim(path),
];
/** Referral T, which Q's therapist accepted, by a second therapist of Q: the order is visible to them, its care team is not theirs. */
function colleagueAim(path: (referralId: string) => string): Aim {
  return { label: 'referral T (office A → practice Q, accepted by its therapist), by a colleague of the therapist', url: () => path(T), decisive: { type: 'referral', id: T }, callers: [secondQ] };
}
/**
 * What the therapist side books and records (appointments, SPEC §14.5): the referrals above by
 * outsiders, and R by office A, which reads its appointments but does not book them: the 404 of an
 * outsider, as for visit notes.
 */
const bookingAims = (path: (referralId: string) => string): Aim[] => [
  ...referralAims(path),
  {
    label: 'referral R, by office A, which reads its appointments but does not book them',
    url: () => path(R),
    decisive: { type: 'referral', id: R },
    callers: [physicianA, colleagueA, staffA, adminA, partnerA, unsigningPartnerA],
  },
  colleagueAim(path),
];
/** A document of R or S: aimed at under its own referral by the outsiders, and under RB by B's and P's side. */
const documentAims = (suffix: string): Aim[] => [
  ...referralAims((id) => `/v1/referrals/${id}/documents/${documentR}${suffix}`),
  {
    label: 'the document of referral S, by Q, who sees the order only',
    url: () => `/v1/referrals/${S}/documents/${documentS}${suffix}`,
    decisive: { type: 'referral', id: S },
    callers: [...practiceQSide, secondQ],
  },
  ownReferralAim("R's document", (id) => `/v1/referrals/${id}/documents/${documentR}${suffix}`, { type: 'document', id: documentR }),
  colleagueAim((id) => `/v1/referrals/${id}/documents/${documentT}${suffix}`),
];
const uploadForm = () => {
  const form = documentForm(sampleFile.pdf(300 * 1024), { title: 'Shared by a stranger' });
  return new Multipart(form.payload, form.contentType);
};

const endpointAims = (path: (endpointId: string) => string): Aim[] => [
  { label: "office A's webhook endpoint", url: () => path(endpointA), decisive: { type: 'webhook_endpoint', id: endpointA }, callers: [...officeBSide, ...practicePSide, ...practiceQSide, ...officeANonAdmins] },
];

const intruderUser = (caller: Actor) => ({ role: 'office_staff', email: `intruder.${randomBytes(4).toString('hex')}@example.com`, password: defaultPassword, name: `Intruder ${caller.label}` });
/** A stranger accepting names a therapist: their own practice's, or the one the referral names. */
const acceptBody = (caller: Actor) =>
  caller.principal.role === 'therapist' ? {} : { therapistId: caller.principal.organizationId === practiceP.id ? practiceP.therapist.id : practiceQ.therapist.id };

/** The Tasks of R, D and C (their referrals' Task ids), by the outsiders of each; `moved` sends each Task as read, with a new status. */
function taskAims(moved = false): Aim[] {
  return referralAims((id) => `${fhirBase}/Task/${tasks.get(id)!.id}`).map((aim) => {
    const task = tasks.get(aim.decisive.id)!;
    return { ...aim, label: `the Task of ${aim.label}`, decisive: { type: 'task', id: task.id as string }, ...(moved ? { payload: () => movedTask(task) } : {}) };
  });
}
/** Office A's physician, by those who share no referral with office A (Q's side takes part in A's referrals; therapists with a valid license are public). */
const practitionerAim = (path: (userId: string) => string): Aim => ({
  label: "office A's physician, by those who share no referral with A",
  url: () => path(physicianA.id),
  decisive: { type: 'user', id: physicianA.id },
  callers: [...officeBSide, ...practicePSide],
});
/** R's evaluation and R's document by R's outsiders; S's document by Q, who sees the order only; T's document by a colleague of its therapist. */
const fhirDocumentAims = (path: (id: string) => string): Aim[] => [
  { label: "R's evaluation", url: () => path(clinicalReportR), decisive: { type: 'report', id: clinicalReportR }, callers: [...officeBSide, ...practicePSide, secondQ] },
  { label: "R's document", url: () => path(documentR), decisive: { type: 'document', id: documentR }, callers: [...officeBSide, ...practicePSide, secondQ] },
  { label: 'the document of referral S, by Q, who sees the order only', url: () => path(documentS), decisive: { type: 'document', id: documentS }, callers: [...practiceQSide, secondQ] },
  { label: 'the document of referral T, by a colleague of the therapist', url: () => path(documentT), decisive: { type: 'document', id: documentT }, callers: [secondQ] },
];
const attackerKey = await signingKey('ES384');

const cases: Record<string, RouteCase> = {
  'GET /v1/organizations/{id}': { aims: organizationAims(org, false) },
  'GET /v1/organizations/{id}/users': { aims: organizationAims((id) => `${org(id)}/users`, false) },
  'POST /v1/organizations/{id}/users': { payload: intruderUser, aims: organizationAims((id) => `${org(id)}/users`, true) },
  'GET /v1/organizations/{id}/users/{userId}': {
    aims: [
      { label: "office A's physician", url: () => `${org(officeA.id)}/users/${physicianA.id}`, decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide, ...practiceQSide] },
      { label: "practice Q's therapist", url: () => `${org(practiceQ.id)}/users/${therapistQ.id}`, decisive: decisiveOrg(practiceQ.id), callers: [...officeASide, ...officeBSide, ...practicePSide] },
      ownParentAim("office A's physician", (own) => `${org(own)}/users/${physicianA.id}`, { type: 'user', id: physicianA.id }),
      networkAdminAim,
    ],
  },
  'PATCH /v1/organizations/{id}/users/{userId}': {
    payload: () => ({ name: 'Hijacked', active: false }),
    aims: [
      { label: "office A's physician", url: () => `${org(officeA.id)}/users/${physicianA.id}`, decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide, ...practiceQSide, staffA, partnerA] },
      { label: "practice Q's therapist", url: () => `${org(practiceQ.id)}/users/${therapistQ.id}`, decisive: decisiveOrg(practiceQ.id), callers: [...officeASide, ...officeBSide, ...practicePSide, secondQ, partnerQ] },
      ownParentAim("office A's physician", (own) => `${org(own)}/users/${physicianA.id}`, { type: 'user', id: physicianA.id }),
      networkAdminAim,
    ],
  },
  'GET /v1/organizations/{id}/api-clients': { aims: organizationAims((id) => `${org(id)}/api-clients`, true) },
  'POST /v1/organizations/{id}/api-clients': { payload: () => ({ name: 'Intruder EHR', scopes: everyScope }), aims: organizationAims((id) => `${org(id)}/api-clients`, true) },
  'DELETE /v1/organizations/{id}/api-clients/{apiClientId}': {
    aims: [
      { label: "office A's API client", url: () => `${org(officeA.id)}/api-clients/${victimClientA!.id}`, decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide, ...practiceQSide, ...officeANonAdmins] },
      { label: "practice Q's API client", url: () => `${org(practiceQ.id)}/api-clients/${victimClientQ!.id}`, decisive: decisiveOrg(practiceQ.id), callers: [...officeASide, ...officeBSide, ...practicePSide, ...practiceQNonAdmins] },
      ownParentAim("office A's API client", (own) => `${org(own)}/api-clients/${victimClientA!.id}`, { type: 'api_client', id: victimClientA!.id }),
    ],
  },
  'GET /v1/patients/{id}': {
    aims: [{ label: "office A's patient", url: () => `/v1/patients/${patientA}`, decisive: { type: 'patient', id: patientA }, callers: [...officeBSide, ...practicePSide, ...practiceQSide, secondQ] }],
  },
  'GET /v1/referrals/{id}': { aims: referralAims((id) => `/v1/referrals/${id}`) },
  // Valid for the prescriber: more visits, and a later expiry within a year of the start.
  'PATCH /v1/referrals/{id}': { payload: () => ({ visitsAuthorized: 99, expiresOn: bodies.isoDate(300) }), aims: prescriberAims((id) => `/v1/referrals/${id}`, R) },
  'POST /v1/referrals/{id}/send': { aims: prescriberAims((id) => `/v1/referrals/${id}/send`) },
  'POST /v1/referrals/{id}/sign': { payload: () => ({ attestation: true, send: true }), aims: prescriberAims((id) => `/v1/referrals/${id}/sign`, U) },
  'POST /v1/referrals/{id}/accept': { payload: acceptBody, aims: referralAims((id) => `/v1/referrals/${id}/accept`) },
  'POST /v1/referrals/{id}/decline': { payload: () => ({ reason: 'No availability' }), aims: referralAims((id) => `/v1/referrals/${id}/decline`) },
  'POST /v1/referrals/{id}/cancel': { payload: () => ({ reason: 'Patient moved' }), aims: referralAims((id) => `/v1/referrals/${id}/cancel`) },
  'POST /v1/referrals/{id}/reroute': { payload: () => ({ practiceId: practiceP.id }), aims: referralAims((id) => `/v1/referrals/${id}/reroute`) },
  'GET /v1/referrals/{id}/history': { aims: referralAims((id) => `/v1/referrals/${id}/history`) },
  'POST /v1/referrals/{id}/progress-reports': { payload: () => visitNote, aims: referralAims((id) => `/v1/referrals/${id}/progress-reports`) },
  'GET /v1/referrals/{id}/progress-reports': { aims: referralAims((id) => `/v1/referrals/${id}/progress-reports`) },
  'POST /v1/referrals/{id}/progress-reports/{reportId}/addenda': {
    payload: () => ({ text: 'Correction by a stranger' }),
    aims: [
      { label: "the visit note of R, by Q's therapist", url: () => `/v1/referrals/${R}/progress-reports/${reportR}/addenda`, decisive: { type: 'referral', id: R }, callers: [...officeBSide, ...practicePSide, secondQ] },
      // SPEC §4: corrections are by the note's author; the other participants see the note but may not amend it.
      { label: "the visit note of R, by a participant who did not write it", url: () => `/v1/referrals/${R}/progress-reports/${reportR}/addenda`, decisive: { type: 'progress_report', id: reportR }, callers: [physicianA, adminQ, partnerA, partnerQ] },
    ],
  },
  'POST /v1/referrals/{id}/reports': { payload: () => clinical.dischargeReportBody({ summary: 'Discharged by a stranger' }), aims: treatingAims((id) => `/v1/referrals/${id}/reports`) },
  'GET /v1/referrals/{id}/reports': { aims: referralAims((id) => `/v1/referrals/${id}/reports`) },
  'GET /v1/referrals/{id}/reports/{reportId}': {
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/reports/${clinicalReportR}`),
      ownReferralAim("R's evaluation", (id) => `/v1/referrals/${id}/reports/${clinicalReportR}`, { type: 'report', id: clinicalReportR }),
    ],
  },
  'POST /v1/referrals/{id}/reports/{reportId}/sign': {
    payload: () => ({ attestation: true, comment: 'Signed by a stranger' }),
    aims: prescriberDecisionAims((id) => `/v1/referrals/${id}/reports/${clinicalReportR}/sign`),
  },
  'POST /v1/referrals/{id}/renewal-requests': {
    // Backed by no report: a reportId of R's would tell a stranger's request from a random one by its own check.
    payload: () => clinical.renewalRequestBody({ additionalVisits: 99, justification: 'More visits, asked by a stranger' }),
    aims: treatingAims((id) => `/v1/referrals/${id}/renewal-requests`),
  },
  'GET /v1/referrals/{id}/renewal-requests': { aims: referralAims((id) => `/v1/referrals/${id}/renewal-requests`) },
  'GET /v1/referrals/{id}/renewal-requests/{requestId}': {
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/renewal-requests/${renewalR}`),
      ownReferralAim("R's pending renewal request", (id) => `/v1/referrals/${id}/renewal-requests/${renewalR}`, { type: 'renewal_request', id: renewalR }),
    ],
  },
  'POST /v1/referrals/{id}/renewal-requests/{requestId}/approve': {
    payload: () => ({ attestation: true, additionalVisits: 100, extendWeeks: 52 }),
    aims: prescriberDecisionAims((id) => `/v1/referrals/${id}/renewal-requests/${renewalR}/approve`),
  },
  'POST /v1/referrals/{id}/renewal-requests/{requestId}/deny': {
    payload: () => ({ reason: 'Denied by a stranger' }),
    aims: prescriberDecisionAims((id) => `/v1/referrals/${id}/renewal-requests/${renewalR}/deny`),
  },
  'POST /v1/referrals/{id}/documents': { payload: uploadForm, aims: careTeamAims((id) => `/v1/referrals/${id}/documents`) },
  'GET /v1/referrals/{id}/documents': { aims: careTeamAims((id) => `/v1/referrals/${id}/documents`) },
  'GET /v1/referrals/{id}/documents/{documentId}': { aims: documentAims('') },
  'GET /v1/referrals/{id}/documents/{documentId}/content': { aims: documentAims('/content') },
  'DELETE /v1/referrals/{id}/documents/{documentId}': {
    payload: () => ({ reason: 'Retracted by a stranger' }),
    aims: [
      ...documentAims(''),
      // SPEC §14.6: only the organization that uploaded a document retracts it; the rest of the care team sees it, and is refused.
      {
        label: "R's document uploaded by office A, by practice Q, which is on the care team but did not upload it",
        url: () => `/v1/referrals/${R}/documents/${documentR}`,
        decisive: { type: 'document', id: documentR },
        callers: practiceQSide,
        status: 403,
        refusal: '403, the uploading organization\'s alone',
      },
      {
        label: "R's document uploaded by Q's therapist, by office A, which is on the care team but did not upload it",
        url: () => `/v1/referrals/${R}/documents/${documentRQ}`,
        decisive: { type: 'document', id: documentRQ },
        callers: [physicianA, colleagueA, staffA, adminA, partnerA, unsigningPartnerA],
        status: 403,
        refusal: '403, the uploading organization\'s alone',
      },
    ],
  },
  'POST /v1/referrals/{id}/appointments': { payload: () => ({ startsAt: inTwoDays(), minutes: 60 }), aims: bookingAims((id) => `/v1/referrals/${id}/appointments`) },
  'GET /v1/referrals/{id}/appointments': { aims: careTeamAims((id) => `/v1/referrals/${id}/appointments`) },
  'PATCH /v1/referrals/{id}/appointments/{appointmentId}': {
    payload: () => ({ status: 'cancelled_by_practice' }),
    aims: [
      ...bookingAims((id) => `/v1/referrals/${id}/appointments/${id === T ? appointmentT : appointmentR}`),
      // P's side books for RB: R's appointment is not found under it. (Office B does not book: its 404 is about RB itself.)
      { ...ownReferralAim("R's appointment", (id) => `/v1/referrals/${id}/appointments/${appointmentR}`, { type: 'appointment', id: appointmentR }), callers: practicePSide },
    ],
  },
  'POST /v1/referrals/{id}/messages': { payload: () => ({ body: 'Hello from a stranger' }), aims: referralAims((id) => `/v1/referrals/${id}/messages`) },
  'POST /v1/referrals/{id}/messages/{messageId}/acknowledge': {
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/messages/${urgentRQ}/acknowledge`),
      ownReferralAim("R's urgent message", (id) => `/v1/referrals/${id}/messages/${urgentRQ}/acknowledge`, { type: 'message', id: urgentRQ }),
      // SPEC §14.10: the therapist side of the care team acknowledges the office's; a colleague reads the thread but is not on it.
      colleagueAim((id) => `/v1/referrals/${id}/messages/${urgentTA}/acknowledge`),
    ],
  },
  'POST /v1/referrals/{id}/adverse-events': {
    // Severe and pausing treatment: a stranger's report would put the referral on hold.
    payload: () => adverseEventBody({ severity: 'severe', treatmentPaused: true, description: 'Reported by a stranger' }),
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/adverse-events`),
      // SPEC §14.10: the therapist side reports; the office, which reads them, does not (the 404 of visit notes).
      {
        label: 'referral R, by office A, which reads its adverse events but does not report them',
        url: () => `/v1/referrals/${R}/adverse-events`,
        decisive: { type: 'referral', id: R },
        callers: [physicianA, colleagueA, staffA, adminA, partnerA, unsigningPartnerA],
      },
      colleagueAim((id) => `/v1/referrals/${id}/adverse-events`),
    ],
  },
  'GET /v1/referrals/{id}/adverse-events': { aims: careTeamAims((id) => `/v1/referrals/${id}/adverse-events`) },
  'GET /v1/referrals/{id}/adverse-events/{eventId}': {
    aims: [
      ...careTeamAims((id) => `/v1/referrals/${id}/adverse-events/${id === T ? adverseEventT : adverseEventR}`),
      ownReferralAim("R's adverse event", (id) => `/v1/referrals/${id}/adverse-events/${adverseEventR}`, { type: 'adverse_event', id: adverseEventR }),
    ],
  },
  'POST /v1/referrals/{id}/adverse-events/{eventId}/acknowledge': {
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/adverse-events/${adverseEventR}/acknowledge`),
      ownReferralAim("R's adverse event", (id) => `/v1/referrals/${id}/adverse-events/${adverseEventR}/acknowledge`, { type: 'adverse_event', id: adverseEventR }),
      colleagueAim((id) => `/v1/referrals/${id}/adverse-events/${adverseEventT}/acknowledge`),
    ],
  },
  'POST /v1/referrals/{id}/resume': {
    payload: () => ({ attestation: true, comment: 'Resumed by a stranger' }),
    aims: [
      ...referralAims((id) => `/v1/referrals/${id}/resume`),
      { label: 'referral H (on hold after a severe adverse event)', url: () => `/v1/referrals/${H}/resume`, decisive: { type: 'referral', id: H }, callers: [...officeBSide, ...practicePSide, secondQ] },
      { label: 'referral H, by practice Q, which treats but does not prescribe', url: () => `/v1/referrals/${H}/resume`, decisive: { type: 'referral', id: H }, callers: practiceQSide },
      {
        label: "referral H, which A's physician prescribes",
        url: () => `/v1/referrals/${H}/resume`,
        decisive: { type: 'referral', id: H },
        callers: [colleagueA, staffA, adminA, unsigningPartnerA],
        status: 403,
      },
    ],
  },
  'GET /v1/referrals/{id}/billing': { aims: careTeamAims((id) => `/v1/referrals/${id}/billing`) },
  'GET /v1/referrals/{id}/messages': { aims: referralAims((id) => `/v1/referrals/${id}/messages`) },
  'POST /v1/referrals/{id}/messages/read': { payload: () => ({}), aims: referralAims((id) => `/v1/referrals/${id}/messages/read`) },
  'GET /v1/webhook-endpoints/{id}': { aims: endpointAims((id) => `/v1/webhook-endpoints/${id}`) },
  'PATCH /v1/webhook-endpoints/{id}': { payload: () => ({ url: 'https://attacker.example/hook', description: 'hijacked' }), aims: endpointAims((id) => `/v1/webhook-endpoints/${id}`) },
  'DELETE /v1/webhook-endpoints/{id}': { aims: endpointAims((id) => `/v1/webhook-endpoints/${id}`) },
  'POST /v1/webhook-endpoints/{id}/rotate-secret': { aims: endpointAims((id) => `/v1/webhook-endpoints/${id}/rotate-secret`) },
  'POST /v1/webhook-endpoints/{id}/test': { aims: endpointAims((id) => `/v1/webhook-endpoints/${id}/test`) },
  'GET /v1/webhook-endpoints/{id}/deliveries': { aims: endpointAims((id) => `/v1/webhook-endpoints/${id}/deliveries`) },
  'POST /v1/webhook-endpoints/{id}/recover': { payload: () => ({ from: '2000-01-01T00:00:00Z' }), aims: endpointAims((id) => `/v1/webhook-endpoints/${id}/recover`) },
  'GET /v1/audit-events/{id}': {
    aims: [{ label: "an audit event of office A's people", url: () => `/v1/audit-events/${auditEventA}`, decisive: { type: 'audit_event', id: auditEventA }, callers: [adminB, adminQ, adminP] }],
  },
  'GET /v1/audit-events/{id}/proof': {
    aims: [{ label: "an audit event of office A's people", url: () => `/v1/audit-events/${auditEventA}/proof`, decisive: { type: 'audit_event', id: auditEventA }, callers: [adminB, adminQ, adminP] }],
  },
  'POST /v1/webhook-deliveries/{id}/resend': {
    aims: [
      {
        label: "a delivery to office A's webhook endpoint",
        url: () => `/v1/webhook-deliveries/${deliveryA}/resend`,
        decisive: { type: 'webhook_delivery', id: deliveryA },
        callers: [...officeBSide, ...practicePSide, ...practiceQSide, ...officeANonAdmins],
      },
    ],
  },
  'PATCH /v1/organizations/{id}/api-clients/{apiClientId}': {
    // A key set an attacker holds: a wrongly admitted replacement would let them sign in as the client.
    payload: () => ({ jwks: jwksOf(attackerKey) }),
    aims: [
      { label: "office A's API client", url: () => `${org(officeA.id)}/api-clients/${victimClientA!.id}`, decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide, ...practiceQSide, ...officeANonAdmins] },
      { label: "practice Q's API client", url: () => `${org(practiceQ.id)}/api-clients/${victimClientQ!.id}`, decisive: decisiveOrg(practiceQ.id), callers: [...officeASide, ...officeBSide, ...practicePSide, ...practiceQNonAdmins] },
      ownParentAim("office A's API client", (own) => `${org(own)}/api-clients/${victimClientA!.id}`, { type: 'api_client', id: victimClientA!.id }),
    ],
  },
  // ─── The FHIR façade: the same records, the same outsiders, the same 404s and audit events ───
  [`GET ${fhirBase}/ServiceRequest/{id}`]: { aims: referralAims((id) => `${fhirBase}/ServiceRequest/${id}`) },
  [`GET ${fhirBase}/Task/{id}`]: { aims: taskAims() },
  [`PUT ${fhirBase}/Task/{id}`]: { aims: taskAims(true) },
  [`GET ${fhirBase}/Patient/{id}`]: {
    // Q's side, which accepted R, reads its patient in FHIR (the subject of R's order); the others do not.
    aims: [{ label: "office A's patient", url: () => `${fhirBase}/Patient/${patientA}`, decisive: { type: 'patient', id: patientA }, callers: [...officeBSide, ...practicePSide, secondQ] }],
  },
  [`GET ${fhirBase}/Practitioner/{id}`]: { aims: [practitionerAim((id) => `${fhirBase}/Practitioner/${id}`)] },
  [`GET ${fhirBase}/PractitionerRole/{id}`]: { aims: [practitionerAim((id) => `${fhirBase}/PractitionerRole/${id}`)] },
  [`GET ${fhirBase}/Organization/{id}`]: {
    // Practices are public directory entries; an office is seen by its own people and those who share a referral with it.
    aims: [{ label: "office A's organization, by those who share no referral with A", url: () => `${fhirBase}/Organization/${officeA.id}`, decisive: decisiveOrg(officeA.id), callers: [...officeBSide, ...practicePSide] }],
  },
  [`GET ${fhirBase}/Communication/{id}`]: {
    aims: [{ label: "R's urgent message", url: () => `${fhirBase}/Communication/${urgentRQ}`, decisive: { type: 'message', id: urgentRQ }, callers: [...officeBSide, ...practicePSide, secondQ] }],
  },
  [`GET ${fhirBase}/Encounter/{id}`]: {
    aims: [{ label: "R's visit note", url: () => `${fhirBase}/Encounter/${reportR}`, decisive: { type: 'progress_report', id: reportR }, callers: [...officeBSide, ...practicePSide, secondQ] }],
  },
  [`GET ${fhirBase}/Observation/{id}`]: {
    aims: [{ label: "the pain before R's visit", url: () => `${fhirBase}/Observation/${reportR}-pain-before`, decisive: { type: 'progress_report', id: reportR }, callers: [...officeBSide, ...practicePSide, secondQ] }],
  },
  [`GET ${fhirBase}/DocumentReference/{id}`]: { aims: fhirDocumentAims((id) => `${fhirBase}/DocumentReference/${id}`) },
  [`GET ${fhirBase}/Binary/{id}`]: { aims: fhirDocumentAims((id) => `${fhirBase}/Binary/${id}`) },
  [`GET ${fhirBase}/AuditEvent/{id}`]: {
    aims: [{ label: "an audit event of office A's people", url: () => `${fhirBase}/AuditEvent/${auditEventA}`, decisive: { type: 'audit_event', id: auditEventA }, callers: [adminB, adminQ, adminP] }],
  },
};

// ─── What a refused call must leave alone ─────────────────────────────────────────────────────────

/**
 * A digest of every record of A and Q that a case aims at or could add to, one per part, read in one
 * statement (the check runs after every refused change, so it has to be cheap).
 */
async function snapshot(): Promise<Record<string, string>> {
  const owners = sql`(${officeA.id}::uuid, ${practiceQ.id}::uuid)`;
  const referralsAimed = sql`(${R}::uuid, ${D}::uuid, ${C}::uuid, ${U}::uuid, ${S}::uuid, ${T}::uuid, ${H}::uuid)`;
  const digest = (from: string, where: SQL) => sql`(select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from ${sql.raw(from)} x where ${where})`;
  const [row] = rowsOf<Record<string, string>>(
    await test.app.db.execute(sql`select
      ${digest('organizations', sql`x.id in ${owners}`)} as organizations,
      ${digest('users', sql`x.organization_id in ${owners}`)} as users,
      ${digest('therapist_profiles', sql`x.user_id in (select id from users where organization_id in ${owners})`)} as therapist_profiles,
      ${digest('api_clients', sql`x.organization_id in ${owners}`)} as api_clients,
      ${digest('patients', sql`x.organization_id = ${officeA.id}::uuid`)} as patients,
      ${digest('referrals', sql`x.id in ${referralsAimed}`)} as referrals,
      ${digest('referral_events', sql`x.referral_id in ${referralsAimed}`)} as history,
      ${digest('referral_offers', sql`x.referral_id in ${referralsAimed}`)} as offers,
      ${digest('progress_reports', sql`x.referral_id in ${referralsAimed}`)} as reports,
      ${digest('progress_report_addenda', sql`x.report_id in (select id from progress_reports where referral_id in ${referralsAimed})`)} as addenda,
      ${digest('clinical_reports', sql`x.referral_id in ${referralsAimed}`)} as clinical_reports,
      ${digest('clinical_report_signatures', sql`x.report_id in (select id from clinical_reports where referral_id in ${referralsAimed})`)} as report_signatures,
      ${digest('renewal_requests', sql`x.referral_id in ${referralsAimed}`)} as renewal_requests,
      ${digest('messages', sql`x.referral_id in ${referralsAimed}`)} as messages,
      ${digest('documents', sql`x.referral_id in ${referralsAimed}`)} as documents,
      ${digest('document_chunks', sql`x.upload_id in (select id from documents where referral_id in ${referralsAimed}) or not exists (select 1 from documents d where d.id = x.upload_id)`)} as document_parts,
      ${digest('appointments', sql`x.referral_id in ${referralsAimed}`)} as appointments,
      ${digest('adverse_events', sql`x.referral_id in ${referralsAimed}`)} as adverse_events,
      ${digest('message_read_markers', sql`x.referral_id in ${referralsAimed}`)} as read_markers,
      ${digest('webhook_endpoints', sql`true`)} as webhook_endpoints,
      ${digest('webhook_events', sql`x.referral_id in ${referralsAimed} or x.type = 'ping'`)} as webhook_events,
      ${digest('webhook_deliveries', sql`x.endpoint_id = ${endpointA}::uuid`)} as webhook_deliveries`),
  );
  return row!;
}
const changedParts = (before: Record<string, string>, after: Record<string, string>) => Object.keys(before).filter((key) => before[key] !== after[key]);

// ─── Calling ──────────────────────────────────────────────────────────────────────────────────────

let requestCounter = 0;
async function send(caller: Actor, method: Method, url: string, payload?: Json | Multipart): Promise<{ response: Response; requestId: string }> {
  const requestId = `object-authz-${++requestCounter}-${randomBytes(4).toString('hex')}`;
  const form = payload instanceof Multipart ? payload : undefined;
  // The FHIR façade is asked for FHIR JSON, and sent it: a JSON string in application/fhir+json.
  const fhir = isFhir(url);
  const headers = { 'x-request-id': requestId, ...(form ? { 'content-type': form.contentType } : {}), ...(fhir ? { accept: fhirJson, ...(payload && !form ? { 'content-type': fhirJson } : {}) } : {}) };
  const body = form ? form.payload : payload && fhir ? JSON.stringify(payload) : payload;
  const response = await test.request({ method, url, token: caller.token, headers, ...(body ? { payload: body } : {}) });
  return { response, requestId };
}

async function deniedEventsOf(requestId: string, actorId: string) {
  const table = schema.auditEvents;
  return test.app.db
    .select()
    .from(table)
    .where(and(eq(table.requestId, requestId), eq(table.actorId, actorId), eq(table.outcome, 'denied')));
}

/** The parts of a problem that must not tell a foreign record from a missing one. */
const shapeOf = (response: Response) => {
  const json = response.json();
  // An OperationOutcome (the FHIR façade's refusal): its issues, without the per-request id.
  if (json.resourceType === 'OperationOutcome') {
    const { id: _id, meta: _meta, ...outcome } = json;
    return { status: response.statusCode, outcome };
  }
  const { type, title, status, detail, ...rest } = json;
  return { type, title, status, detail, members: Object.keys(rest).sort() };
};

/** The value of the path's {id}: what the policy hook audits a refused role against (auditResource). */
const idParamOf = (template: string, url: string) => {
  const templateParts = template.split('/');
  const urlParts = url.split('?')[0]!.split('/');
  return urlParts[templateParts.indexOf('{id}')];
};

/** Defects found by this file, as `${route} › ${caller label}` → todo text; empty while none are known. */
const knownDefects: Array<{ route: string; caller?: string; aim?: string; todo: string }> = [];
const defectOf = (route: string, aim: Aim, caller: Actor) =>
  knownDefects.find((defect) => defect.route === route && (!defect.caller || defect.caller === caller.label) && (!defect.aim || defect.aim === aim.label))?.todo;

const comparedWithMissing = new Set<Aim>();
const tally = { total: 0, succeeded: 0, n404: 0, n403: 0, other: 0, audited: 0, changed: 0 };
const otherAnswers: string[] = [];

// ─── The cross-check against the OpenAPI document ───────────────────────────────────────────────

const document = test.app.swagger() as Json;
const idRoutes = Object.entries(document.paths as Record<string, Record<string, Json>>)
  .filter(([path]) => path.includes('{'))
  .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));

t.test('setup › every id-route of the OpenAPI document has a case here, and every case is a documented route', async (t) => {
  t.ok(idRoutes.length >= 30, `${idRoutes.length} id-routes in the OpenAPI document`);
  for (const route of idRoutes) t.ok(cases[route], `${route} has a case`);
  for (const route of Object.keys(cases)) t.ok(idRoutes.includes(route), `${route} is in the OpenAPI document`);
  for (const route of idRoutes) {
    const [method, path] = route.split(' ') as [string, string];
    const policy = policies.get(`${method} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    t.ok(policy && policy !== 'public', `${route} has a non-public policy`);
  }
});

t.test('setup › the records exist and their owners reach them', async (t) => {
  const get = async (url: string, token: string) => (await test.request({ method: 'GET', url, token })).statusCode;
  t.equal(await get(`/v1/referrals/${R}`, officeA.physician.token), 200, 'R, by its prescriber');
  t.equal(await get(`/v1/referrals/${R}`, practiceQ.therapist.token), 200, 'R, by the therapist it names');
  t.equal(await get(`/v1/referrals/${R}`, practiceQ.admin.token), 200, "R, by its practice's admin");
  t.equal(await get(`/v1/referrals/${D}`, officeA.staff.token), 200, 'D, by its office');
  t.equal(await get(`/v1/referrals/${U}`, officeA.staff.token), 200, 'U, by its office');
  t.equal(await get(`/v1/referrals/${R}`, colleagueA.token), 200, "R, by the office's other physician, who sees the office's referrals");
  t.equal((await readAsPrescriber(C)).status, 'cancelled', 'C, cancelled, by its office');
  t.equal(await get(`/v1/patients/${patientA}`, officeA.staff.token), 200, 'the patient, by its office');
  t.equal(await get(`/v1/webhook-endpoints/${endpointA}`, officeA.admin.token), 200, 'the endpoint, by its admin');
  t.ok(deliveryA, 'a delivery to the endpoint was queued by sending R');
  t.equal(await get(`/v1/referrals/${R}/documents/${documentR}`, practiceQ.therapist.token), 200, "R's document, by the therapist who accepted R");
  t.equal(await get(`/v1/referrals/${R}/documents/${documentRQ}/content`, officeA.staff.token), 200, "the therapist's document of R, by office A's staff");
  t.equal(await get(`/v1/referrals/${R}/appointments`, officeA.physician.token), 200, "R's appointments, by its prescriber");
  t.equal(await get(`/v1/referrals/${S}`, practiceQ.admin.token), 200, 'S, the order, by the practice it was sent to');
  t.equal(await get(`/v1/referrals/${S}/documents/${documentS}`, officeA.physician.token), 200, "S's document, by its office");
  t.equal(await get(`/v1/referrals/${T}/billing`, practiceQ.therapist.token), 200, "T's claim, by the therapist who accepted it");
  t.equal(await get(`/v1/referrals/${T}/adverse-events/${adverseEventT}`, officeA.staff.token), 200, "T's adverse event, by office A's staff");
  t.match((await readAsPrescriber(H)).hold, { adverseEventId: /./ }, 'H is on hold');
});

const start = await snapshot();
let current = start;
const pick = ({ status, version, visitsAuthorized, expiresOn, acceptedBy }: Json) => ({ status, version, visitsAuthorized, expiresOn, acceptedBy });
const rAtStart = pick(await readAsPrescriber(R));
const dAtStart = pick(await readAsPrescriber(D));
const cAtStart = pick(await readAsPrescriber(C));
const signedPick = (referral: Json) => ({ ...pick(referral), signature: referral.signature });
const uAtStart = signedPick(await readAsPrescriber(U));

for (const route of idRoutes.filter((route) => cases[route])) {
  const { payload, aims } = cases[route]!;
  const [method, template] = route.split(' ') as [Method, string];
  const routeKey = `${method} ${template.replace(/\{(\w+)\}/g, ':$1')}`;
  const policy = policies.get(routeKey);
  const action = auditActions.get(routeKey) ?? 'access.denied';
  for (const aim of aims) {
    for (const caller of aim.callers) {
      const admitted = policy !== undefined && policy !== 'public' && isAllowed(policy, caller.principal);
      const status = admitted ? (aim.status ?? 404) : 403;
      const expected = !admitted ? "403, the route policy's refusal of the role" : status === 403 ? (aim.refusal ?? "403, the prescriber's alone") : '404, as for a missing record';
      const todo = defectOf(route, aim, caller);
      t.test(`${route} › ${caller.label}, aiming at ${aim.label}, gets ${expected}, audited as denied, changes nothing`, async (t) => {
        const url = aim.url(caller);
        const body = (aim.payload ?? payload)?.(caller);
        const { response, requestId } = await send(caller, method, url, body);
        tally.total++;
        if (response.statusCode >= 200 && response.statusCode < 300) tally.succeeded++;
        else if (response.statusCode === 404) tally.n404++;
        else if (response.statusCode === 403) tally.n403++;
        else {
          tally.other++;
          otherAnswers.push(`${route} › ${caller.label}: ${response.statusCode}`);
        }
        t.equal(response.statusCode, status, `answers ${status}${response.statusCode === status ? '' : ` (got ${response.statusCode}: ${response.body.slice(0, 200)})`}`, todo ? { todo } : {});
        if (isFhir(url)) {
          t.match(response.headers['content-type'], /^application\/fhir\+json/, 'as application/fhir+json', todo ? { todo } : {});
          t.equal(response.json().resourceType, 'OperationOutcome', 'an OperationOutcome', todo ? { todo } : {});
        } else t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json', todo ? { todo } : {});
        t.notOk(response.headers.etag, 'without an ETag, which would reveal a version', todo ? { todo } : {});

        // The policy hook audits against the path's {id}; a refusal by the record (404, or the 403 of
        // a record that is someone else's to change) against the record that decided it.
        const auditedId = admitted ? aim.decisive.id : idParamOf(template, url);
        const denied = (await deniedEventsOf(requestId, caller.id)).filter((event) => event.resourceId === auditedId);
        if (denied.length === 1 && denied[0]!.httpStatus === response.statusCode && denied[0]!.action === action) tally.audited++;
        t.equal(denied.length, 1, `one denied audit event naming the caller and ${auditedId === aim.decisive.id ? `the ${aim.decisive.type}` : 'the id in the path'}`, todo ? { todo } : {});
        t.match(denied[0], { action, actorType: caller.principal.kind, httpStatus: response.statusCode }, `with the route's action (${action}) and the status answered`, todo ? { todo } : {});

        // Once per record and route (tenant-isolation and referral-access tests do it per caller).
        if (status === 404 && response.statusCode === 404 && !comparedWithMissing.has(aim)) {
          comparedWithMissing.add(aim);
          const missingUrl = url.replace(aim.decisive.id, missingIdLike(aim.decisive.id));
          const missing = await send(caller, method, missingUrl, body);
          t.same(shapeOf(response), shapeOf(missing.response), 'answers exactly as for a random id (type, title, status, detail, members)');
        }

        if (method !== 'GET') {
          const after = await snapshot();
          const changed = changedParts(current, after);
          if (changed.length > 0) tally.changed++;
          t.same(changed, [], 'nothing of A or Q changed', todo ? { todo } : {});
          current = after;
        }
      });
    }
  }
}

// ─── HEAD, the undocumented twin of every GET ─────────────────────────────────────────────────────
// Fastify answers HEAD on every GET route; an attacker may use it to probe existence by status.
// Not in the figure (the OpenAPI document lists no HEAD operation): one admitted caller per record.

for (const route of idRoutes.filter((candidate) => candidate.startsWith('GET ') && cases[candidate])) {
  const template = route.slice('GET '.length);
  const policy = policies.get(`HEAD ${template.replace(/\{(\w+)\}/g, ':$1')}`);
  for (const aim of cases[route]!.aims) {
    const caller = aim.callers.find((candidate) => policy !== undefined && policy !== 'public' && isAllowed(policy, candidate.principal));
    if (!caller) continue;
    t.test(`HEAD ${template} › ${caller.label}, aiming at ${aim.label}, gets 404 like a random id, audited as denied`, async (t) => {
      const url = aim.url(caller);
      // Request ids of one length, as the problem a HEAD measures (content-length) carries its request id.
      const requestId = `object-authz-head-${randomBytes(8).toString('hex')}`;
      const response = await test.request({ method: 'HEAD', url, token: caller.token, headers: { 'x-request-id': requestId } });
      const missingId = `object-authz-head-${randomBytes(8).toString('hex')}`;
      const missing = await test.request({ method: 'HEAD', url: url.replace(aim.decisive.id, missingIdLike(aim.decisive.id)), token: caller.token, headers: { 'x-request-id': missingId } });
      t.equal(response.statusCode, 404, 'answers 404');
      t.equal(response.body, '', 'without a body');
      t.notOk(response.headers.etag, 'without an ETag');
      t.equal(missing.statusCode, response.statusCode, 'as for a random id');
      t.equal(response.headers['content-length'], missing.headers['content-length'], 'with the same length as for a random id');
      const denied = (await deniedEventsOf(requestId, caller.id)).filter((event) => event.resourceId === aim.decisive.id);
      t.equal(denied.length, 1, 'one denied audit event naming the caller and the record');
    });
  }
}

// ─── Ids carried in a query or a body ─────────────────────────────────────────────────────────────
// Not in the figure, which counts the path ids of the OpenAPI document; the same rule holds here:
// a foreign id answers like a random one, and lists filtered by it show nothing of A's.

const listOf = async (caller: Actor, url: string) => ok(await test.request({ method: 'GET', url, token: caller.token }), 200, `GET ${url}`);
/** The status and problem (without the per-request members) of a call. */
const answerOf = (response: Response) => {
  const { instance: _instance, requestId: _requestId, ...problem } = response.json();
  return { status: response.statusCode, problem };
};

t.test('body ids › a referral for another office\'s patient is refused exactly as for a random patient id, and nothing is created', async (t) => {
  for (const caller of [physicianB, partnerB]) {
    const body = (patientId: string) => referralBody({ patientId, therapistId: practiceQ.therapist.id, prescriberId: physicianB.id, send: true });
    const foreign = await send(caller, 'POST', '/v1/referrals', body(patientA));
    const random = await send(caller, 'POST', '/v1/referrals', body(randomUUID()));
    t.equal(foreign.response.statusCode, 400, `${caller.label}: 400`);
    t.same(answerOf(foreign.response), answerOf(random.response), `${caller.label}: the same answer as for a random id`);
  }
  t.same(changedParts(current, await snapshot()), [], 'nothing of A or Q changed');
});

t.test("body ids › a referral naming another office's physician as prescriber is refused exactly as for a random id", async (t) => {
  const body = (prescriberId: string) =>
    referralBody({ patient: { givenName: 'Ana', familyName: 'Test', birthDate: '1980-01-01', sex: 'female' }, therapistId: practiceQ.therapist.id, prescriberId });
  const foreign = await send(staffB, 'POST', '/v1/referrals', body(physicianA.id));
  const random = await send(staffB, 'POST', '/v1/referrals', body(randomUUID()));
  t.equal(foreign.response.statusCode, 400, '400');
  t.same(answerOf(foreign.response), answerOf(random.response), 'the same answer as for a random id');
  t.same(changedParts(current, await snapshot()), [], 'nothing of A or Q changed');
});

t.test("body ids › a webhook endpoint registered for another organization is the missing organization's 404, audited, and not created", async (t) => {
  for (const caller of [adminB, adminQ]) {
    const body = (organizationId: string) => ({ url: 'https://attacker.example/hook', eventTypes: ['referral.sent'], organizationId });
    const foreign = await send(caller, 'POST', '/v1/webhook-endpoints', body(officeA.id));
    const random = await send(caller, 'POST', '/v1/webhook-endpoints', body(randomUUID()));
    t.equal(foreign.response.statusCode, 404, `${caller.label}: 404`);
    t.same(shapeOf(foreign.response), shapeOf(random.response), `${caller.label}: the same answer as for a random id`);
    const denied = (await deniedEventsOf(foreign.requestId, caller.id)).filter((event) => event.resourceId === officeA.id);
    t.equal(denied.length, 1, `${caller.label}: audited as denied against office A`);
  }
  t.same(changedParts(current, await snapshot()), [], 'nothing of A or Q changed');
});

t.test("body ids › a renewal request backed by another referral's report is refused exactly as for a random report id", async (t) => {
  // P's therapist on RB, naming R's evaluation; Q's therapist on R, naming RB's.
  const asks = [
    { caller: unaffiliatedTherapist, referralId: RB, reportId: clinicalReportR },
    { caller: therapistQ, referralId: R, reportId: clinicalReportRB },
  ];
  for (const { caller, referralId, reportId } of asks) {
    const body = (id: string) => clinical.renewalRequestBody({ reportId: id });
    const foreign = await send(caller, 'POST', `/v1/referrals/${referralId}/renewal-requests`, body(reportId));
    const random = await send(caller, 'POST', `/v1/referrals/${referralId}/renewal-requests`, body(randomUUID()));
    t.equal(foreign.response.statusCode, 400, `${caller.label}: 400`);
    t.same(answerOf(foreign.response), answerOf(random.response), `${caller.label}: the same answer as for a random id`);
  }
  t.same(changedParts(current, await snapshot()), [], 'nothing of A or Q changed');
});

t.test("body ids › a new course continuing another office's referral is refused exactly as for a random id, and nothing is created", async (t) => {
  for (const caller of [physicianB, partnerB]) {
    const body = (continuesReferralId: string) =>
      referralBody({
        patient: { givenName: 'Ana', familyName: 'Test', birthDate: '1980-01-01', sex: 'female' },
        therapistId: practiceP.therapist.id,
        prescriberId: physicianB.id,
        continuesReferralId,
      });
    const foreign = await send(caller, 'POST', '/v1/referrals', body(R));
    const random = await send(caller, 'POST', '/v1/referrals', body(randomUUID()));
    t.equal(foreign.response.statusCode, 400, `${caller.label}: 400`);
    t.same(answerOf(foreign.response), answerOf(random.response), `${caller.label}: the same answer as for a random id`);
  }
  t.same(changedParts(current, await snapshot()), [], 'nothing of A or Q changed');
  t.equal((await readAsPrescriber(R)).continuedByReferralId, null, 'R is continued by nothing');
});

t.test("query ids › lists filtered by office A's ids show nothing of A's to outsiders", async (t) => {
  for (const caller of [adminB, adminQ, adminP]) {
    const endpoints = (await listOf(caller, `/v1/webhook-endpoints?organizationId=${officeA.id}`)).data as Json[];
    t.notOk(endpoints.some((item) => item.organizationId === officeA.id), `${caller.label}: no webhook endpoint of A`);
  }
  for (const caller of [physicianB, partnerB, unaffiliatedTherapist, adminP, partnerP, secondQ]) {
    t.same((await listOf(caller, `/v1/referrals?patientId=${patientA}`)).data, [], `${caller.label}: no referral of A's patient`);
  }
  for (const caller of [physicianB, staffB, partnerB]) {
    t.same((await listOf(caller, `/v1/patients?identifier=${encodeURIComponent('urn:office-a:mrn|MRN-0042')}`)).data, [], `${caller.label}: no patient found by A's MRN`);
  }
});

t.test("query ids › the events feed shows outsiders no event of A's referrals, and a cursor opens only for the caller it was issued to", async (t) => {
  // A second therapist of Q sees the order of S, which was sent to all of Q (its events are about the
  // order: SPEC §14.7 shows an event to whoever may see its referral); of R, D, C and U, nothing.
  const aimedFor = (caller: Actor) => new Set(caller === secondQ ? [R, D, C, U] : [R, D, C, U, S]);
  /** The caller's whole feed, from the oldest event kept, page by page. */
  const feedOf = async (caller: Actor) => {
    const events: Json[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const answer = await listOf(caller, `/v1/events?limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      events.push(...(answer.data as Json[]));
      if (answer.data.length === 0) break;
      after = answer.nextCursor;
    }
    return events;
  };
  for (const caller of [...officeBSide, ...practicePSide, secondQ]) {
    const events = await feedOf(caller);
    if (caller !== secondQ) t.ok(events.some((event) => event.data.referralId === RB), `${caller.label}: sees the events of RB, its own referral`);
    const aimed = aimedFor(caller);
    t.same(
      events
        .filter((event) => aimed.has(event.data.referralId) || (caller !== secondQ && (event.data.organizations ?? []).includes(officeA.id)))
        .map((event) => `${event.type} of ${event.data.referralId}`),
      [],
      `${caller.label}: no event of a referral of A's`,
    );
  }
  const issued = (await listOf(therapistQ, '/v1/events?limit=1')).nextCursor as string;
  const tampered = `${issued.slice(0, -2)}${issued.endsWith('AA') ? 'BB' : 'AA'}`;
  for (const caller of [unaffiliatedTherapist, partnerP, physicianB, secondQ]) {
    const stolen = await send(caller, 'GET', `/v1/events?after=${encodeURIComponent(issued)}`);
    const forged = await send(caller, 'GET', `/v1/events?after=${encodeURIComponent(tampered)}`);
    t.equal(stolen.response.statusCode, 400, `${caller.label}: the cursor of Q's therapist is refused (400)`);
    t.same(answerOf(stolen.response), answerOf(forged.response), `${caller.label}: exactly as a tampered one`);
  }
});

t.test("query ids › the audit trail tells outside admins nothing of office A's patient", async (t) => {
  for (const caller of [adminB, adminP]) {
    t.same((await listOf(caller, `/v1/audit-events?patientId=${patientA}&limit=200`)).data, [], `${caller.label}: no event by A's patient`);
    t.same((await listOf(caller, `/v1/audit-events/viewers?patientId=${patientA}`)).data, [], `${caller.label}: no viewer of A's patient`);
    const exported = await test.request({ method: 'GET', url: `/v1/audit-events/export?patientId=${patientA}`, token: caller.token });
    t.equal(exported.statusCode, 200, `${caller.label}: export answers`);
    t.equal(exported.body.trim(), '', `${caller.label}: and exports nothing of A's patient`);
    // Their own people's refused attempts on R are theirs to see, but never name A's patient.
    const onR = (await listOf(caller, `/v1/audit-events?resourceId=${R}&limit=200`)).data as Json[];
    t.ok(onR.length > 0, `${caller.label}: sees their own people's attempts on R`);
    t.ok(
      onR.every((event) => event.actor?.organizationId === caller.principal.organizationId && !event.patientId),
      `${caller.label}: only their own people's, and none names the patient`,
    );
  }
});

t.test('end › after every refused call, the records of A and Q are exactly as they were', async (t) => {
  t.same(changedParts(start, await snapshot()), [], 'in the database');
  t.equal(rAtStart.status, 'in_progress', 'R was in progress when the attacks began');
  t.same(pick(await readAsPrescriber(R)), rAtStart, 'R: same status, version, authorization, expiry and acceptance, as its prescriber reads it');
  t.equal(dAtStart.status, 'draft', 'D was a draft when the attacks began');
  t.same(pick(await readAsPrescriber(D)), dAtStart, 'D: still the same draft');
  t.same(pick(await readAsPrescriber(C)), cAtStart, 'C: still cancelled, unchanged');
  t.match(uAtStart, { status: 'draft', signature: null }, 'U was an unsigned draft when the attacks began');
  t.same(signedPick(await readAsPrescriber(U)), uAtStart, 'U: still the same draft, unsigned');
  t.match((await readAsPrescriber(H)).hold, { adverseEventId: /./ }, 'H: still on hold');
  t.equal((await test.request({ method: 'GET', url: '/v1/me', token: clientA!.token })).statusCode, 200, "office A's API client still works");
});

t.test('figure › object-level authorization', async (t) => {
  const N = tally.total;
  const pass = N > 0 && tally.succeeded === 0 && tally.n404 + tally.n403 === N && tally.audited === N && tally.changed === 0;
  const figure = `${tally.succeeded} of ${N} cross-tenant calls succeeded; ${tally.n404} answered 404, ${tally.n403} 403 (role refused, or not the prescriber); ${tally.audited} of ${N} audited`;
  recordFigure({ item: 1, check: 'Object-level authorization', figure, pass });
  t.comment(figure);
  if (otherAnswers.length > 0) t.comment(`other answers: ${otherAnswers.join('; ')}`);
  t.equal(tally.succeeded, 0, 'no cross-tenant call succeeded');
  t.equal(tally.n404 + tally.n403, N, 'every call answered 404 or 403');
  t.equal(tally.audited, N, 'every call was audited as denied');
  t.equal(tally.changed, 0, 'no call changed anything');
});
