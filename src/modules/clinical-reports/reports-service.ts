// Reports to the prescriber (SPEC §14.3): the accepting therapist submits them (the referrals module
// holds the referral's lock, restarts the cadence and completes the referral on discharge); the
// prescriber signs them; both sides read them.
import { validationFailed, conflict, notFound, type FieldProblem } from '../../lib/errors.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import { visitMeasurements } from '../progress-reports/index.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { ClinicalReportsRepository, toReport } from './clinical-reports-repository.js';
import { reportFacts } from './report-facts.js';
import type { CreateReport, Report, SignReport } from './schemas.js';

const evaluationOnly = ['findings', 'baseline', 'plannedFrequencyPerWeek', 'plannedDurationWeeks', 'techniques'] as const;

/** What each signer attests; kept with the signature, so later wording never rewrites it. */
function attestationOf(method: 'physician' | 'ehr_attested', kind: Report['kind']): string {
  const what = kind === 'evaluation' ? 'this evaluation and certify its plan of care' : `this ${kind} report`;
  return method === 'physician'
    ? `I reviewed ${what}, and sign it.`
    : `The office's EHR attests that the prescriber reviewed ${what} and signed it in the EHR.`;
}

/** The rules that depend on the kind of report, naming each offending field. */
function kindProblems(input: CreateReport): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const evaluation = input.kind === 'evaluation';
  for (const field of evaluationOnly) {
    if (evaluation && input[field] === undefined) problems.push({ field, message: 'is required in an evaluation (the plan of care)' });
    if (!evaluation && input[field] !== undefined) problems.push({ field, message: 'is only taken in an evaluation' });
  }
  if (input.kind === 'discharge' && input.reason === undefined) problems.push({ field: 'reason', message: 'is required in a discharge report' });
  if (input.kind !== 'discharge' && input.reason !== undefined) problems.push({ field: 'reason', message: 'is only taken in a discharge report' });
  (input.baseline?.outcomeMeasures ?? []).forEach((measure, index) => {
    if (measure.instrument === 'other' && !measure.name) problems.push({ field: `baseline.outcomeMeasures[${index}].name`, message: 'is required when instrument is other' });
  });
  return problems;
}

export class ReportsService {
  readonly reports: ClinicalReportsRepository;

  constructor(
    db: ConstructorParameters<typeof ClinicalReportsRepository>[0],
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
  ) {
    this.reports = new ClinicalReportsRepository(db);
  }

  async submit(context: AuditContext, principal: Principal, referralId: string, input: CreateReport, ifMatch?: string): Promise<Report> {
    await this.referrals.reporting.assertTreating(principal, referralId);
    const problems = kindProblems(input);
    if (problems.length > 0) throw validationFailed(problems);

    return this.units.run(context, (unit) =>
      this.referrals.reporting.submit(unit, principal, referralId, { kind: input.kind, dischargeReason: input.reason, ifMatch }, {
        write: async (referral) => {
          const { tx } = unit;
          const [visits, baseline] = await Promise.all([
            visitMeasurements(tx, referralId),
            input.kind === 'evaluation' ? input.baseline! : this.reports.latestBaseline(referralId, tx),
          ]);
          const row = await this.reports.insert(
            {
              referralId,
              kind: input.kind,
              authorId: principal.id,
              summary: input.summary,
              goals: input.goals,
              recommendation: input.recommendation,
              findings: input.findings ?? null,
              baseline: input.baseline ?? null,
              plannedFrequencyPerWeek: input.plannedFrequencyPerWeek ?? null,
              plannedDurationWeeks: input.plannedDurationWeeks ?? null,
              techniques: input.techniques ?? null,
              dischargeReason: input.reason ?? null,
              facts: reportFacts(referral, visits, baseline),
            },
            tx,
          );
          unit.audit({ action: 'report.create', httpStatus: 201, resourceType: 'report', resourceId: row.id, patientId: referral.patientId });
          return toReport(row, null);
        },
      }),
    );
  }

  async sign(context: AuditContext, principal: Principal, referralId: string, reportId: string, input: SignReport): Promise<Report> {
    const { referral, method } = await this.referrals.reporting.assertPrescriber(principal, referralId);
    const report = await this.reports.find({ referralId, reportId });
    if (!report) throw notFound('report', reportId, 'Report', referral.patientId);
    return this.units.run(context, async (unit) => {
      await this.referrals.reporting.sign(unit, principal, referralId, reportId, async () => {
        const signature = await this.reports.insertSignature(
          { reportId, signedBy: referral.prescriberId, method, attestation: attestationOf(method, report.kind), comment: input.comment ?? null },
          unit.tx,
        );
        if (!signature) throw conflict('already-signed', 'The report was already signed', { currentStatus: referral.status });
      });
      unit.audit({ action: 'report.sign', httpStatus: 200, resourceType: 'report', resourceId: reportId, patientId: referral.patientId });
      return (await this.reports.find({ referralId, reportId }, unit.tx))!;
    });
  }
}
