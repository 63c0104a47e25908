// SQL for reports to the prescriber and their signatures. Both are inserted once and never updated.
import { and, asc, desc, eq, inArray } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { clinicalReportSignatures, clinicalReports } from '../../db/schema.js';
import type { Report } from './schemas.js';

type ReportRow = typeof clinicalReports.$inferSelect;
type NewReport = typeof clinicalReports.$inferInsert;
type SignatureRow = typeof clinicalReportSignatures.$inferSelect;

export function toReport(row: ReportRow, signature: SignatureRow | null): Report {
  return {
    id: row.id,
    referralId: row.referralId,
    kind: row.kind,
    authorId: row.authorId,
    summary: row.summary,
    goals: row.goals,
    recommendation: row.recommendation,
    findings: row.findings,
    baseline: row.baseline,
    planOfCare:
      row.plannedFrequencyPerWeek !== null && row.plannedDurationWeeks !== null && row.techniques !== null
        ? { plannedFrequencyPerWeek: row.plannedFrequencyPerWeek, plannedDurationWeeks: row.plannedDurationWeeks, techniques: row.techniques as NonNullable<Report['planOfCare']>['techniques'] }
        : null,
    dischargeReason: row.dischargeReason,
    ...row.facts,
    signature: signature
      ? { signedBy: signature.signedBy, signedAt: signature.signedAt.toISOString(), method: signature.method, attestation: signature.attestation, comment: signature.comment }
      : null,
    createdAt: row.createdAt.toISOString(),
  };
}

export class ClinicalReportsRepository {
  constructor(private readonly db: Executor) {}

  async insert(report: NewReport, executor: Executor): Promise<ReportRow> {
    const [row] = await executor.insert(clinicalReports).values(report).returning();
    return row!;
  }

  /** The baseline of the referral's latest evaluation, if it has one. */
  async latestBaseline(referralId: string, executor: Executor): Promise<ReportRow['baseline']> {
    const [row] = await executor
      .select({ baseline: clinicalReports.baseline })
      .from(clinicalReports)
      .where(and(eq(clinicalReports.referralId, referralId), eq(clinicalReports.kind, 'evaluation')))
      .orderBy(desc(clinicalReports.createdAt), desc(clinicalReports.id))
      .limit(1);
    return row?.baseline ?? null;
  }

  async find({ referralId, reportId }: { referralId: string; reportId: string }, executor: Executor = this.db) {
    const [row] = await executor
      .select({ report: clinicalReports, signature: clinicalReportSignatures })
      .from(clinicalReports)
      .leftJoin(clinicalReportSignatures, eq(clinicalReportSignatures.reportId, clinicalReports.id))
      .where(and(eq(clinicalReports.id, reportId), eq(clinicalReports.referralId, referralId)));
    return row && toReport(row.report, row.signature);
  }

  /** A report by its id alone, whichever referral it belongs to. */
  async findById(reportId: string) {
    const [row] = await this.db
      .select({ report: clinicalReports, signature: clinicalReportSignatures })
      .from(clinicalReports)
      .leftJoin(clinicalReportSignatures, eq(clinicalReportSignatures.reportId, clinicalReports.id))
      .where(eq(clinicalReports.id, reportId));
    return row && toReport(row.report, row.signature);
  }

  /** The reports of these referrals, oldest first: id and kind only. */
  async idsOf(referralIds: readonly string[]) {
    if (referralIds.length === 0) return [];
    return this.db
      .select({ id: clinicalReports.id, referralId: clinicalReports.referralId, kind: clinicalReports.kind })
      .from(clinicalReports)
      .where(inArray(clinicalReports.referralId, [...referralIds]))
      .orderBy(asc(clinicalReports.createdAt), asc(clinicalReports.id));
  }

  /** Oldest first; `after` is the [created time in epoch µs, id] keyset of the last one seen. */
  async list({ referralId, after, limit }: { referralId: string; after?: readonly [string, string] | undefined; limit: number }) {
    const rows = await this.db
      .select({ report: clinicalReports, signature: clinicalReportSignatures, cursorTime: epochMicros(clinicalReports.createdAt) })
      .from(clinicalReports)
      .leftJoin(clinicalReportSignatures, eq(clinicalReportSignatures.reportId, clinicalReports.id))
      .where(and(eq(clinicalReports.referralId, referralId), after ? afterKey(clinicalReports.createdAt, clinicalReports.id, after) : undefined))
      .orderBy(asc(clinicalReports.createdAt), asc(clinicalReports.id))
      .limit(limit + 1);
    return rows.map((row) => ({ report: toReport(row.report, row.signature), cursorTime: row.cursorTime }));
  }

  /** The signature, unless the report already has one (then undefined: it is signed once). */
  async insertSignature(signature: typeof clinicalReportSignatures.$inferInsert, executor: Executor): Promise<SignatureRow | undefined> {
    const [row] = await executor.insert(clinicalReportSignatures).values(signature).onConflictDoNothing().returning();
    return row;
  }
}
