// A new course of care continuing an earlier one (SPEC §14.4): the same office and patient, and the
// earlier course over; both show the link, and a course is continued once (the link is written in
// the creating transaction, guarded by the earlier row).
import { conflict, validationFailed } from '../../lib/errors.js';
import type { UnitOfWork } from '../../lib/unit-of-work.js';
import type { Principal } from '../auth/policy.js';
import { actorOf } from './actors.js';
import type { ReferralRow, ReferralsRepository } from './referrals-repository.js';
import type { CreateReferral } from './schemas.js';

function alreadyContinued(by?: string) {
  return conflict('already-continued', `The course was already continued${by ? ` by referral ${by}` : ''}; continue that one instead`);
}

export class Continuations {
  constructor(private readonly referrals: ReferralsRepository) {}

  /** The earlier course a new referral continues (SPEC §14.4): the same office and patient, and over. */
  async continuable(officeId: string, input: CreateReferral): Promise<ReferralRow> {
    const earlier = await this.referrals.findOfOffice({ organizationId: officeId, id: input.continuesReferralId! });
    if (!earlier) throw validationFailed([{ field: 'continuesReferralId', message: 'is not a referral of your office' }]);
    if (input.patientId !== earlier.patientId) {
      throw validationFailed([{ field: 'continuesReferralId', message: 'is a course of another patient; give that course\'s patientId' }]);
    }
    if (earlier.status !== 'completed' && earlier.status !== 'expired') {
      throw validationFailed([{ field: 'continuesReferralId', message: `must be a completed or expired course; this one is ${earlier.status}` }]);
    }
    if (earlier.continuedByReferralId) throw alreadyContinued(earlier.continuedByReferralId);
    return earlier;
  }

  /** Links the earlier course to the new one, in the creating transaction; a course is continued once. */
  async link(unit: UnitOfWork, principal: Principal, earlier: ReferralRow, continuedBy: string): Promise<void> {
    const linked = await this.referrals.markContinued({ id: earlier.id, continuedBy }, unit.tx);
    if (!linked) throw alreadyContinued();
    await this.referrals.appendEvent(
      { referralId: earlier.id, action: 'continue', fromStatus: linked.status, toStatus: linked.status, version: linked.version, actor: actorOf(principal), changes: { continuedByReferralId: continuedBy } },
      unit.tx,
    );
  }
}
