// Who a referral goes to: exactly one of a therapist, a practice or an open network offer (SPEC §3).
import type { Executor } from '../../db/database.js';
import { licenseInvalid, licenseProblems } from '../../lib/licenses.js';
import type { ReferralTargetKind } from '../../lib/vocabulary.js';
import { conflict, validationFailed, type FieldProblem } from '../../lib/errors.js';
import type { ReferralsRepository } from './referrals-repository.js';
import type { NetworkOffer, NetworkTarget } from './schemas.js';

export interface TargetInput {
  therapistId?: string | undefined;
  practiceId?: string | undefined;
  network?: NetworkTarget | undefined;
}

export interface ResolvedTarget {
  targetKind: ReferralTargetKind;
  targetTherapistId: string | null;
  targetPracticeId: string | null;
  networkOffer: NetworkOffer | null;
}

/** Problems with the target fields of a body, before any lookup. */
export function targetShapeProblems(input: TargetInput): FieldProblem[] {
  const given = (['therapistId', 'practiceId', 'network'] as const).filter((field) => input[field] !== undefined);
  if (given.length === 1) return [];
  const message = given.length === 0 ? 'one of therapistId, practiceId and network is required' : 'give only one of therapistId, practiceId and network';
  return (given.length === 0 ? ['therapistId', 'practiceId', 'network'] : given).map((field) => ({ field, message }));
}

/**
 * Checks that the named therapist or practice can take referrals: a bad one is a 400 naming the
 * field; a therapist whose license is expired or unverified is a 409 license-invalid (SPEC §14.2).
 */
export async function resolveTarget(
  repository: ReferralsRepository,
  input: TargetInput,
  referralTechniques: NetworkOffer['techniques'],
  executor?: Executor,
): Promise<ResolvedTarget> {
  const shape = targetShapeProblems(input);
  if (shape.length > 0) throw validationFailed(shape);
  if (input.therapistId) {
    const therapist = await repository.findTherapist(input.therapistId, executor);
    if (!therapist) throw validationFailed([{ field: 'therapistId', message: 'is not an active therapist of the network' }]);
    if (!therapist.acceptingReferrals) throw validationFailed([{ field: 'therapistId', message: 'this therapist is not accepting referrals' }]);
    const problems = licenseProblems(therapist);
    if (problems.length > 0) throw licenseInvalid("The named therapist's (therapistId)", therapist, problems);
    return { targetKind: 'therapist', targetTherapistId: therapist.id, targetPracticeId: therapist.practiceId, networkOffer: null };
  }
  if (input.practiceId) {
    const practice = await repository.findPractice(input.practiceId, executor);
    if (!practice) throw validationFailed([{ field: 'practiceId', message: 'is not a therapy practice of the network' }]);
    return { targetKind: 'practice', targetTherapistId: null, targetPracticeId: practice.id, networkOffer: null };
  }
  const network = input.network!;
  return {
    targetKind: 'network',
    targetTherapistId: null,
    targetPracticeId: null,
    networkOffer: { techniques: network.techniques ?? referralTechniques, near: network.near, radiusKm: network.radiusKm },
  };
}

/** The therapists an open offer goes to, fixed when it is sent; none matching is a 409 the physician can act on. */
export async function matchOffer(repository: ReferralsRepository, offer: NetworkOffer, executor: Executor): Promise<string[]> {
  const therapistIds = await repository.matchNetwork(offer, executor);
  if (therapistIds.length === 0) {
    throw conflict(
      'no-matching-therapist',
      `No therapist with a valid license who accepts referrals offers ${offer.techniques.join(', ')} within ${offer.radiusKm} km; widen the network offer or choose a practice`,
    );
  }
  return therapistIds;
}
