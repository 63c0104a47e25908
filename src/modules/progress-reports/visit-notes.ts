// Posting a visit note: the referrals module records the visit (numbered under the referral's row
// lock, refused when the referral cannot be treated, moving it along its lifecycle); this module
// writes the note itself and announces it.
import { validationFailed, type FieldProblem } from '../../lib/errors.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import { todayUtc } from '../../lib/dates.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { toProgressReport, type ProgressReportsRepository } from './progress-reports-repository.js';
import type { CreateProgressReport, ProgressReport } from './schemas.js';

/** Billing lines whose diagnosis pointers go past the referral's diagnoses, named `billing[i].diagnosisPointers`. */
function pointerProblems(input: CreateProgressReport, diagnoses: number): FieldProblem[] {
  return (input.billing ?? []).flatMap((line, index) =>
    (line.diagnosisPointers ?? []).some((pointer) => pointer > diagnoses)
      ? [{ field: `billing[${index}].diagnosisPointers`, message: `must point into the referral's ${diagnoses} diagnos${diagnoses === 1 ? 'is' : 'es'} (1–${diagnoses})` }]
      : [],
  );
}

export class VisitNotes {
  constructor(
    private readonly reports: ProgressReportsRepository,
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
  ) {}

  async post(context: AuditContext, principal: Principal, referralId: string, input: CreateProgressReport): Promise<ProgressReport> {
    await this.referrals.visits.assertTreats(principal, referralId);
    const problems: FieldProblem[] = [];
    if (input.visitDate > todayUtc()) problems.push({ field: 'visitDate', message: 'must not be in the future' });
    (input.outcomeMeasures ?? []).forEach((measure, index) => {
      if (measure.instrument === 'other' && !measure.name) problems.push({ field: `outcomeMeasures[${index}].name`, message: 'is required when instrument is other' });
    });
    if (problems.length > 0) throw validationFailed(problems);

    return this.units.run(context, (unit) =>
      this.referrals.visits.record(unit, principal, referralId, input, {
        write: async (referral, visitNumber) => {
          // Checked against the referral as locked: the list the pointers index is the one the claim shows.
          const pointers = pointerProblems(input, referral.diagnoses.length);
          if (pointers.length > 0) throw validationFailed(pointers);
          const report = await this.reports.insert({ referralId, visitNumber, authorId: principal.id, input }, unit.tx);
          unit.audit({ action: 'progress_report.create', httpStatus: 201, resourceType: 'progress_report', resourceId: report.id, patientId: referral.patientId });
          return toProgressReport(report);
        },
        announce: (referral, report) =>
          unit.emit({
            type: 'progress_report.created',
            referral,
            resource: { type: 'progress_report', id: report.id, url: `${apiPrefix}/referrals/${referralId}/progress-reports` },
          }),
      }),
    );
  }
}
