// Reading the audit log: filtered pages, export batches, one event, and who saw a patient.
import { and, asc, eq, getTableColumns, gt, gte, like, lt, sql, type SQL } from 'drizzle-orm';
import type { DatabaseHandle, Executor } from '../../db/database.js';
import { auditEvents, auditLogLeaves, patients } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';
import type { AuditEvent, AuditExportQuery } from './schemas.js';

export type AuditRow = typeof auditEvents.$inferSelect;

/** An event as the API serves it; its leaf index once the sequencer has put it in the tree. */
export function toAuditEvent(row: AuditRow & { leafIndex?: number | string | null }): AuditEvent {
  return {
    id: Number(row.id),
    ...(row.leafIndex === null || row.leafIndex === undefined ? {} : { leafIndex: Number(row.leafIndex) }),
    occurredAt: new Date(row.occurredAt).toISOString(),
    actor: { type: row.actorType, id: row.actorId, organizationId: row.actorOrganizationId, role: row.actorRole },
    action: row.action,
    resourceType: row.resourceType,
    resourceId: row.resourceId,
    patientId: row.patientId,
    outcome: row.outcome,
    httpStatus: row.httpStatus,
    requestId: row.requestId,
    clientAddress: row.clientAddress,
    userAgent: row.userAgent,
    ...(row.repeatCount === null ? {} : { repeatCount: row.repeatCount }),
  };
}

/**
 * Network admins read the whole log; an organization admin reads what their organization's
 * people did and every access to their organization's patients.
 */
function readableBy(principal: Principal): SQL | undefined {
  if (principal.role === 'network_admin') return undefined;
  const organizationId = principal.organizationId!;
  return sql`(${auditEvents.actorOrganizationId} = ${organizationId} or ${auditEvents.patientId} in ${ownPatients(organizationId)})`;
}

const ownPatients = (organizationId: string) => sql`(select ${patients.id} from ${patients} where ${patients.organizationId} = ${organizationId})`;

/**
 * The columns an organization admin reads: a refused attempt of their own people on another
 * organization's record does not name its patient to them, so the log tells them neither the
 * patient's id nor whether the record exists.
 */
function columnsFor(principal: Principal) {
  const columns = getTableColumns(auditEvents);
  if (principal.role === 'network_admin') return columns;
  return {
    ...columns,
    patientId: sql<string | null>`case when ${patientIsNamedTo(principal.organizationId!)} then ${auditEvents.patientId} end`.as('patient_id'),
  };
}

/** A patient the organization may know of: its own, or one its people actually reached. */
const patientIsNamedTo = (organizationId: string) =>
  sql`(${auditEvents.outcome} = 'success' or ${auditEvents.patientId} in ${ownPatients(organizationId)})`;

function filterConditions(principal: Principal, filter: AuditExportQuery): (SQL | undefined)[] {
  return [
    readableBy(principal),
    filter.actorId ? eq(auditEvents.actorId, filter.actorId) : undefined,
    filter.patientId ? eq(auditEvents.patientId, filter.patientId) : undefined,
    // As in columnsFor: an organization admin finds events by patient for its own patients only.
    filter.patientId && principal.role !== 'network_admin' ? patientIsNamedTo(principal.organizationId!) : undefined,
    filter.resourceType ? eq(auditEvents.resourceType, filter.resourceType) : undefined,
    filter.resourceId ? eq(auditEvents.resourceId, filter.resourceId) : undefined,
    filter.action
      ? filter.action.endsWith('.')
        ? like(auditEvents.action, `${filter.action.replace(/[\\%_]/g, '\\$&')}%`)
        : eq(auditEvents.action, filter.action)
      : undefined,
    filter.outcome ? eq(auditEvents.outcome, filter.outcome) : undefined,
    filter.from ? gte(auditEvents.occurredAt, new Date(filter.from)) : undefined,
    filter.to ? lt(auditEvents.occurredAt, new Date(filter.to)) : undefined,
  ];
}

export class AuditRepository {
  constructor(
    private readonly db: Executor,
    private readonly database: DatabaseHandle,
  ) {}

  async list({ principal, filter, afterId, limit }: { principal: Principal; filter: AuditExportQuery; afterId?: number | undefined; limit: number }) {
    return this.db
      .select({ ...columnsFor(principal), leafIndex: auditLogLeaves.leafIndex })
      .from(auditEvents)
      .leftJoin(auditLogLeaves, eq(auditLogLeaves.eventId, auditEvents.id))
      .where(and(...filterConditions(principal, filter), afterId === undefined ? undefined : gt(auditEvents.id, afterId)))
      .orderBy(asc(auditEvents.id))
      .limit(limit);
  }

  /** Every matching event, read in batches so that an export of millions never sits in memory. */
  async *stream({ principal, filter, batchSize = 1000 }: { principal: Principal; filter: AuditExportQuery; batchSize?: number }) {
    let afterId: number | undefined;
    for (;;) {
      const rows = await this.list({ principal, filter, afterId, limit: batchSize });
      for (const row of rows) yield toAuditEvent(row);
      if (rows.length < batchSize) return;
      afterId = rows.at(-1)!.id;
    }
  }

  /** One event the caller may read, as they may read it. */
  async get(principal: Principal, id: number) {
    const [row] = await this.db
      .select({ ...columnsFor(principal), leafIndex: auditLogLeaves.leafIndex })
      .from(auditEvents)
      .leftJoin(auditLogLeaves, eq(auditLogLeaves.eventId, auditEvents.id))
      .where(and(readableBy(principal), eq(auditEvents.id, id)));
    return row;
  }

  /** Who accessed a patient's records successfully: one grouped query over the patient index. */
  async viewers({ principal, patientId }: { principal: Principal; patientId: string }) {
    return this.db
      .select({
        actorType: auditEvents.actorType,
        actorId: auditEvents.actorId,
        actorOrganizationId: auditEvents.actorOrganizationId,
        actorRole: auditEvents.actorRole,
        actions: sql<string[]>`array_agg(distinct ${auditEvents.action} order by ${auditEvents.action})`,
        accesses: sql<number>`count(*)::int`,
        firstAt: sql<string>`min(${auditEvents.occurredAt})`,
        lastAt: sql<string>`max(${auditEvents.occurredAt})`,
      })
      .from(auditEvents)
      .where(and(readableBy(principal), eq(auditEvents.patientId, patientId), eq(auditEvents.outcome, 'success')))
      .groupBy(auditEvents.actorType, auditEvents.actorId, auditEvents.actorOrganizationId, auditEvents.actorRole)
      .orderBy(sql`min(${auditEvents.occurredAt})`);
  }
}
