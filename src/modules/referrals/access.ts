// Who sees which referral (SPEC §6), as SQL so that one rule serves single reads, lists and locks.
import { and, eq, isNotNull, isNull, or, sql, type SQL } from 'drizzle-orm';
import { acceptedBeyondTarget, acceptedBeyondTargetPractice, openNetworkOffer, referralOffers, referrals, users } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';

export type ReferralSide = 'office' | 'practice';

export function sideOf(principal: Principal): ReferralSide | undefined {
  if (principal.organizationKind === 'physician_office') return 'office';
  if (principal.organizationKind === 'therapy_practice') return 'practice';
  return undefined;
}

const pendingOfferTo = (therapistId: string) =>
  and(
    eq(referrals.targetKind, 'network'),
    eq(referrals.status, 'sent'),
    sql`exists (select 1 from ${referralOffers} where ${referralOffers.referralId} = ${referrals.id}
      and ${referralOffers.therapistId} = ${therapistId} and ${referralOffers.declinedAt} is null)`,
  );

const pendingOfferToPractice = (practiceId: string) =>
  and(
    eq(referrals.targetKind, 'network'),
    eq(referrals.status, 'sent'),
    sql`exists (select 1 from ${referralOffers} join ${users} on ${users.id} = ${referralOffers.therapistId}
      where ${referralOffers.referralId} = ${referrals.id} and ${users.organizationId} = ${practiceId}
      and ${referralOffers.declinedAt} is null)`,
  );

// A draft is the office's alone until it is sent, also once it is cancelled unsent.
const sent = isNotNull(referrals.sentAt);

/**
 * The therapist side that takes part in a referral: a targeted therapist, the targeted practice,
 * or whoever accepted it. An open network offer has no participants until someone accepts it.
 */
function practiceParticipation(principal: Principal): SQL | undefined {
  const practiceId = principal.organizationId!;
  if (principal.role === 'therapist') {
    return and(
      sent,
      or(
        and(eq(referrals.targetKind, 'therapist'), eq(referrals.targetTherapistId, principal.id)),
        and(eq(referrals.targetKind, 'practice'), eq(referrals.targetPracticeId, practiceId)),
        eq(referrals.acceptedTherapistId, principal.id),
      ),
    );
  }
  // Practice admins and practice API clients: everything of the practice.
  return and(sent, or(eq(referrals.targetPracticeId, practiceId), eq(referrals.acceptedPracticeId, practiceId)));
}

/** Referrals the caller may read: their office's, or their practice side's, or open offers made to them. */
export function visibleTo(principal: Principal): SQL {
  const side = sideOf(principal);
  if (side === 'office') return eq(referrals.organizationId, principal.organizationId!);
  if (side === 'practice') {
    const participation = practiceParticipation(principal)!;
    // Until someone accepts it, an open network offer is visible to the therapists it was made to
    // (and to their practice's admins and API clients, who may accept it for one of them).
    return or(participation, principal.role === 'therapist' ? pendingOfferTo(principal.id) : pendingOfferToPractice(principal.organizationId!))!;
  }
  // Network admins take part in no referral.
  return sql`false`;
}

/** Referrals whose message thread and visit notes the caller takes part in. */
export function participatingIn(principal: Principal): SQL {
  const side = sideOf(principal);
  if (side === 'office') return eq(referrals.organizationId, principal.organizationId!);
  if (side === 'practice') return practiceParticipation(principal)!;
  return sql`false`;
}

/** The offer rows still open to a therapist (not declined by them). */
export const openOfferFor = (referralId: string, therapistId: string) =>
  and(eq(referralOffers.referralId, referralId), eq(referralOffers.therapistId, therapistId), isNull(referralOffers.declinedAt));

/**
 * The referrals of visibleTo as disjoint parts, each an equality on an indexed column with the
 * sync order behind it (the partial indexes of schema.ts where a part needs one), so that the
 * sync feed merges ordered index scans instead of sorting everything the caller may see. Together
 * they hold exactly the rows of visibleTo, each once (an acceptor's practice is the one
 * accepted_practice_id names).
 */
export function visibleParts(principal: Principal): SQL[] {
  const side = sideOf(principal);
  if (side === 'office') return [eq(referrals.organizationId, principal.organizationId!)];
  if (side !== 'practice') return [];
  const practiceId = principal.organizationId!;
  if (principal.role === 'therapist') {
    return [
      and(sent, eq(referrals.targetTherapistId, principal.id), eq(referrals.targetKind, 'therapist'))!,
      and(sent, eq(referrals.targetPracticeId, practiceId), sql`${referrals.targetKind} = 'practice'`)!,
      and(sent, eq(referrals.acceptedTherapistId, principal.id), acceptedBeyondTarget(referrals))!,
      and(openNetworkOffer(referrals), sql`${referrals.acceptedTherapistId} is distinct from ${principal.id}`, pendingOfferTo(principal.id))!,
    ];
  }
  return [
    and(sent, eq(referrals.targetPracticeId, practiceId))!,
    and(sent, eq(referrals.acceptedPracticeId, practiceId), acceptedBeyondTargetPractice(referrals))!,
    and(
      openNetworkOffer(referrals),
      sql`${referrals.targetPracticeId} is distinct from ${practiceId}`,
      sql`${referrals.acceptedPracticeId} is distinct from ${practiceId}`,
      pendingOfferToPractice(practiceId),
    )!,
  ];
}
