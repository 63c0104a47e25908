// Who made a move, as the referral's history records it.
import type { Principal } from '../auth/policy.js';
import type { EventActor } from './referrals-repository.js';

export function actorOf(principal: Principal): EventActor {
  return { type: principal.kind, id: principal.id, organizationId: principal.organizationId };
}
