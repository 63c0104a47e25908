// What the façade serves, per resource type: its interactions, search parameters and includes. The
// routes read their parameters from here and the CapabilityStatement is written from here, so
// /metadata says exactly what the routes do.
import { referralStatesOfServiceRequest } from './map/service-request.js';
import { taskStatuses } from './map/task.js';
import type { SearchParameterDefinition } from './search/params.js';

export type Interaction = 'read' | 'search-type' | 'create' | 'update';

export interface ResourceDefinition {
  type: string;
  profile: string;
  interactions: readonly Interaction[];
  searchParams: readonly SearchParameterDefinition[];
  searchInclude?: readonly string[];
  searchRevInclude?: readonly string[];
  documentation: string;
}

const base = (type: string) => `http://hl7.org/fhir/StructureDefinition/${type}`;
const readAndSearch: readonly Interaction[] = ['read', 'search-type'];

export const serviceRequestDefinition: ResourceDefinition = {
  type: 'ServiceRequest',
  profile: base('ServiceRequest'),
  interactions: [...readAndSearch, 'create'],
  searchParams: [
    { name: 'patient', type: 'reference', targets: ['Patient'], description: 'The patient (only among referrals whose patient the caller may know)' },
    { name: 'status', type: 'token', codes: Object.keys(referralStatesOfServiceRequest), description: 'draft | active | on-hold | completed | revoked' },
    { name: 'requester', type: 'reference', targets: ['Practitioner'], description: 'The prescribing physician' },
    { name: 'performer', type: 'reference', targets: ['Practitioner', 'Organization'], description: 'The therapist or practice it was sent to or accepted by' },
  ],
  searchRevInclude: ['Task:focus'],
  documentation: 'The referral (massage prescription); its id is the /v1 referral id.',
};

export const taskDefinition: ResourceDefinition = {
  type: 'Task',
  profile: base('Task'),
  interactions: [...readAndSearch, 'update'],
  searchParams: [
    { name: 'owner', type: 'reference', targets: ['Practitioner', 'Organization'], description: 'Whose work it is now: the accepting therapist, else the therapist or practice it was sent to' },
    { name: 'status', type: 'token', codes: taskStatuses, description: taskStatuses.join(' | ') },
    { name: 'focus', type: 'reference', targets: ['ServiceRequest'], description: 'The ServiceRequest (referral)' },
    { name: 'patient', type: 'reference', targets: ['Patient'], description: 'The patient (only among referrals whose patient the caller may know)' },
  ],
  searchInclude: ['Task:focus'],
  documentation: "The referral's workflow; a stable id of its own.",
};

export const patientDefinition: ResourceDefinition = {
  type: 'Patient',
  profile: base('Patient'),
  interactions: readAndSearch,
  searchParams: [{ name: 'identifier', type: 'token', description: "system|value of one of the office's identifiers (MRN)" }],
  documentation: "A patient: read in full by the office that registered them, and by the therapist side once it accepted one of the patient's referrals (without the office's identifiers).",
};

const directoryNote =
  'Visible to its own organization, to network admins, and to whoever shares a referral with it; therapists with a verified, unexpired license, and practices, are in the directory for everyone (a license number only for its own organization).';

export const practitionerDefinition: ResourceDefinition = {
  type: 'Practitioner',
  profile: base('Practitioner'),
  interactions: ['read'],
  searchParams: [],
  documentation: `A user of the network (physician, therapist, staff); NPI and license. ${directoryNote}`,
};

export const practitionerRoleDefinition: ResourceDefinition = {
  type: 'PractitionerRole',
  profile: base('PractitionerRole'),
  interactions: ['read'],
  searchParams: [],
  documentation: `The user's one role in their organization; same id as the Practitioner. ${directoryNote}`,
};

export const organizationDefinition: ResourceDefinition = {
  type: 'Organization',
  profile: base('Organization'),
  interactions: ['read'],
  searchParams: [],
  documentation: `A physician office or therapy practice. ${directoryNote}`,
};

// A referral's thread: messages, visits, reports and documents, each found through the referral it
// belongs to (one anchor parameter is required), with the rules of the /v1 routes that list them.
const threadAnchorNote = 'One of the anchor parameters is required (400 otherwise); a referral the caller takes no part in matches nothing.';
const serviceRequestAnchor = (name: string) => ({ name, type: 'reference', targets: ['ServiceRequest'], description: 'The referral (ServiceRequest) it belongs to' }) as const;
const patientAnchor = {
  name: 'patient',
  type: 'reference',
  targets: ['Patient'],
  description: "The patient, among the referrals whose patient the caller may know (at most 100 referrals; more is a 400 asking for based-on)",
} as const;

export const communicationDefinition: ResourceDefinition = {
  type: 'Communication',
  profile: base('Communication'),
  interactions: ['read', 'search-type', 'create'],
  searchParams: [
    { name: 'part-of', type: 'reference', targets: ['Task'], description: "The referral's Task" },
    serviceRequestAnchor('based-on'),
    patientAnchor,
  ],
  documentation:
    "A message of a referral's thread (id = message id), read by the prescribing office and the therapist side taking part. " +
    'create posts a message as POST /v1/referrals/{id}/messages does: partOf the Task or basedOn the ServiceRequest, status completed, one ' +
    `payload.contentString, priority routine or urgent; sender and recipient are the server's. ${threadAnchorNote}`,
};

export const encounterDefinition: ResourceDefinition = {
  type: 'Encounter',
  profile: base('Encounter'),
  interactions: readAndSearch,
  searchParams: [serviceRequestAnchor('based-on'), patientAnchor],
  documentation: `A visit (id = visit note id): date, minutes, therapist, billed CPT codes; the SOAP text is not mapped. ${threadAnchorNote}`,
};

export const observationDefinition: ResourceDefinition = {
  type: 'Observation',
  profile: base('Observation'),
  interactions: readAndSearch,
  searchParams: [serviceRequestAnchor('based-on'), patientAnchor, { name: 'encounter', type: 'reference', targets: ['Encounter'], description: 'The visit' }],
  documentation:
    'Pain before and after a visit (LOINC 72514-3, method urn:massage-referral:pain-timing) and its outcome scores (urn:massage-referral:outcome-instrument); ' +
    `ids {visitNoteId}-pain-before, {visitNoteId}-pain-after, {visitNoteId}-outcome-{n}. ${threadAnchorNote}`,
};

export const documentReferenceDefinition: ResourceDefinition = {
  type: 'DocumentReference',
  profile: base('DocumentReference'),
  interactions: readAndSearch,
  searchParams: [
    serviceRequestAnchor('related'),
    { ...serviceRequestAnchor('based-on'), description: 'The same as related (a name of this server, not of base R4)' },
    patientAnchor,
  ],
  documentation:
    "A report to the prescriber (as PDF) or a document shared on the referral (id = the report's or document's id); the bytes are the Binary " +
    `of the same id. Retracted documents are gone, as in /v1. Documents only to the care team that may know the patient. ${threadAnchorNote}`,
};

export const binaryDefinition: ResourceDefinition = {
  type: 'Binary',
  profile: base('Binary'),
  interactions: ['read'],
  searchParams: [],
  documentation:
    "The bytes of a DocumentReference (same id): a report as its PDF, a document as stored. Served as those bytes in their own type unless Accept " +
    '(or _format) asks for FHIR JSON, then as a Binary resource with the bytes in data. Every read is audited as the /v1 read of the bytes.',
};

export const auditEventDefinition: ResourceDefinition = {
  type: 'AuditEvent',
  profile: base('AuditEvent'),
  interactions: readAndSearch,
  searchParams: [
    { name: 'patient', type: 'reference', targets: ['Patient'], description: 'Events about the patient' },
    { name: 'date', type: 'date', description: 'Recorded at or after (ge) or after (gt) an instant' },
  ],
  documentation:
    'The audit trail (id = the /v1 audit event id), oldest first: network admins read all of it, organization admins their people\'s events and ' +
    'every access to their patients, as GET /v1/audit-events. Subtype is our action (urn:massage-referral:audit-action).',
};

export const resourceDefinitions: readonly ResourceDefinition[] = [
  serviceRequestDefinition,
  taskDefinition,
  patientDefinition,
  practitionerDefinition,
  practitionerRoleDefinition,
  organizationDefinition,
  communicationDefinition,
  encounterDefinition,
  observationDefinition,
  documentReferenceDefinition,
  binaryDefinition,
  auditEventDefinition,
];
