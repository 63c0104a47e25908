// Who takes part in a referral, for whoever announces it (webhooks): the office, the practice side,
// and the practices holding an open offer. The one definition; access.ts is the same rule as SQL.
import { and, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { referralOffers, users } from '../../db/schema.js';
import type { ReferralFacts } from '../../lib/domain-events.js';

export async function participantsOf(referral: ReferralFacts, tx: Executor): Promise<string[]> {
  const organizations = new Set([referral.organizationId]);
  if (referral.targetPracticeId) organizations.add(referral.targetPracticeId);
  if (referral.acceptedPracticeId) organizations.add(referral.acceptedPracticeId);
  if (referral.targetKind === 'network' && referral.status === 'sent') {
    const offered = await tx
      .selectDistinct({ practiceId: users.organizationId })
      .from(referralOffers)
      .innerJoin(users, eq(users.id, referralOffers.therapistId))
      .where(and(eq(referralOffers.referralId, referral.id), isNull(referralOffers.declinedAt)));
    for (const row of offered) if (row.practiceId) organizations.add(row.practiceId);
  }
  return [...organizations];
}
