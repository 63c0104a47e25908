// What the mappers of a referral's thread (messages, visits, reports, documents) need to know of
// the referral, and whether the caller may know who its patient is (SPEC §14.8): a resource names
// its subject only to those who may.
import type { Principal } from '../../auth/policy.js';
import { identifiesPatient, type Referral } from '../../referrals/index.js';

export interface ThreadContext {
  referralId: string;
  taskId: string;
  patientId: string;
  /** The prescribing office. */
  officeId: string;
  /** The practice side: the accepting practice, else the one the referral was sent to. */
  practiceId: string | null;
  /** Whether the caller may know who the patient is. */
  identified: boolean;
}

/** The referral as the referrals module's row (readParticipating, readCare). */
export interface ReferralRecord {
  id: string;
  taskId: string;
  patientId: string;
  organizationId: string;
  targetPracticeId: string | null;
  acceptedTherapistId: string | null;
  acceptedPracticeId: string | null;
}

export function contextOfRecord(principal: Principal, referral: ReferralRecord): ThreadContext {
  return {
    referralId: referral.id,
    taskId: referral.taskId,
    patientId: referral.patientId,
    officeId: referral.organizationId,
    practiceId: referral.acceptedPracticeId ?? referral.targetPracticeId,
    identified: identifiesPatient(principal, referral),
  };
}

/** The referral as the caller's view of it (app.referrals.search), with its Task and patient. */
export function contextOfView({ referral, taskId, patientId }: { referral: Referral; taskId: string; patientId: string }): ThreadContext {
  return {
    referralId: referral.id,
    taskId,
    patientId,
    officeId: referral.organizationId,
    practiceId: referral.acceptedBy?.practiceId ?? referral.practiceId,
    identified: referral.patientId !== null,
  };
}
