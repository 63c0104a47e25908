// What waits for the viewer's side to acknowledge (SPEC §14.10), as a column of the referral read: an
// urgent message is acknowledged by the side that did not write it, an adverse event by the office.
// It reads the tables of the thread (messages, adverse_events), which other modules write.
import { sql, type SQL } from 'drizzle-orm';
import { adverseEvents, messages, referrals } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';
import { sideOf } from './access.js';
import { identifiedBy } from './minimum-necessary.js';

/** Urgent messages of the referral not yet acknowledged, written by the office (or by the therapist side). */
const urgentMessagesBy = (office: boolean) => sql`(select count(*)::int from ${messages}
  where ${messages.referralId} = ${referrals.id} and ${messages.priority} = 'urgent' and ${messages.acknowledgedAt} is null
  and ${messages.authorOrganizationId} ${office ? sql`=` : sql`<>`} ${referrals.organizationId})`;

export function unacknowledgedUrgentFor(viewer: Principal): SQL {
  const side = sideOf(viewer);
  if (side === 'office') {
    return sql`(${urgentMessagesBy(false)} + (select count(*)::int from ${adverseEvents}
      where ${adverseEvents.referralId} = ${referrals.id} and ${adverseEvents.acknowledgedAt} is null))`;
  }
  // On the therapist side only the care team acknowledges: an offer's recipients and a colleague of
  // the accepting therapist are not the ones the office is waiting for.
  if (side === 'practice') return sql`(case when ${identifiedBy(viewer)} then ${urgentMessagesBy(true)} else 0 end)`;
  return sql`0`;
}
