// Group commit for audit events written outside any change (reads, lists, refusals): each audited
// request waits until its event is durable, but the events of concurrent requests share one
// INSERT, one turn on the hash chain's lock and one commit instead of taking turns one by one.
import { sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { auditEvents } from '../../db/schema.js';

type AuditRow = typeof auditEvents.$inferInsert;

/**
 * One statement of the same shape whatever the number of events (arrays, not a VALUES list): it is
 * prepared once, never nears the protocol's limit of 65,535 parameters, and parses in no time.
 */
function insertAll(db: Executor, rows: AuditRow[]) {
  const column = (key: keyof AuditRow) => sql.param(rows.map((row) => row[key] ?? null));
  return db.execute(sql`
    insert into ${auditEvents} (actor_type, actor_id, actor_organization_id, actor_role, action, resource_type, resource_id,
      patient_id, outcome, http_status, request_id, client_address, user_agent)
    select * from unnest(${column('actorType')}::text[], ${column('actorId')}::uuid[], ${column('actorOrganizationId')}::uuid[],
      ${column('actorRole')}::text[], ${column('action')}::text[], ${column('resourceType')}::text[], ${column('resourceId')}::text[],
      ${column('patientId')}::uuid[], ${column('outcome')}::text[], ${column('httpStatus')}::int[], ${column('requestId')}::text[],
      ${column('clientAddress')}::text[], ${column('userAgent')}::text[])`);
}

interface Waiting {
  rows: AuditRow[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class AuditWriteBatch {
  private waiting: Waiting[] = [];
  private writing = false;

  constructor(private readonly db: Executor) {}

  /** Resolves once the rows are committed; rejects if they could not be written. */
  write(rows: AuditRow[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ rows, resolve, reject });
      // While one batch is being written the next one gathers; one in flight is enough, because
      // every writer takes its turn on the chain's lock anyway.
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        await insertAll(this.db, batch.flatMap((entry) => entry.rows));
        for (const entry of batch) entry.resolve();
      } catch (error) {
        if (batch.length === 1) batch[0]!.reject(error);
        // One bad event must not fail the requests it happened to share a batch with.
        else await Promise.all(batch.map((entry) => this.writeAlone(entry)));
      }
    }
    this.writing = false;
  }

  private async writeAlone(entry: Waiting): Promise<void> {
    try {
      await insertAll(this.db, entry.rows);
      entry.resolve();
    } catch (error) {
      entry.reject(error);
    }
  }
}
