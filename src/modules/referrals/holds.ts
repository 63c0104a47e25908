// Treatment on hold (SPEC §14.10): a severe adverse event that paused treatment holds the referral,
// so no visit is recorded, until the prescriber resumes it (or cancels it, which keeps the hold as
// history). The adverse-events module reports the event and asks for the hold in its own unit of
// work, under the referral's row lock it already holds; the resume is a move of the prescriber's.
import { conflict, notFound } from '../../lib/errors.js';
import { assertIfMatch } from '../../lib/etag.js';
import type { UnitOfWork, UnitsOfWork } from '../../lib/unit-of-work.js';
import type { Principal } from '../auth/policy.js';
import { actorOf } from './actors.js';
import type { MoveRequest } from './referral-workflow.js';
import { toReferral, type ReferralRow, type ReferralsRepository } from './referrals-repository.js';
import type { Referral, ResumeReferral } from './schemas.js';
import { prescriberOnly, signingMethodOf } from './signatures.js';

export class Holds {
  constructor(
    private readonly referrals: ReferralsRepository,
    private readonly units: UnitsOfWork,
  ) {}

  /**
   * Puts the referral on hold because of `adverseEventId`, in the caller's unit of work, which must
   * hold the referral's row lock (`referral` is the row read under it). A referral already on hold
   * stays held by the event that paused it first: the prescriber resumes once, having seen them all.
   */
  async hold(unit: UnitOfWork, principal: Principal, referral: ReferralRow, adverseEventId: string): Promise<ReferralRow> {
    if (referral.holdSince) return referral;
    const updated = await this.referrals.update(referral.id, { holdSince: new Date(), holdAdverseEventId: adverseEventId }, unit.tx);
    await this.referrals.appendEvent(
      { referralId: referral.id, action: 'hold', fromStatus: referral.status, toStatus: referral.status, version: updated.version, actor: actorOf(principal), changes: { adverseEventId } },
      unit.tx,
    );
    return updated;
  }

  /**
   * The prescriber (or the office's EHR that vouches for them, as for signing) lifts the hold. The
   * office's other members get 403, anyone else the outsider's 404.
   */
  async resume({ context, principal, referralId, ifMatch }: MoveRequest, body: ResumeReferral): Promise<Referral> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    if (!visible || principal.organizationId !== visible.referral.organizationId) {
      throw notFound('referral', referralId, 'Referral', visible?.referral.patientId ?? (await this.referrals.patientIdOf(referralId)));
    }
    if (!signingMethodOf(principal, visible.referral.prescriberId)) throw prescriberOnly('resume treatment after an adverse event', visible.referral);
    return this.units.run(context, async (unit) => {
      const { referral: current, patient } = await this.referrals.lock(referralId, unit.tx);
      assertIfMatch(ifMatch, current.version);
      if (!current.holdSince) throw conflict('not-on-hold', 'The referral is not on hold; there is nothing to resume', { currentStatus: current.status });
      const updated = await this.referrals.update(referralId, { holdSince: null, holdAdverseEventId: null }, unit.tx);
      await this.referrals.appendEvent(
        {
          referralId,
          action: 'resume',
          fromStatus: current.status,
          toStatus: current.status,
          version: updated.version,
          actor: actorOf(principal),
          reason: body.comment ?? null,
          changes: { adverseEventId: current.holdAdverseEventId, heldSince: current.holdSince.toISOString() },
        },
        unit.tx,
      );
      unit.emit({ type: 'referral.resumed', referral: updated });
      unit.audit({ action: 'referral.resume', httpStatus: 200, resourceType: 'referral', resourceId: referralId, patientId: current.patientId });
      return toReferral(updated, patient, principal, visible.thread);
    });
  }
}
