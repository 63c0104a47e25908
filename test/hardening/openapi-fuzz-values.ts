// Values of the OpenAPI fuzzer (openapi-fuzz.test.ts) that stand for seeded resources: resolved
// when the request is sent, so the generated requests depend on the seed alone, not on the ids
// this run's database happens to hand out. The pools of real ids grow as the fuzzer creates
// resources, so they live here, once per test process.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { Operation } from '../fixtures/response-contract.js';
import { nextNpi } from '../helper.js';


const dayMs = 86_400_000;
export const isoDay = (offsetDays: number) => new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);

export class PoolRef {
  constructor(
    readonly pool: string,
    readonly index: number,
  ) {}
}

/** A calendar day relative to the day the request is sent. */
class DayRef {
  constructor(readonly offsetDays: number) {}
}

/** A parent path parameter that should own the resource another path parameter names (the user's organization, the note's referral). */
export class PairRef {
  constructor(readonly child: string) {}
}

/** The organization of whoever sends the request: organization admins manage only their own. */
export class CallerOrganizationRef {}

/** A FHIR reference (Type/id) to a resource of a pool: ServiceRequest/{referral id}, Task/{task id}… */
export class FhirReferenceRef {
  constructor(
    readonly type: string,
    readonly ref: PoolRef,
  ) {}
}

/** A JSON value kept in a pool as its text (a JWK set made in setup). */
export class JsonPoolRef {
  constructor(readonly ref: PoolRef) {}
}

/** The resource a path parameter names, as the caller reads it just before writing it back (a FHIR update). */
export class AsReadRef {
  constructor(
    readonly type: string,
    readonly parameter: string,
  ) {}
}

/** Ids and secrets of the seeded network, by kind; some grow as the fuzzer creates resources. */
export const pools: Record<string, string[]> = {};
export const addToPool = (pool: string, ...values: string[]) => (pools[pool] ??= []).push(...values);
/** Who owns a user, an API client, a visit note, a report, a renewal request, a document, an appointment, a message or an adverse event: its organization or referral. */
export const ownerOf = new Map<string, string>();

export function resolveValue(value: unknown): unknown {
  if (value instanceof PoolRef) {
    if (value.pool === 'freshNpi') return nextNpi();
    if (value.pool === 'freshEmail') return `fuzz.${randomUUID().slice(0, 13)}@fuzz.example`;
    const pool = pools[value.pool] ?? [];
    if (pool.length === 0) return randomUUID();
    // Referrals kept by state go stale as the fuzzer moves them on, and renewal requests as they are
    // decided: the latest few are likeliest still in it.
    if (value.pool.endsWith('Referrals') || ['renewalRequests', 'doomedDocuments', 'urgentMessages', 'adverseEvents'].includes(value.pool)) return pool[pool.length - 1 - (value.index % Math.min(pool.length, 4))];
    return pool[value.index % pool.length];
  }
  if (value instanceof DayRef) return isoDay(value.offsetDays);
  if (value instanceof FhirReferenceRef) return `${value.type}/${resolveValue(value.ref) as string}`;
  if (value instanceof JsonPoolRef) return JSON.parse(resolveValue(value.ref) as string);
  if (Array.isArray(value)) return value.map(resolveValue);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, resolveValue(child)]));
  return value;
}

export const ref = (pool: string) => fc.nat().map((index) => new PoolRef(pool, index));
const fhirReference = (type: string, pool: string) => fc.nat().map((index) => new FhirReferenceRef(type, new PoolRef(pool, index)));
const day = (offsetDays: number) => new DayRef(offsetDays);

/** Dates the server checks against today (a visit is not in the future, a prescription not expired): mostly sensible ones. */
export const dateHints: Record<string, fc.Arbitrary<unknown>> = {
  visitDate: fc.oneof({ weight: 8, arbitrary: fc.constant(day(0)) }, { weight: 1, arbitrary: fc.constantFrom(day(-1), day(1), day(-400)) }),
  // An adverse event happened on or after the day the referral was accepted, and not in the future (SPEC §14.10).
  occurredOn: fc.oneof({ weight: 8, arbitrary: fc.constant(day(0)) }, { weight: 1, arbitrary: fc.constantFrom(day(-1), day(1), day(-400)) }),
  startDate: fc.oneof({ weight: 6, arbitrary: fc.constant(day(0)) }, { weight: 2, arbitrary: fc.integer({ min: -40, max: 30 }).map(day) }),
  expiresOn: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 30, max: 300 }).map(day) }, { weight: 2, arbitrary: fc.integer({ min: -10, max: 800 }).map(day) }),
};
export const emailArb = fc.oneof({ weight: 3, arbitrary: fc.constant(new PoolRef('freshEmail', 0)) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: ref('emails') as fc.Arbitrary<unknown> });

/** Body and query members that name a seeded resource or credential, and where to find one. */
export const fieldPools: Record<string, string> = {
  patientId: 'patients',
  therapistId: 'therapists',
  practiceId: 'practices',
  prescriberId: 'physicians',
  organizationId: 'organizations',
  upTo: 'messages',
  actorId: 'people',
  resourceId: 'referrals',
  username: 'emails',
  password: 'passwords',
  refresh_token: 'refreshTokens',
  token: 'refreshTokens',
  client_id: 'clientIds',
  client_secret: 'clientSecrets',
  cursor: 'cursors',
  identifier: 'identifiers',
  npi: 'freshNpi',
  // A renewal request backed by a report (SPEC §14.4), and a new course continuing an earlier one.
  reportId: 'clinicalReports',
  continuesReferralId: 'referrals',
  // Where the events feed resumes (SPEC §14.7): a cursor it handed out, or another list's.
  after: 'cursors',
};

const someEventTypes = ['referral.sent', 'referral.accepted', 'message.created', 'document.added', 'appointment.scheduled', 'appointment.no_show', 'report.submitted'];
/**
 * Valid values of query members the server reads beyond their schema. `wait` holds a request of
 * the events feed open until an event arrives, up to 30 s (SPEC §14.7): the fuzzer sends one
 * request at a time, so a generated 30 would spend half a minute of its run waiting on purpose. It
 * asks for 0 or 1 s; invalid values (31, -1, 1.5…) are still generated, and the long poll itself —
 * that it holds no worker and ends when an event comes — is resource-limits.test.ts's subject.
 * `types` is a list of known event types; its pattern alone would almost never name one.
 */
export const queryHints: Record<string, fc.Arbitrary<unknown>> = {
  wait: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }),
  types: fc.subarray(someEventTypes, { minLength: 1, maxLength: 3 }).map((types) => types.join(',')),
  // FHIR searches (SPEC §16) take references as Type/id: the referral a thread hangs on, its Task, the patient, the visit.
  'based-on': fhirReference('ServiceRequest', 'acceptedReferrals'),
  related: fhirReference('ServiceRequest', 'acceptedReferrals'),
  focus: fhirReference('ServiceRequest', 'referrals'),
  'part-of': fhirReference('Task', 'acceptedTasks'),
  patient: fhirReference('Patient', 'patients'),
  encounter: fhirReference('Encounter', 'reports'),
  _format: fc.constantFrom('json', 'application/fhir+json'),
  _count: fc.integer({ min: 1, max: 100 }).map(String),
};

/**
 * The anchors of a search of a referral's thread (SPEC §16): exactly one is required, so a
 * well-formed search names one of them and no other (the patient is an anchor too, and so is left out).
 */
export const searchAnchors: Record<string, string[]> = {
  fhirSearchCommunication: ['part-of', 'based-on'],
  fhirSearchEncounter: ['based-on'],
  fhirSearchObservation: ['based-on'],
  fhirSearchDocumentReference: ['based-on', 'related'],
};
const anchoredParameters = new Set(['part-of', 'based-on', 'related', 'patient', 'encounter']);
/** Whether a well-formed FHIR search sends a parameter beside its anchor: those a working client knows a value for. */
export const fhirSearchTakes = (operationId: string, name: string) =>
  searchAnchors[operationId] ? !anchoredParameters.has(name) && name in queryHints : name in queryHints || name in fieldPools;

/**
 * Well-formed bodies the schema cannot give: FHIR resources (free-form in the document) as an EHR
 * writes them, sent as application/fhir+json, and a client's new keys (a real JWK set).
 */
export const wellFormedBodies: Record<string, fc.Arbitrary<{ kind: 'fhir' | 'json'; value: unknown }>> = {
  // As test/fhir-write.test.ts writes one: for a patient of the office, by its physician, to the practice's therapist.
  fhirCreateServiceRequest: fc.record({ send: fc.boolean(), visits: fc.integer({ min: 1, max: 8 }), technique: fc.constantFrom('myofascial_release', 'trigger_point', 'swedish') }).map(({ send, visits, technique }) => ({
    kind: 'fhir' as const,
    value: {
      resourceType: 'ServiceRequest',
      extension: [{ url: 'urn:massage-referral:extension:authorization-period', valuePeriod: { start: new DayRef(0) } }],
      status: send ? 'active' : 'draft',
      intent: 'order',
      priority: 'routine',
      // Massage (97124): other CPT codes are kept with the insurance, and so need a contained Coverage.
      code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97124' }] },
      orderDetail: [{ coding: [{ system: 'urn:massage-referral:technique', code: technique }] }],
      quantityQuantity: { value: visits, unit: 'visits' },
      subject: { reference: new FhirReferenceRef('Patient', new PoolRef('patients', 0)) },
      occurrenceTiming: { repeat: { boundsDuration: { value: 4, unit: 'wk', system: 'http://unitsofmeasure.org', code: 'wk' }, frequency: 2, period: 1, periodUnit: 'wk', duration: 60, durationUnit: 'min' } },
      requester: { reference: new FhirReferenceRef('Practitioner', new PoolRef('physicians', 0)) },
      performer: [{ reference: new FhirReferenceRef('Practitioner', new PoolRef('therapists', 0)) }],
      reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M54.50', display: 'Low back pain' }], text: 'Chronic low back pain' }],
      bodySite: [{ coding: [{ system: 'urn:massage-referral:body-region', code: 'lower_back' }] }],
    },
  })),
  // The Task as read, sent back: the same status is a move to nowhere, still a conditional write.
  fhirUpdateTask: fc.constant({ kind: 'fhir' as const, value: new AsReadRef('Task', 'id') }),
  fhirCreateCommunication: fc.record({ task: ref('acceptedTasks'), text: fc.string({ minLength: 1, maxLength: 200 }).filter((text) => text.trim() !== '') }).map(({ task, text }) => ({
    kind: 'fhir' as const,
    value: { resourceType: 'Communication', status: 'completed', partOf: [{ reference: new FhirReferenceRef('Task', task) }], payload: [{ contentString: text }] },
  })),
  replaceApiClientKeys: fc.oneof(
    ref('jwkSets').map((jwks) => ({ kind: 'json' as const, value: { jwks: new JsonPoolRef(jwks) } })),
    fc.constant({ kind: 'json' as const, value: { jwksUrl: 'https://ehr.fuzz.example/.well-known/jwks.json' } }),
  ),
};

/**
 * Integer query parameters aimed where answers exist: the audit log's proofs (SPEC §15) take tree
 * sizes up to the latest checkpoint's, which the setup makes larger than 40 (its pooled events are
 * among the first 20 leaves). Only for integer parameters: `from` and `to` are timestamps elsewhere.
 */
export const integerQueryHints: Record<string, fc.Arbitrary<unknown>> = {
  treeSize: fc.integer({ min: 20, max: 40 }),
  from: fc.integer({ min: 0, max: 20 }),
  to: fc.integer({ min: 20, max: 40 }),
};

/** The pool a path parameter draws from: some operations destroy what they touch, so they get resources of their own. */
export function pathPool(operation: Operation, name: string): string {
  const overrides: Record<string, string> = {
    'deleteWebhookEndpoint.id': 'doomedEndpoints',
    'revokeApiClient.apiClientId': 'doomedClients',
    'updateUser.userId': 'staffUsers',
    'getUser.userId': 'staffUsers',
    // A move is tried mostly on a referral in the state it starts from.
    'sendReferral.id': 'draftReferrals',
    'signReferral.id': 'unsignedReferrals',
    'acceptReferral.id': 'sentReferrals',
    'declineReferral.id': 'sentReferrals',
    'rerouteReferral.id': 'declinedReferrals',
    'createProgressReport.id': 'acceptedReferrals',
    'createReport.id': 'acceptedReferrals',
    'requestRenewal.id': 'acceptedReferrals',
    // The care team shares documents and the therapist side books visits once a referral is accepted (SPEC §14.5, §14.6).
    'uploadDocument.id': 'acceptedReferrals',
    'createAppointment.id': 'acceptedReferrals',
    // A retraction hides the document for good: those get documents of their own.
    'retractDocument.documentId': 'doomedDocuments',
    // Urgent news (SPEC §14.10): reported while treated; acknowledged when urgent; resumed when held.
    'reportAdverseEvent.id': 'acceptedReferrals',
    'acknowledgeMessage.messageId': 'urgentMessages',
    'resumeReferral.id': 'heldReferrals',
    // Reports to the prescriber, not visit notes, which share the parameter's name.
    'getReport.reportId': 'clinicalReports',
    'signReport.reportId': 'clinicalReports',
    // Only a private_key_jwt client has keys to replace (a secret client answers 409).
    'replaceApiClientKeys.apiClientId': 'keyClients',
    // The FHIR façade (SPEC §16): each resource by the id it goes by.
    'fhirReadTask.id': 'tasks',
    'fhirUpdateTask.id': 'tasks',
    'fhirReadPatient.id': 'patients',
    'fhirReadPractitioner.id': 'therapists',
    'fhirReadPractitionerRole.id': 'therapists',
    'fhirReadCommunication.id': 'messages',
    'fhirReadEncounter.id': 'reports',
    'fhirReadObservation.id': 'observations',
    'fhirReadDocumentReference.id': 'documents',
    'fhirReadBinary.id': 'documents',
    'fhirReadAuditEvent.id': 'auditEvents',
  };
  const override = overrides[`${operation.operationId}.${name}`];
  if (override) return override;
  if (name === 'userId') return 'staffUsers';
  if (name === 'apiClientId') return 'doomedClients';
  if (name === 'reportId') return 'reports';
  if (name === 'requestId') return 'renewalRequests';
  if (name === 'documentId') return 'documents';
  if (name === 'appointmentId') return 'appointments';
  if (name === 'messageId') return 'urgentMessages';
  if (name === 'eventId') return 'adverseEvents';
  const area = operation.path.split('/')[2];
  return (
    { organizations: 'organizations', patients: 'patients', referrals: 'referrals', 'webhook-endpoints': 'endpoints', 'webhook-deliveries': 'deliveries', 'audit-events': 'auditEvents' } as Record<string, string>
  )[area ?? ''] ?? 'referrals';
}
