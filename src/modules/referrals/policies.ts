// Who may call the routes about a referral, shared by every module whose routes hang off one.
import { everyone } from '../auth/policy.js';

/** Reading a referral and what belongs to it: anyone signed in (access is per record), clients with referrals:read. */
export const referralReadPolicy = { roles: everyone, clientScope: 'referrals:read' } as const;
/**
 * What only the prescriber orders or signs (SPEC §14.1): physicians, or the office's EHR vouching
 * for them. A client acts as office staff, which is no prescriber, so its scope alone admits it.
 */
export const prescriberPolicy = { roles: ['physician'], clientScope: 'referrals:sign', clientsByScopeAlone: true } as const;
