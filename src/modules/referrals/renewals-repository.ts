// SQL for renewal requests.
import { and, asc, eq } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { clinicalReports, renewalRequests } from '../../db/schema.js';
import type { RenewalRequest } from './renewal-schemas.js';

type RenewalRow = typeof renewalRequests.$inferSelect;

export function toRenewalRequest(row: RenewalRow): RenewalRequest {
  return {
    id: row.id,
    referralId: row.referralId,
    status: row.status,
    requestedBy: row.requestedBy,
    additionalVisits: row.additionalVisits,
    extendWeeks: row.extendWeeks,
    justification: row.justification,
    reportId: row.reportId,
    decision:
      row.decidedBy && row.decidedAt
        ? { decidedBy: row.decidedBy, decidedAt: row.decidedAt.toISOString(), approvedVisits: row.approvedVisits, approvedWeeks: row.approvedWeeks, reason: row.decisionReason, attestation: row.attestation }
        : null,
    createdAt: row.createdAt.toISOString(),
  };
}

export class RenewalsRepository {
  constructor(private readonly db: Executor) {}

  async insert(request: typeof renewalRequests.$inferInsert, executor: Executor): Promise<RenewalRow> {
    const [row] = await executor.insert(renewalRequests).values(request).returning();
    return row!;
  }

  async pendingOf(referralId: string, executor: Executor): Promise<RenewalRow | undefined> {
    const [row] = await executor.select().from(renewalRequests).where(and(eq(renewalRequests.referralId, referralId), eq(renewalRequests.status, 'pending')));
    return row;
  }

  async find({ referralId, requestId }: { referralId: string; requestId: string }, executor: Executor = this.db): Promise<RenewalRow | undefined> {
    const [row] = await executor.select().from(renewalRequests).where(and(eq(renewalRequests.id, requestId), eq(renewalRequests.referralId, referralId)));
    return row;
  }

  async decide(requestId: string, decision: Partial<RenewalRow>, executor: Executor): Promise<RenewalRow> {
    const [row] = await executor.update(renewalRequests).set(decision).where(eq(renewalRequests.id, requestId)).returning();
    return row!;
  }

  /**
   * Whether the report belongs to the referral (a request may name one that backs it). It reads the
   * clinical-reports table, which that module owns: a renewal names its report by a foreign key, and
   * asking that module would make the two modules depend on each other.
   */
  async isReportOf({ referralId, reportId }: { referralId: string; reportId: string }, executor: Executor): Promise<boolean> {
    const [row] = await executor.select({ id: clinicalReports.id }).from(clinicalReports).where(and(eq(clinicalReports.id, reportId), eq(clinicalReports.referralId, referralId)));
    return row !== undefined;
  }

  async list({ referralId, after, limit }: { referralId: string; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ row: renewalRequests, cursorTime: epochMicros(renewalRequests.createdAt) })
      .from(renewalRequests)
      .where(and(eq(renewalRequests.referralId, referralId), after ? afterKey(renewalRequests.createdAt, renewalRequests.id, after) : undefined))
      .orderBy(asc(renewalRequests.createdAt), asc(renewalRequests.id))
      .limit(limit + 1);
  }
}
