// The code systems and identifier systems the FHIR façade speaks (SPEC §16). Ours are URNs under
// urn:massage-referral: until the network publishes a canonical base; partners match on them as given.
export const systems = {
  icd10cm: 'http://hl7.org/fhir/sid/icd-10-cm',
  cpt: 'http://www.ama-assn.org/go/cpt',
  npi: 'http://hl7.org/fhir/sid/us-npi',
  ucum: 'http://unitsofmeasure.org',
  loinc: 'http://loinc.org',
  taskCode: 'http://hl7.org/fhir/CodeSystem/task-code',
  bserBusinessStatus: 'http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS',
  organizationType: 'http://terminology.hl7.org/CodeSystem/organization-type',
  coverageClass: 'http://terminology.hl7.org/CodeSystem/coverage-class',
  technique: 'urn:massage-referral:technique',
  bodyRegion: 'urn:massage-referral:body-region',
  patientId: 'urn:massage-referral:patient',
  problem: 'urn:massage-referral:problem',
  role: 'urn:massage-referral:role',
  licenseState: 'urn:massage-referral:license-state',
} as const;

export const extensions = {
  /** The referral's authorization: from startDate to expiresOn (a choice of bounds[x] is already the course length). */
  authorizationPeriod: 'urn:massage-referral:extension:authorization-period',
  /** A limited patient's age in whole years (SPEC §14.8: no birth date before acceptance). */
  ageYears: 'urn:massage-referral:extension:age',
} as const;

/** CPT 97124 (massage therapy) unless the order names another. */
export const defaultCptCode = '97124';

/** Where note texts come from: the prefix is the contract for reading them back. */
export const notePrefixes = { goal: 'Goal: ', precaution: 'Precaution: ', contraindications: 'Contraindications: ' } as const;

/** The code systems of a referral's thread (messages, visits, reports, documents) and of the audit trail. */
export const threadSystems = {
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  /** Whether a pain score was taken before or after the session. */
  painTiming: 'urn:massage-referral:pain-timing',
  /** NDI, ODI, LEFS, DASH, PSFS, other: local until LOINC codes for each instrument's score are agreed. */
  outcomeInstrument: 'urn:massage-referral:outcome-instrument',
  /** evaluation, progress, discharge (SPEC §14.3). */
  reportKind: 'urn:massage-referral:report-kind',
  /** prescription, imaging, intake, insurance, report, other (SPEC §14.6). */
  documentCategory: 'urn:massage-referral:document-category',
  auditEventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  /** Our audit actions (referral.read, message.create, …) as AuditEvent.subtype. */
  auditAction: 'urn:massage-referral:audit-action',
  /** Ids of API clients, which are no FHIR resource of their own. */
  apiClient: 'urn:massage-referral:api-client',
  auditEntityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
} as const;

/** LOINC 72514-3: Pain severity - 0-10 verbal numeric rating [Score] - Reported. */
export const painSeverityLoinc = { system: systems.loinc, code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' } as const;
