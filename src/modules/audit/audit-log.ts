// Appends audit events: who touched which record, with what outcome. Holds ids, never clinical text.
import type { FastifyRequest } from 'fastify';
import { and, eq, gte } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { auditEvents } from '../../db/schema.js';
import type { Principal } from '../auth/policy.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { insertAuditRows, type AuditRow } from './audit-batch.js';
import { DenialAggregator } from './denial-aggregator.js';
import { uuidPattern } from '../../lib/vocabulary.js';

export type AuditOutcome = 'success' | 'denied' | 'error';

export interface AuditEntry {
  action: string;
  outcome: AuditOutcome;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  patientId?: string | undefined;
  httpStatus?: number | undefined;
  /** For a summary of repeated identical refusals: how many repeats it stands for. */
  repeatCount?: number | undefined;
  /** Names an actor that is not the caller, e.g. the account a failed sign-in was aimed at. */
  actor?: { type: 'user' | 'api_client'; id: string; organizationId: string | null; role: string | null } | undefined;
}

export interface AuditContext {
  principal: Principal | undefined;
  requestId: string;
  clientAddress: string;
  userAgent: string | undefined;
  /** Work the service does on its own, e.g. the expiry sweep: audited as the system. */
  system?: boolean;
}

/** The audit context of a background job of the service itself. */
export function systemAuditContext(job: string): AuditContext {
  return { principal: undefined, requestId: `${job}-${crypto.randomUUID()}`, clientAddress: 'internal', userAgent: undefined, system: true };
}

export function auditContextOf(request: FastifyRequest): AuditContext {
  return {
    principal: request.principal,
    requestId: request.id,
    clientAddress: request.ip,
    userAgent: request.headers['user-agent']?.slice(0, 512),
  };
}

/** The record a route is aimed at (its auditResource path parameter), for auditing a refused call. */
export function auditTargetOf(request: FastifyRequest): Pick<AuditEntry, 'resourceType' | 'resourceId' | 'patientId'> {
  const target = request.routeOptions.config.auditResource;
  const id = target && (request.params as Record<string, string | undefined>)[target.param];
  // Records are named by UUID, audit events by number; anything else names nothing.
  if (!target || !id || !(uuidPattern.test(id) || /^[1-9]\d{0,15}$/.test(id))) return {};
  return { resourceType: target.type, resourceId: id, ...(target.isPatient ? { patientId: id } : {}) };
}

export class AuditLog {
  /** Audit events written outside any change, in group commits. */
  private readonly batch: GroupCommit<AuditRow[]>;
  private readonly denials: DenialAggregator;

  constructor(
    private readonly db: Executor,
    { denialWindowMs = 60_000 }: { denialWindowMs?: number } = {},
  ) {
    this.batch = new GroupCommit((batches) => insertAuditRows(db, batches.flat()));
    this.denials = new DenialAggregator((context, entry) => this.record(context, entry), denialWindowMs);
  }

  /**
   * A refused request (403, or 404 for a record out of the caller's reach), outside any change:
   * the first of identical refusals in a window is written at once, its repeats as one count.
   */
  async recordDenial(context: AuditContext, entry: AuditEntry): Promise<void> {
    await this.denials.record(context, entry);
  }

  /** Writes the counts of repeated refusals whose window has ended; all of them when closing. */
  async flushDenials(options?: { all?: boolean }): Promise<void> {
    await this.denials.flush(options);
  }

  /** Pass the transaction of the change being recorded, so both commit or neither does. */
  async record(context: AuditContext, entry: AuditEntry, executor: Executor = this.db): Promise<void> {
    await this.recordMany(context, [entry], executor);
  }

  /** The records a caller's request was audited against, e.g. to audit a replay of its response alike. */
  async targetsOfRequest({ requestId, actorId, since }: { requestId: string; actorId: string; since: Date }) {
    return this.db
      .selectDistinct({ resourceType: auditEvents.resourceType, resourceId: auditEvents.resourceId, patientId: auditEvents.patientId })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.requestId, requestId),
          eq(auditEvents.actorId, actorId),
          eq(auditEvents.outcome, 'success'),
          gte(auditEvents.occurredAt, since),
        ),
      );
  }

  /** One event per record, e.g. per patient on a listed page, written in one statement. */
  async recordMany(context: AuditContext, entries: AuditEntry[], executor: Executor = this.db): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((entry) => toRow(context, entry));
    // On its own, the event joins a batch; inside a change's transaction it commits or rolls back
    // with the change. Either way no lock is shared with other writers: the sequencer orders and
    // hashes events after they commit.
    if (executor === this.db) await this.batch.add(rows);
    else await insertAuditRows(executor, rows);
  }
}

function toRow(context: AuditContext, entry: AuditEntry): AuditRow {
  const principal = context.principal;
  const actor =
    entry.actor ??
    (principal
      ? { type: principal.kind, id: principal.id, organizationId: principal.organizationId, role: principal.role }
      : undefined);
  return {
    actorType: actor?.type ?? (context.system ? 'system' : 'anonymous'),
    actorId: actor?.id ?? null,
    actorOrganizationId: actor?.organizationId ?? null,
    actorRole: actor?.role ?? null,
    action: entry.action,
    resourceType: entry.resourceType ?? null,
    resourceId: entry.resourceId ?? null,
    patientId: entry.patientId ?? null,
    outcome: entry.outcome,
    httpStatus: entry.httpStatus ?? null,
    requestId: context.requestId,
    clientAddress: context.clientAddress,
    userAgent: context.userAgent ?? null,
    repeatCount: entry.repeatCount ?? null,
  };
}
