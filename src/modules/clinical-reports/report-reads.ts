// Reading reports to the prescriber for other modules (the FHIR façade) and the /v1 routes: pages,
// one report by its id, and the PDF a physician files. Access is the caller's to check, by the
// report's referral (app.referrals.readCare), as the /v1 routes do.
import type { Executor } from '../../db/database.js';
import { todayUtc } from '../../lib/dates.js';
import type { Principal } from '../auth/policy.js';
import { displayNames } from '../network/index.js';
import { ageInYears, identifiesPatient } from '../referrals/index.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { ClinicalReportsRepository } from './clinical-reports-repository.js';
import { renderReportPdf } from './report-pdf.js';
import type { Report } from './schemas.js';

/** A page of a referral's reports, oldest first, after the [created µs, id] key: up to limit + 1, to tell a next page. */
export async function reportsOf(executor: Executor, referralId: string, page: { after?: readonly [string, string] | undefined; limit: number }) {
  return new ClinicalReportsRepository(executor).list({ referralId, after: page.after, limit: page.limit });
}

/** The reports of these referrals (id and kind), by referral, oldest first: one query for a page of referrals. */
export async function reportsByReferral(executor: Executor, referralIds: readonly string[]): Promise<Map<string, { id: string; kind: string }[]>> {
  const byReferral = new Map<string, { id: string; kind: string }[]>();
  for (const row of await new ClinicalReportsRepository(executor).idsOf(referralIds)) {
    byReferral.set(row.referralId, [...(byReferral.get(row.referralId) ?? []), { id: row.id, kind: row.kind }]);
  }
  return byReferral;
}

/** A report by its id, whichever referral it belongs to (its referralId says which, to check access by). */
export async function reportById(executor: Executor, reportId: string): Promise<Report | undefined> {
  return new ClinicalReportsRepository(executor).findById(reportId);
}

type Care = Awaited<ReturnType<ReferralWorkflow['readCare']>>;

/**
 * The report as the PDF a physician files in the chart: the parties by name, and the patient as the
 * viewer may know them. A colleague of the accepting therapist takes part in the care but is not told
 * who the patient is (SPEC §14.8): their copy names the patient by age and sex only.
 */
export async function reportPdf(executor: Executor, report: Report, { referral, patient }: Care, viewer: Principal): Promise<Buffer> {
  const names = await displayNames(executor, {
    userIds: [referral.prescriberId, report.authorId],
    organizationIds: [referral.organizationId, ...(referral.acceptedPracticeId ? [referral.acceptedPracticeId] : [])],
  });
  return renderReportPdf(report, {
    patient: identifiesPatient(viewer, referral)
      ? `${patient.givenName} ${patient.familyName}, born ${patient.birthDate}`
      : `${ageInYears(patient.birthDate, todayUtc())} years, ${patient.sex} (not identified to you before your side accepts; SPEC §14.8)`,
    prescriber: names.get(referral.prescriberId) ?? referral.prescriberId,
    therapist: names.get(report.authorId) ?? report.authorId,
    practice: (referral.acceptedPracticeId && names.get(referral.acceptedPracticeId)) ?? '',
    office: names.get(referral.organizationId) ?? '',
    diagnoses: referral.diagnoses,
  });
}
