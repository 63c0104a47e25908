// Reading the audit log: filtered pages, export batches, chain verification and who saw a patient.
import { and, asc, eq, getTableColumns, gt, gte, like, lt, sql, type SQL } from 'drizzle-orm';
import { rowsOf, type DatabaseHandle, type Executor } from '../../db/database.js';
import { auditChainHead, auditEvents, patients } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';
import type { AuditEvent, AuditExportQuery, ChainVerification } from './schemas.js';

type AuditRow = typeof auditEvents.$inferSelect;

export function toAuditEvent(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    occurredAt: row.occurredAt.toISOString(),
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
    prevHash: row.prevHash,
    hash: row.hash,
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
      .select(columnsFor(principal))
      .from(auditEvents)
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

  /**
   * Recomputes every link in one pass. Ids are gapless by construction (the chain trigger assigns
   * them), so a gap is a deleted event; the head row catches deletions at the end. Chain, count and
   * head are read from one snapshot: read apart, events committed in between look like a truncation.
   */
  async verify(): Promise<ChainVerification> {
    return this.db.transaction(async (tx) => this.verifyIn(tx), { isolationLevel: 'repeatable read', accessMode: 'read only' });
  }

  private async verifyIn(tx: Executor): Promise<ChainVerification> {
    const [broken] = rowsOf<{ id: string; prev_id: string | null; problem: ChainVerification['problem'] }>(
      await tx.execute(sql`
      with chain as (
        select id, prev_hash, hash, audit_event_hash(a) as recomputed,
               lag(id) over (order by id) as prev_id, lag(hash) over (order by id) as prev_row_hash
        from audit_events a
      )
      select id, prev_id,
             case when id <> coalesce(prev_id, 0) + 1 then 'missing'
                  when hash <> recomputed then 'modified'
                  else 'relinked' end as problem
      from chain
      where id <> coalesce(prev_id, 0) + 1 or hash <> recomputed or prev_hash <> coalesce(prev_row_hash, '')
      order by id
      limit 1`),
    );
    const [counts] = rowsOf<{ checked: number; last_id: string | null; last_hash: string | null }>(
      await tx.execute(sql`
      select (select count(*)::int from audit_events) as checked,
             (select max(id) from audit_events)::text as last_id,
             (select hash from audit_events order by id desc limit 1) as last_hash`),
    );
    const checked = counts?.checked ?? 0;
    if (broken) {
      const id = Number(broken.id);
      const firstBrokenId = broken.problem === 'missing' ? Number(broken.prev_id ?? 0) + 1 : id;
      return { valid: false, checked, firstBrokenId, problem: broken.problem };
    }
    const [head] = await tx.select().from(auditChainHead);
    const lastId = Number(counts?.last_id ?? 0);
    if (head && (head.lastId !== lastId || head.lastHash !== (counts?.last_hash ?? ''))) {
      return { valid: false, checked, firstBrokenId: lastId + 1, problem: 'truncated' };
    }
    return { valid: true, checked };
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
