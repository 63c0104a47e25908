// Documents are PHI: only the referral's care team sees or adds them (SPEC §14.6, §14.8). That is
// the office, and on the practice side the accepting therapist and the accepting practice's admins
// and API clients: exactly those who may know who the patient is. Everyone else, an offer's
// recipients and the targeted practice before acceptance included, gets the 404 of a missing
// referral, so ids tell them nothing.
import type { Executor } from '../../db/database.js';
import type { Principal } from '../auth/policy.js';
import { identifiesPatient, type ReferralWorkflow } from '../referrals/index.js';

/** The referral, if the caller is on its care team; else throws the outsider's 404 (audited as denied). */
export async function careTeamReferral(referrals: ReferralWorkflow, principal: Principal, referralId: string) {
  const referral = await referrals.readParticipating(principal, referralId);
  if (!identifiesPatient(principal, referral)) throw await referrals.notFound(referralId);
  return referral;
}

/** For a change: the referral locked in the change's transaction if the caller is on its care team, else undefined. */
export async function lockCareTeamReferral(referrals: ReferralWorkflow, principal: Principal, referralId: string, tx: Executor) {
  const referral = await referrals.lockParticipating(principal, referralId, tx);
  return referral && identifiesPatient(principal, referral) ? referral : undefined;
}
