// Who acknowledges an urgent message (SPEC §14.10): the side that did not write it. The office
// acknowledges the therapist side's; the therapist side of the care team (the accepting therapist,
// the accepting practice's admins and API clients) the office's. The author's own side is told why
// not (409 own-side) rather than 404: the message is in a thread it reads, so hiding it hides nothing.
import { conflict } from '../../lib/errors.js';
import type { Principal } from '../auth/policy.js';
import { identifiesPatient } from '../referrals/index.js';
import type { MessageRow } from './messages-repository.js';

type ThreadReferral = Parameters<typeof identifiesPatient>[1] & { organizationId: string; status: string };

const atOffice = (principal: Principal) => principal.organizationKind === 'physician_office';

/**
 * Someone in the thread who is outside the care team: a colleague of the accepting therapist reads
 * the thread but is not whom the office waits for, and gets the outsider's 404. Asked only of a
 * caller who takes part in the referral's thread.
 */
export function outsideCareTeam(principal: Principal, referral: ThreadReferral): boolean {
  return !atOffice(principal) && referral.acceptedTherapistId !== null && !identifiesPatient(principal, referral);
}

/** Why the caller cannot acknowledge this message, as a 409 that says which; undefined when they can. */
export function acknowledgementRefusal(principal: Principal, referral: ThreadReferral, message: MessageRow) {
  if (message.priority !== 'urgent') return conflict('not-urgent', 'Only an urgent message is acknowledged; this one is routine', { currentStatus: referral.status });
  const writtenByOffice = message.authorOrganizationId === referral.organizationId;
  if (writtenByOffice === atOffice(principal)) {
    return conflict('own-side', `An urgent message is acknowledged by the other side: ${writtenByOffice ? 'the therapist side of the care team' : 'the office'}`, {
      currentStatus: referral.status,
    });
  }
  // The practice it was sent to reads the thread before anyone accepts; the care team it answers for does not exist yet.
  if (!identifiesPatient(principal, referral)) {
    return conflict('not-accepted', 'The referral has not been accepted yet; the accepting therapist side acknowledges the office\'s urgent messages', { currentStatus: referral.status });
  }
  return undefined;
}
