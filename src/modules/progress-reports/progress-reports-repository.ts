// SQL for visit notes and their addenda. Notes are inserted once and never updated.
import { and, asc, eq, gt, inArray } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { progressReportAddenda, progressReports } from '../../db/schema.js';
import type { Addendum, CreateProgressReport, ProgressReport } from './schemas.js';

type ReportRow = typeof progressReports.$inferSelect;
type AddendumRow = typeof progressReportAddenda.$inferSelect;

export function toAddendum(row: AddendumRow): Addendum {
  return { id: row.id, reportId: row.reportId, authorId: row.authorId, text: row.text, createdAt: row.createdAt.toISOString() };
}

export function toProgressReport(row: ReportRow, addenda: AddendumRow[] = []): ProgressReport {
  return {
    id: row.id,
    referralId: row.referralId,
    visitNumber: row.visitNumber,
    authorId: row.authorId,
    visitDate: row.visitDate,
    subjective: row.subjective,
    objective: row.objective,
    assessment: row.assessment,
    plan: row.plan,
    painBefore: row.painBefore,
    painAfter: row.painAfter,
    rangeOfMotion: row.rangeOfMotion,
    outcomeMeasures: row.outcomeMeasures as ProgressReport['outcomeMeasures'],
    techniquesApplied: row.techniquesApplied as ProgressReport['techniquesApplied'],
    minutes: row.minutes,
    billing: row.billing,
    final: row.final,
    signedAt: row.signedAt.toISOString(),
    addenda: addenda.map(toAddendum),
  };
}

export class ProgressReportsRepository {
  constructor(private readonly db: Executor) {}

  async insert(
    { referralId, visitNumber, authorId, input }: { referralId: string; visitNumber: number; authorId: string; input: CreateProgressReport },
    executor: Executor,
  ): Promise<ReportRow> {
    const [row] = await executor
      .insert(progressReports)
      .values({
        referralId,
        visitNumber,
        authorId,
        visitDate: input.visitDate,
        subjective: input.subjective,
        objective: input.objective,
        assessment: input.assessment,
        plan: input.plan,
        painBefore: input.painBefore,
        painAfter: input.painAfter,
        rangeOfMotion: input.rangeOfMotion ?? [],
        outcomeMeasures: input.outcomeMeasures ?? [],
        techniquesApplied: input.techniquesApplied,
        minutes: input.minutes,
        billing: input.billing ?? [],
        final: input.final ?? false,
      })
      .returning();
    return row!;
  }

  /** One page of a referral's notes by visit number, each with its addenda. */
  async list({ referralId, afterVisit, limit }: { referralId: string; afterVisit?: number | undefined; limit: number }) {
    const rows = await this.db
      .select()
      .from(progressReports)
      .where(and(eq(progressReports.referralId, referralId), afterVisit === undefined ? undefined : gt(progressReports.visitNumber, afterVisit)))
      .orderBy(asc(progressReports.visitNumber))
      .limit(limit + 1);
    const addenda = rows.length
      ? await this.db
          .select()
          .from(progressReportAddenda)
          .where(inArray(progressReportAddenda.reportId, rows.map((row) => row.id)))
          .orderBy(asc(progressReportAddenda.createdAt), asc(progressReportAddenda.id))
      : [];
    return rows.map((row) => ({ row, addenda: addenda.filter((addendum) => addendum.reportId === row.id) }));
  }

  async find({ referralId, reportId }: { referralId: string; reportId: string }) {
    const [row] = await this.db
      .select()
      .from(progressReports)
      .where(and(eq(progressReports.id, reportId), eq(progressReports.referralId, referralId)));
    return row;
  }

  /** A note by its id alone, whichever referral it belongs to, with its addenda. */
  async findById(reportId: string) {
    const [row] = await this.db.select().from(progressReports).where(eq(progressReports.id, reportId));
    if (!row) return undefined;
    const addenda = await this.db
      .select()
      .from(progressReportAddenda)
      .where(eq(progressReportAddenda.reportId, row.id))
      .orderBy(asc(progressReportAddenda.createdAt), asc(progressReportAddenda.id));
    return { row, addenda };
  }

  async addAddendum({ reportId, authorId, text }: { reportId: string; authorId: string; text: string }, executor: Executor = this.db) {
    const [row] = await executor.insert(progressReportAddenda).values({ reportId, authorId, text }).returning();
    return toAddendum(row!);
  }

  /** What each visit measured, by visit number: the series reports to the prescriber are drawn from. */
  async measurements(referralId: string, executor: Executor = this.db) {
    return executor
      .select({
        visitNumber: progressReports.visitNumber,
        visitDate: progressReports.visitDate,
        painBefore: progressReports.painBefore,
        painAfter: progressReports.painAfter,
        outcomeMeasures: progressReports.outcomeMeasures,
      })
      .from(progressReports)
      .where(eq(progressReports.referralId, referralId))
      .orderBy(asc(progressReports.visitNumber));
  }
}
