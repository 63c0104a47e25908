// Many audit events in one INSERT: the group commits of AuditLog write the events of concurrent
// requests (reads, lists, refusals) together in one commit, and a change writes its own with it.
import { sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { auditEvents } from '../../db/schema.js';

export type AuditRow = typeof auditEvents.$inferInsert;

/**
 * One statement of the same shape whatever the number of events (arrays, not a VALUES list): it is
 * prepared once, never nears the protocol's limit of 65,535 parameters, and parses in no time.
 */
export function insertAuditRows(db: Executor, rows: AuditRow[]) {
  const column = (key: keyof AuditRow) => sql.param(rows.map((row) => row[key] ?? null));
  return db.execute(sql`
    insert into ${auditEvents} (actor_type, actor_id, actor_organization_id, actor_role, action, resource_type, resource_id,
      patient_id, outcome, http_status, request_id, client_address, user_agent, repeat_count)
    select * from unnest(${column('actorType')}::text[], ${column('actorId')}::uuid[], ${column('actorOrganizationId')}::uuid[],
      ${column('actorRole')}::text[], ${column('action')}::text[], ${column('resourceType')}::text[], ${column('resourceId')}::text[],
      ${column('patientId')}::uuid[], ${column('outcome')}::text[], ${column('httpStatus')}::int[], ${column('requestId')}::text[],
      ${column('clientAddress')}::text[], ${column('userAgent')}::text[], ${column('repeatCount')}::int[])`);
}
