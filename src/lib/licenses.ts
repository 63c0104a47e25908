// A therapist's license as the network relies on it (SPEC §14.2): verified by a network admin and
// not past its expiry date. One rule, used in SQL (directory, open offers) and in code (targeting,
// accept), so the places that match therapists never disagree about who may treat.
import { sql, type SQL } from 'drizzle-orm';
import { therapistProfiles } from '../db/schema.js';
import { todayUtc } from './dates.js';
import { conflict } from './errors.js';

export const licenseProblemKinds = ['expired', 'unverified'] as const;
export type LicenseProblem = (typeof licenseProblemKinds)[number];

export interface LicenseState {
  licenseExpiresOn: string;
  licenseVerifiedAt: Date | null;
}

/** Why a license cannot be relied on today; empty when it can. A license is valid through its expiry date. */
export function licenseProblems(license: LicenseState, today = todayUtc()): LicenseProblem[] {
  return [
    ...(license.licenseExpiresOn < today ? (['expired'] as const) : []),
    ...(license.licenseVerifiedAt === null ? (['unverified'] as const) : []),
  ];
}

/** The SQL form of the same rule, on therapist_profiles. */
export function licenseIsValid(): SQL {
  return sql`(${therapistProfiles.licenseVerifiedAt} is not null and ${therapistProfiles.licenseExpiresOn} >= (now() at time zone 'utc')::date)`;
}

/** The 409 a therapist without a valid license gets (or a referral naming them), saying which problems. */
export function licenseInvalid(who: string, license: LicenseState, problems: readonly LicenseProblem[]) {
  const said = problems.map((problem) =>
    problem === 'expired' ? `expired on ${license.licenseExpiresOn}` : 'has not been verified by the network',
  );
  return conflict('license-invalid', `${who} license ${said.join(' and ')}; a network admin verifies a current license first`, {
    reasons: [...problems],
  });
}
