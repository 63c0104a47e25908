// Report cadence (SPEC §14.3): a report to the prescriber is due every reportEveryVisits visits
// after the last visit a report covered; a visit past that point without a report makes it overdue.
import type { ReferralStatus } from '../../lib/vocabulary.js';

interface Cadence {
  status: ReferralStatus;
  visitsUsed: number;
  reportEveryVisits: number;
  lastReportedVisit: number;
}

/** Only a referral still being treated can be late with a report. */
const treated: readonly ReferralStatus[] = ['accepted', 'in_progress'];

export function reportDueOf(referral: Cadence): { afterVisit: number; overdue: boolean } {
  const afterVisit = referral.lastReportedVisit + referral.reportEveryVisits;
  return { afterVisit, overdue: treated.includes(referral.status) && referral.visitsUsed > afterVisit };
}

/** Whether this visit is the one that made the report overdue: told once, by the visit that crossed the line. */
export function becameOverdue(referral: Cadence): boolean {
  return reportDueOf(referral).overdue && referral.visitsUsed === referral.lastReportedVisit + referral.reportEveryVisits + 1;
}
