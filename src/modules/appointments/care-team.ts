// Who takes part in a referral's appointments: its care team, the callers who may know who the
// patient is (SPEC §14.8). An open offer's recipients, a targeted practice before it accepts and a
// colleague of the accepting therapist only see the order, and an appointment tells when and where
// the patient is, so to them the appointments are as absent as any record they may not see.
import type { Principal } from '../auth/policy.js';
import { identifiesPatient } from '../referrals/index.js';

type Acceptance = Parameters<typeof identifiesPatient>[1];

/**
 * Either side of the care team: the office, the accepting therapist, the accepting practice's admins
 * and API clients. Asked only of a referral the caller already takes part in (the referrals module's
 * rule has said so), which is what makes any office caller here the prescribing office.
 */
export const inCareTeam = (principal: Principal, referral: Acceptance): boolean => identifiesPatient(principal, referral);

/** The therapist side of the care team, who book appointments and record what became of them. */
export const booksFor = (principal: Principal, referral: Acceptance): boolean =>
  principal.organizationKind === 'therapy_practice' && identifiesPatient(principal, referral);
