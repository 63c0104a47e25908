// The referral as a FHIR ServiceRequest (SPEC §16), mapped from the /v1 view of it, so that what a
// caller may not see there (the patient's identity before acceptance, the insurance's numbers) is
// not in the FHIR resource either (SPEC §14.8).
import type { Referral, ReferralState } from '../../referrals/index.js';
import { defaultCptCode, extensions, notePrefixes, systems } from '../codes.js';
import { metaOf, organization, patient, practitioner, serviceRequest } from './references.js';

type ServiceRequestStatus = 'draft' | 'active' | 'on-hold' | 'revoked' | 'completed';

/**
 * A declined referral stays an active order: the office may send it to someone else (its Task is
 * rejected). An expired one lost its authorization before it was done: revoked, as a cancelled one.
 */
export function serviceRequestStatusOf(referral: Pick<Referral, 'status' | 'hold'>): ServiceRequestStatus {
  if (referral.hold) return 'on-hold';
  switch (referral.status) {
    case 'draft':
      return 'draft';
    case 'completed':
      return 'completed';
    case 'cancelled':
    case 'expired':
      return 'revoked';
    default:
      return 'active';
  }
}

/** The referral states each ServiceRequest status stands for (for searches by status). */
export const referralStatesOfServiceRequest: Record<ServiceRequestStatus, ReferralState[]> = {
  draft: [{ statuses: ['draft'] }],
  active: [{ statuses: ['sent', 'declined'] }, { statuses: ['accepted', 'in_progress'], onHold: false }],
  'on-hold': [{ statuses: ['accepted', 'in_progress'], onHold: true }],
  completed: [{ statuses: ['completed'] }],
  revoked: [{ statuses: ['cancelled', 'expired'] }],
};

const containedPatientId = 'patient';
const containedCoverageId = 'coverage';

function containedPatient(referral: Referral) {
  if (!('limited' in referral.patient)) return undefined;
  return {
    resourceType: 'Patient',
    id: containedPatientId,
    extension: [{ url: extensions.ageYears, valueAge: { value: referral.patient.ageYears, unit: 'a', system: systems.ucum, code: 'a' } }],
    gender: referral.patient.sex,
  };
}

function containedCoverage(referral: Referral, beneficiary: { reference: string }) {
  const insurance = referral.insurance;
  if (!insurance) return undefined;
  const full = 'memberId' in insurance ? insurance : undefined;
  return {
    resourceType: 'Coverage',
    id: containedCoverageId,
    status: 'active',
    ...(full && { subscriberId: full.memberId }),
    beneficiary,
    payor: [{ display: insurance.payer }],
    ...(full?.groupNumber && {
      class: [{ type: { coding: [{ system: systems.coverageClass, code: 'group' }] }, value: full.groupNumber }],
    }),
  };
}

function notes(referral: Referral) {
  return [
    ...referral.goals.map((goal) => ({ text: `${notePrefixes.goal}${goal}` })),
    ...referral.precautions.map((precaution) => ({ text: `${notePrefixes.precaution}${precaution}` })),
    ...(referral.contraindications ? [{ text: `${notePrefixes.contraindications}${referral.contraindications}` }] : []),
  ];
}

function performers(referral: Referral) {
  if (referral.acceptedBy) return [practitioner(referral.acceptedBy.therapistId)];
  if (referral.therapistId) return [practitioner(referral.therapistId)];
  if (referral.practiceId) return [organization(referral.practiceId)];
  return [];
}

/**
 * CPT 97124 unless the order names another (SPEC §16). The codes ordered are kept with the
 * insurance, of which a therapist deciding on the order sees the payer only (§14.8): for them the
 * code is said in words, rather than a 97124 that may not be what was ordered.
 */
function codeOf(referral: Referral) {
  const insurance = referral.insurance;
  if (insurance && !('memberId' in insurance)) return { text: 'Medical massage; the CPT code ordered is shown once your side accepts' };
  const code = (insurance && 'cptCodes' in insurance && insurance.cptCodes?.[0]) || defaultCptCode;
  return { coding: [{ system: systems.cpt, code }] };
}

export function toServiceRequest(referral: Referral) {
  const limitedPatient = containedPatient(referral);
  const subject = limitedPatient ? { reference: `#${containedPatientId}` } : patient(referral.patientId!);
  const coverage = containedCoverage(referral, subject);
  const contained = [limitedPatient, coverage].filter((resource) => resource !== undefined);
  const performer = performers(referral);
  const noteList = notes(referral);
  return {
    resourceType: 'ServiceRequest',
    id: referral.id,
    meta: metaOf(referral),
    ...(contained.length > 0 && { contained }),
    extension: [{ url: extensions.authorizationPeriod, valuePeriod: { start: referral.startDate, end: referral.expiresOn } }],
    ...(referral.continuesReferralId && { replaces: [serviceRequest(referral.continuesReferralId)] }),
    status: serviceRequestStatusOf(referral),
    intent: 'order',
    priority: referral.priority,
    code: codeOf(referral),
    orderDetail: referral.techniques.map((technique) => ({ coding: [{ system: systems.technique, code: technique }] })),
    quantityQuantity: { value: referral.visitsAuthorized, unit: 'visits' },
    subject,
    occurrenceTiming: {
      repeat: {
        boundsDuration: { value: referral.durationWeeks, unit: 'wk', system: systems.ucum, code: 'wk' },
        frequency: referral.frequencyPerWeek,
        period: 1,
        periodUnit: 'wk',
        duration: referral.sessionMinutes,
        durationUnit: 'min',
      },
    },
    authoredOn: referral.signature?.signedAt ?? referral.createdAt,
    requester: practitioner(referral.prescriberId),
    ...(performer.length > 0 ? { performer } : referral.network ? { performerType: { text: 'A therapist of the network who matches the offer' } } : {}),
    reasonCode: referral.diagnoses.map((diagnosis, index) => ({
      coding: [{ system: systems.icd10cm, code: diagnosis.code, display: diagnosis.display }],
      text: index === 0 ? referral.reason : diagnosis.display,
    })),
    ...(coverage && { insurance: [{ reference: `#${containedCoverageId}` }] }),
    bodySite: referral.bodyRegions.map((region) => ({ coding: [{ system: systems.bodyRegion, code: region }] })),
    ...(noteList.length > 0 && { note: noteList }),
  };
}
