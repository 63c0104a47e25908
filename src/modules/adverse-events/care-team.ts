// Who does what with a referral's adverse events: the therapist side of the care team reports them,
// the office acknowledges them, both sides of the care team read them. Asked only of a referral the
// caller takes part in (the referrals module's rule has said so), which is what makes any office
// caller here the prescribing office.
import { conflict } from '../../lib/errors.js';
import type { ReferralStatus } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';
import { identifiesPatient } from '../referrals/index.js';

type Acceptance = Parameters<typeof identifiesPatient>[1];

/** Either side of the care team: the office, the accepting therapist, the accepting practice's admins and API clients. */
export const inCareTeam = (principal: Principal, referral: Acceptance): boolean => identifiesPatient(principal, referral);

/** The therapist side of the care team, who treat the patient and so report what went wrong. */
export const reportsFor = (principal: Principal, referral: Acceptance): boolean =>
  principal.organizationKind === 'therapy_practice' && identifiesPatient(principal, referral);

/** The office acknowledges: it is the prescriber's side that must hear of a reaction to what it ordered. */
export const acknowledges = (principal: Principal): boolean => principal.organizationKind === 'physician_office';

/** Why no adverse event is reported on the referral now, as a 409 naming its status; undefined while it is treated. */
export function reportRefusal(referral: { status: ReferralStatus }) {
  if (referral.status === 'accepted' || referral.status === 'in_progress') return undefined;
  const refusals: Partial<Record<ReferralStatus, [string, string]>> = {
    completed: ['referral-completed', 'The referral is completed; tell the prescriber in a message'],
    cancelled: ['referral-cancelled', 'The referral was cancelled'],
    expired: ['referral-expired', 'The referral has expired'],
  };
  const [code, message] = refusals[referral.status] ?? ['not-accepted', 'The referral has not been accepted yet'];
  return conflict(code, message, { currentStatus: referral.status });
}
