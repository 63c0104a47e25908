// A ServiceRequest an EHR posts, read into the /v1 request that creates a referral (SPEC §16
// inbound). It reads only the elements the outbound mapping writes; anything else it cannot keep is
// refused by name rather than dropped, since a clinical order that loses part of itself on the way
// in is worse than one refused. What it leaves out takes the /v1 defaults.
import type { FieldProblem } from '../../../lib/errors.js';
import { extensions, notePrefixes, systems } from '../codes.js';

type Json = Record<string, any>;

/** The /v1 create request (referrals' CreateReferral), before its own schema checks it. */
export type CreateReferralInput = Record<string, unknown>;

/** Elements read here, or server-owned and ignored (id, meta, text). Any other is refused. */
const readElements = new Set([
  'resourceType', 'id', 'meta', 'text', 'contained', 'extension', 'replaces', 'status', 'intent', 'priority', 'code', 'orderDetail',
  'quantityQuantity', 'subject', 'occurrenceTiming', 'authoredOn', 'requester', 'performer', 'reasonCode', 'insurance', 'bodySite', 'note',
]);
const patientElements = new Set(['resourceType', 'id', 'meta', 'text', 'identifier', 'name', 'telecom', 'gender', 'birthDate']);
const coverageElements = new Set(['resourceType', 'id', 'meta', 'text', 'status', 'beneficiary', 'payor', 'subscriberId', 'class']);

const statusesTaken: Record<string, boolean> = { active: true, draft: false };
const prioritiesTaken = new Set(['routine', 'urgent']);

const idOf = (reference: unknown, type: string): string | undefined => {
  if (typeof reference !== 'string') return undefined;
  const match = new RegExp(`^${type}/([0-9a-fA-F-]{36})$`).exec(reference);
  return match?.[1]?.toLowerCase();
};

function codesOf(concepts: unknown, system: string, path: string, problems: FieldProblem[]): string[] {
  if (!Array.isArray(concepts)) return [];
  return concepts.flatMap((concept: Json, index) => {
    const coding = (concept?.coding as Json[] | undefined)?.find((candidate) => candidate?.system === system);
    if (!coding?.code) {
      problems.push({ field: `${path}[${index}]`, message: `needs a coding of ${system}` });
      return [];
    }
    return [String(coding.code)];
  });
}

function containedById(resource: Json, reference: unknown): Json | undefined {
  if (typeof reference !== 'string' || !reference.startsWith('#')) return undefined;
  return (resource.contained as Json[] | undefined)?.find((contained) => contained?.id === reference.slice(1));
}

function unreadElements(resource: Json, read: Set<string>, path: string): FieldProblem[] {
  return Object.keys(resource)
    .filter((element) => !read.has(element))
    .map((element) => ({ field: `${path}.${element}`, message: 'is not kept by this server; leave it out (see the README for the mapped elements)' }));
}

function patientOf(patient: Json, problems: FieldProblem[]) {
  problems.push(...unreadElements(patient, patientElements, 'Patient'));
  const name = (patient.name as Json[] | undefined)?.[0];
  const telecom = (patient.telecom as Json[] | undefined) ?? [];
  const identifiers = ((patient.identifier as Json[] | undefined) ?? []).filter((identifier) => identifier?.system !== systems.patientId);
  if (!name?.family) problems.push({ field: 'Patient.name[0].family', message: 'is required' });
  if (!name?.given?.[0]) problems.push({ field: 'Patient.name[0].given[0]', message: 'is required' });
  return {
    givenName: name?.given?.[0],
    familyName: name?.family,
    birthDate: patient.birthDate,
    sex: patient.gender,
    ...(telecom.find((point) => point?.system === 'phone') && { phone: telecom.find((point) => point?.system === 'phone')!.value }),
    ...(telecom.find((point) => point?.system === 'email') && { email: telecom.find((point) => point?.system === 'email')!.value }),
    ...(identifiers.length > 0 && { identifiers: identifiers.map((identifier) => ({ system: identifier.system, value: identifier.value })) }),
  };
}

function coverageOf(coverage: Json, problems: FieldProblem[]) {
  problems.push(...unreadElements(coverage, coverageElements, 'Coverage'));
  const group = (coverage.class as Json[] | undefined)?.find((item) => item?.type?.coding?.some((coding: Json) => coding?.code === 'group'));
  return {
    payer: (coverage.payor as Json[] | undefined)?.[0]?.display,
    memberId: coverage.subscriberId,
    ...(group?.value && { groupNumber: group.value }),
  };
}

function notesOf(notes: unknown, problems: FieldProblem[]) {
  const goals: string[] = [];
  const precautions: string[] = [];
  const contraindications: string[] = [];
  (Array.isArray(notes) ? notes : []).forEach((note: Json, index) => {
    const text = String(note?.text ?? '');
    if (text.startsWith(notePrefixes.goal)) goals.push(text.slice(notePrefixes.goal.length));
    else if (text.startsWith(notePrefixes.precaution)) precautions.push(text.slice(notePrefixes.precaution.length));
    else if (text.startsWith(notePrefixes.contraindications)) contraindications.push(text.slice(notePrefixes.contraindications.length));
    else problems.push({ field: `ServiceRequest.note[${index}].text`, message: `must start with "${notePrefixes.goal}", "${notePrefixes.precaution}" or "${notePrefixes.contraindications}"` });
  });
  return { goals, precautions, contraindications };
}

/** The create request, and what the resource holds that it cannot be (FHIR paths). */
export function createReferralOf(resource: Json): { input: CreateReferralInput; problems: FieldProblem[] } {
  const problems: FieldProblem[] = unreadElements(resource, readElements, 'ServiceRequest');
  const at = (field: string, message: string) => problems.push({ field: `ServiceRequest.${field}`, message });

  if (!(resource.status in statusesTaken)) at('status', 'must be active (sent at once) or draft');
  if (resource.intent !== 'order') at('intent', 'must be order');
  if (resource.priority !== undefined && !prioritiesTaken.has(resource.priority)) at('priority', 'must be routine or urgent');

  const diagnoses = ((resource.reasonCode as Json[] | undefined) ?? []).map((concept, index) => {
    const coding = (concept?.coding as Json[] | undefined)?.find((candidate) => candidate?.system === systems.icd10cm);
    if (!coding?.code) at(`reasonCode[${index}]`, `needs a coding of ${systems.icd10cm}`);
    return { code: coding?.code, display: coding?.display ?? concept?.text };
  });
  if (diagnoses.length === 0) at('reasonCode', 'is required: one per diagnosis, ICD-10-CM, the primary first');
  const reason = resource.reasonCode?.[0]?.text ?? diagnoses[0]?.display;

  const code = resource.code?.coding?.find((coding: Json) => coding?.system === systems.cpt)?.code as string | undefined;
  if (resource.code !== undefined && code === undefined) at('code', `needs a coding of ${systems.cpt}`);

  const repeat: Json = resource.occurrenceTiming?.repeat ?? {};
  if (!resource.occurrenceTiming) at('occurrenceTiming', 'is required: repeat.frequency per week, duration in min, boundsDuration in wk');
  else {
    if (repeat.period !== 1 || repeat.periodUnit !== 'wk') at('occurrenceTiming.repeat.period', 'must be 1 with periodUnit wk (frequency is visits per week)');
    if (repeat.durationUnit !== 'min') at('occurrenceTiming.repeat.durationUnit', 'must be min');
    if (repeat.boundsDuration?.code !== 'wk' && repeat.boundsDuration?.unit !== 'wk') at('occurrenceTiming.repeat.boundsDuration', 'is required, in wk');
  }

  const subjectReference = resource.subject?.reference;
  const containedPatient = containedById(resource, subjectReference);
  const patientId = idOf(subjectReference, 'Patient');
  if (!containedPatient && !patientId) at('subject', 'must reference a contained Patient (#id) or Patient/{id} of your office');

  const performer = (resource.performer as Json[] | undefined) ?? [];
  if (performer.length !== 1) at('performer', 'name exactly one: Practitioner/{therapistId} or Organization/{practiceId}');
  const therapistId = idOf(performer[0]?.reference, 'Practitioner');
  const practiceId = idOf(performer[0]?.reference, 'Organization');
  if (performer.length === 1 && !therapistId && !practiceId) at('performer[0]', 'must be Practitioner/{therapistId} or Organization/{practiceId}');

  const requester = resource.requester?.reference;
  const prescriberId = idOf(requester, 'Practitioner');
  if (requester !== undefined && !prescriberId) at('requester', 'must be Practitioner/{physicianId}');

  const coverageReference = (resource.insurance as Json[] | undefined)?.[0]?.reference;
  const coverage = containedById(resource, coverageReference);
  if (resource.insurance !== undefined && (!coverage || resource.insurance.length !== 1)) at('insurance', 'must be one reference to a contained Coverage');
  const insurance = coverage ? { ...coverageOf(coverage, problems), ...(code && { cptCodes: [code] }) } : undefined;
  if (code && !insurance && code !== '97124') at('code', 'a CPT code other than 97124 is kept with the insurance: add a contained Coverage');

  const period = (resource.extension as Json[] | undefined)?.find((extension) => extension?.url === extensions.authorizationPeriod)?.valuePeriod;
  const otherExtensions = ((resource.extension as Json[] | undefined) ?? []).filter((extension) => extension?.url !== extensions.authorizationPeriod);
  if (otherExtensions.length > 0) at('extension', `only ${extensions.authorizationPeriod} is kept`);
  const continues = idOf((resource.replaces as Json[] | undefined)?.[0]?.reference, 'ServiceRequest');
  if (resource.replaces !== undefined && (!continues || resource.replaces.length !== 1)) at('replaces', 'must be one ServiceRequest/{id} this course continues');

  const { goals, precautions, contraindications } = notesOf(resource.note, problems);
  const input: CreateReferralInput = {
    ...(containedPatient ? { patient: patientOf(containedPatient, problems) } : patientId ? { patientId } : {}),
    ...(prescriberId && { prescriberId }),
    diagnoses,
    reason,
    goals,
    precautions,
    ...(contraindications.length > 0 && { contraindications: contraindications.join('\n') }),
    techniques: codesOf(resource.orderDetail, systems.technique, 'ServiceRequest.orderDetail', problems),
    bodyRegions: codesOf(resource.bodySite, systems.bodyRegion, 'ServiceRequest.bodySite', problems),
    frequencyPerWeek: repeat.frequency,
    durationWeeks: repeat.boundsDuration?.value,
    sessionMinutes: repeat.duration,
    ...(resource.quantityQuantity?.value !== undefined && { visitsAuthorized: resource.quantityQuantity.value }),
    ...(continues && { continuesReferralId: continues }),
    ...(period?.start && { startDate: period.start }),
    ...(period?.end && { expiresOn: period.end }),
    ...(resource.priority && { priority: resource.priority }),
    ...(insurance && { insurance }),
    ...(therapistId ? { therapistId } : practiceId ? { practiceId } : {}),
    send: statusesTaken[resource.status] === true,
  };
  return { input, problems };
}

/** Where a /v1 field of the create request came from in the ServiceRequest, to name it in FHIR's terms. */
export function fhirPathOf(field: string): string {
  const [head, ...rest] = field.split('.');
  const tail = rest.join('.');
  const indexed = /^([a-zA-Z]+)(\[\d+\])?$/.exec(head ?? '');
  const name = indexed?.[1] ?? head;
  const index = indexed?.[2] ?? '';
  switch (name) {
    case 'patient':
      return tail ? `Patient.${({ givenName: 'name[0].given[0]', familyName: 'name[0].family', sex: 'gender' } as Record<string, string>)[tail] ?? tail}` : 'ServiceRequest.subject';
    case 'patientId':
      return 'ServiceRequest.subject';
    case 'prescriberId':
      return 'ServiceRequest.requester';
    case 'therapistId':
    case 'practiceId':
    case 'network':
      return 'ServiceRequest.performer';
    case 'diagnoses':
      return `ServiceRequest.reasonCode${index}${tail === 'code' ? '.coding[0].code' : tail === 'display' ? '.coding[0].display' : ''}`;
    case 'reason':
      return 'ServiceRequest.reasonCode[0].text';
    case 'goals':
    case 'precautions':
    case 'contraindications':
      return 'ServiceRequest.note';
    case 'techniques':
      return `ServiceRequest.orderDetail${index}`;
    case 'bodyRegions':
      return `ServiceRequest.bodySite${index}`;
    case 'frequencyPerWeek':
      return 'ServiceRequest.occurrenceTiming.repeat.frequency';
    case 'durationWeeks':
      return 'ServiceRequest.occurrenceTiming.repeat.boundsDuration.value';
    case 'sessionMinutes':
      return 'ServiceRequest.occurrenceTiming.repeat.duration';
    case 'visitsAuthorized':
      return 'ServiceRequest.quantityQuantity.value';
    case 'startDate':
      return `ServiceRequest.extension(${extensions.authorizationPeriod}).valuePeriod.start`;
    case 'expiresOn':
      return `ServiceRequest.extension(${extensions.authorizationPeriod}).valuePeriod.end`;
    case 'continuesReferralId':
      return 'ServiceRequest.replaces';
    case 'priority':
      return 'ServiceRequest.priority';
    case 'insurance':
      return tail === 'cptCodes' || tail.startsWith('cptCodes') ? 'ServiceRequest.code' : `Coverage${tail ? `.${({ payer: 'payor[0].display', memberId: 'subscriberId', groupNumber: 'class.value' } as Record<string, string>)[tail] ?? tail}` : ''}`;
    default:
      return `ServiceRequest${field ? `.${field}` : ''}`;
  }
}
