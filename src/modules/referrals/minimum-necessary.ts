// Minimum necessary before acceptance (SPEC §14.8): until a referral is accepted, the practice side
// sees the clinical order but not who the patient is; acceptance is what earns the full record.
import { eq, sql, type SQL } from 'drizzle-orm';
import { referrals } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';
import { sideOf } from './access.js';
import type { LimitedInsurance, LimitedPatient, PatientSummary } from './schemas.js';

type Acceptance = { acceptedTherapistId: string | null; acceptedPracticeId: string | null };

/**
 * Whether the caller, who may already see the referral, may also know who its patient is: the
 * office always; on the practice side only the accepting therapist, and the admins and API
 * clients of the accepting practice. Everyone else there (an offer's recipients, the targeted
 * practice or therapist before they accept, a colleague of the acceptor) only needs the order to
 * decide, so that is all they get.
 */
export function identifiesPatient(principal: Principal, referral: Acceptance): boolean {
  const side = sideOf(principal);
  if (side === 'office') return true;
  if (side !== 'practice') return false;
  if (principal.role === 'therapist') return referral.acceptedTherapistId === principal.id;
  return referral.acceptedPracticeId !== null && referral.acceptedPracticeId === principal.organizationId;
}

/**
 * identifiesPatient as SQL, for filters that would otherwise tell a caller which referrals share a
 * patient (GET /v1/referrals?patientId= matching an open offer would name its patient).
 */
export function identifiedBy(principal: Principal): SQL {
  const side = sideOf(principal);
  if (side === 'office') return sql`true`;
  if (side !== 'practice') return sql`false`;
  if (principal.role === 'therapist') return eq(referrals.acceptedTherapistId, principal.id);
  return eq(referrals.acceptedPracticeId, principal.organizationId!);
}

/** Whole years from a birth date (YYYY-MM-DD) to a day (YYYY-MM-DD); one born on 29 February ages on 1 March in other years. */
export function ageInYears(birthDate: string, on: string): number {
  const years = Number(on.slice(0, 4)) - Number(birthDate.slice(0, 4));
  return on.slice(5) < birthDate.slice(5) ? years - 1 : years;
}

/** The patient without name, birth date, identifiers or contact. */
export function limitedPatient(patient: Pick<PatientSummary, 'birthDate' | 'sex'>, today: string): LimitedPatient {
  // No patient address is kept (SPEC §2), so there is no city to give yet.
  return { limited: true, ageYears: ageInYears(patient.birthDate, today), sex: patient.sex, city: null };
}

/** The insurance without member, group or authorization numbers. */
export function limitedInsurance(insurance: { payer: string } | null): LimitedInsurance | null {
  return insurance ? { payer: insurance.payer } : null;
}
