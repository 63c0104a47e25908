// A referral's visits as the fields of a CMS-1500 claim: what the referral, its patient, the
// people and places on file and the visit notes' billing lines say, put in the form's terms.
import type { BilledVisit, Person, Practice } from './billing-repository.js';
import {
  diagnosisLetters,
  icd10Indicator,
  officePlaceOfService,
  referringProviderQualifier,
  type Claim,
  type ServiceLine,
} from './schemas.js';

export interface ClaimSources {
  referral: {
    id: string;
    prescriberId: string;
    acceptedTherapistId: string | null;
    diagnoses: { code: string; display: string }[];
    insurance: { payer: string; memberId: string; groupNumber?: string | undefined; authorizationNumber?: string | undefined } | null;
  };
  patient: { givenName: string; familyName: string; birthDate: string; sex: Claim['patient']['sex'] };
  people: Map<string, Person>;
  practice: Practice | undefined;
  visits: BilledVisit[];
}

/** Users are never deleted (notes and referrals reference them); should one be missing, the claim says nothing rather than something invented. */
const personOf = (people: Map<string, Person>, id: string): Person => people.get(id) ?? { id, name: '', npi: null };

export function buildClaim({ referral, patient, people, practice, visits }: ClaimSources): Claim {
  const prescriber = personOf(people, referral.prescriberId);
  const serviceLines: ServiceLine[] = visits
    .flatMap((visit) => visit.billing.map((line) => ({ visit, line })))
    .map(({ visit, line }, index) => ({
      lineNumber: index + 1,
      visitNumber: visit.visitNumber,
      progressReportId: visit.id,
      dateOfService: visit.visitDate,
      placeOfService: officePlaceOfService,
      cpt: line.cpt,
      modifiers: line.modifiers ?? [],
      // Pointers were checked against the diagnoses when the note was posted, and an order's diagnoses never change.
      diagnosisPointers: (line.diagnosisPointers ?? []).map((pointer) => diagnosisLetters[pointer - 1]!),
      units: line.units,
      renderingProviderNpi: personOf(people, visit.authorId).npi,
    }));
  return {
    referralId: referral.id,
    patient: { familyName: patient.familyName, givenName: patient.givenName, birthDate: patient.birthDate, sex: patient.sex },
    insured: referral.insurance
      ? { payer: referral.insurance.payer, memberId: referral.insurance.memberId, groupNumber: referral.insurance.groupNumber ?? null }
      : null,
    referringProvider: { qualifier: referringProviderQualifier, ...prescriber },
    priorAuthorizationNumber: referral.insurance?.authorizationNumber ?? null,
    icdIndicator: icd10Indicator,
    diagnoses: referral.diagnoses.map((diagnosis, index) => ({
      letter: diagnosisLetters[index]!,
      code: diagnosis.code,
      formCode: diagnosis.code.replace('.', ''),
      display: diagnosis.display,
    })),
    renderingProvider: referral.acceptedTherapistId ? personOf(people, referral.acceptedTherapistId) : null,
    billingProvider: practice ? { id: practice.id, name: practice.name, npi: practice.npi, address: practice.address } : null,
    serviceLines,
    totals: { lines: serviceLines.length, units: serviceLines.reduce((sum, line) => sum + line.units, 0) },
  };
}
