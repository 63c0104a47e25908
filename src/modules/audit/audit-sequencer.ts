// The sequencer: moves committed audit events into the Merkle tree in batches, in the order it
// finds them, and signs a checkpoint of the tree while events arrive. It runs in the worker; one
// at a time across processes (the tree's state row is its lock, skipped rather than waited for), so
// any worker may take over. A batch is one transaction: killed halfway, it leaves nothing behind,
// and each event enters the tree once (audit_log_leaves.event_id is unique).
import { asc, eq, sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/database.js';
import { auditEvents, auditUnsequenced } from '../../db/schema.js';
import type { DomainEvents } from '../../lib/domain-events.js';
import { auditLeafHashes } from './audit-leaf.js';
import { toAuditEvent } from './audit-repository.js';
import type { AuditTreeRepository, StoredCheckpoint, TreeState } from './audit-tree-repository.js';
import type { CheckpointSigner } from './checkpoint-signer.js';
import { appendLeaves, perfectSubtrees } from './merkle.js';

/** What the sequencer's transactions call themselves; migration 0020 knows the name. */
export const sequencerApplicationName = 'massage-referral-network/audit-sequencer';

export interface SequencerOptions {
  batchSize: number;
  checkpointIntervalMs: number;
  /** The least time between two checkpoints sent as audit.checkpoint webhooks. */
  checkpointWebhookMs: number;
  apiPrefix: string;
}

export class AuditSequencer {
  constructor(
    private readonly db: Database,
    private readonly tree: AuditTreeRepository,
    private readonly signer: CheckpointSigner,
    private readonly events: DomainEvents,
    private readonly options: SequencerOptions,
  ) {}

  /**
   * When this process last sent a checkpoint to partners. Checkpoints are signed up to four times a
   * second under load, to keep the sequencing lag under a second; a partner needs far fewer copies
   * (any later checkpoint is proved consistent with the one it keeps), so they are sent at most
   * every AUDIT_CHECKPOINT_WEBHOOK_SECONDS. A sequencer that takes over sends its first one at once.
   */
  private lastSentAt: number | undefined;

  /**
   * Sequences until nothing waits; returns how many events entered the tree. With `wait`, it waits
   * for another sequencer's turn to end rather than leaving the work to it: when it returns, every
   * event committed before the call is in the tree (what a test or a tool needs).
   */
  async run({ wait = false } = {}): Promise<number> {
    // A look without a lock first: taking the state row's lock writes WAL and spends a transaction
    // id, five times a second on an idle service otherwise.
    if (!wait && (await this.tree.idle(this.db))) return 0;
    let total = 0;
    for (;;) {
      const outcome = await this.sequenceBatch({ wait });
      if (outcome === 'busy') return total;
      if (outcome === 'moved') {
        // Another sequencer went first: its work stands, ours is prepared again from it.
        if (wait) continue;
        return total;
      }
      total += outcome;
      if (outcome < this.options.batchSize) return total;
    }
  }

  /**
   * One batch and, when due, a checkpoint: how many queued events it handled; 'busy' when another
   * sequencer holds the tree, 'moved' when one changed it since this batch was prepared.
   */
  async sequenceBatch({ wait = false } = {}): Promise<number | 'busy' | 'moved'> {
    // Everything is read, hashed and signed before the tree's lock is taken. The lock gives the
    // transaction an id, and while a transaction with an older id runs, the sync feeds hold back
    // every change committed after it (their horizon, migrations 0002 and 0012): the locked part
    // must be as short as a commit.
    const batch = await this.prepare();
    const outcome = await this.db.transaction(async (tx) => {
      // Named, so that the sync feeds' horizon leaves this transaction out (migration 0020): it
      // writes no row a feed reads, and would otherwise hold back every change committed after it began.
      await tx.execute(sql`select set_config('application_name', ${sequencerApplicationName}, true)`);
      const locked = await this.tree.lockState(tx, { wait });
      if (!locked) return 'busy' as const;
      if (locked.treeSize !== batch.from.treeSize || locked.checkpointedSize !== batch.checkpointedSize) return 'moved' as const;
      await Promise.all([
        batch.appended && this.tree.append(tx, batch.appended),
        batch.gone.length > 0 && tx.execute(sql`delete from audit_unsequenced where event_id = any(${sql.param(batch.gone)}::bigint[])`),
        batch.checkpoint && this.recordCheckpoint(tx, batch.checkpoint, { send: batch.sendsCheckpoint }),
      ]);
      return batch.handled;
    });
    if (typeof outcome === 'number' && batch.sendsCheckpoint) this.lastSentAt = batch.preparedAt;
    return outcome;
  }

  /** Reads the waiting events and the tree's right edge, and computes what the batch will write. */
  private async prepare() {
    const from = await this.tree.state(this.db);
    const latest = await this.tree.latestCheckpoint(this.db);
    const waiting = await this.db
      .select({ queuedId: auditUnsequenced.eventId, event: auditEvents })
      .from(auditUnsequenced)
      .leftJoin(auditEvents, eq(auditEvents.id, auditUnsequenced.eventId))
      .orderBy(asc(auditUnsequenced.eventId))
      .limit(this.options.batchSize);
    const present = waiting.flatMap(({ event }) => (event ? [event] : []));
    let next: TreeState = from;
    let appended: Parameters<AuditTreeRepository['append']>[1] | undefined;
    if (present.length > 0) {
      const rightEdge = await this.tree.nodes(this.db, perfectSubtrees([0, from.treeSize]));
      const { nodes, root } = appendLeaves(from.treeSize, rightEdge, await auditLeafHashes(present.map(toAuditEvent)));
      next = { treeSize: from.treeSize + present.length, rootHash: root };
      appended = { firstLeafIndex: from.treeSize, eventIds: present.map(({ id }) => id), nodes, state: next };
    }
    // A queued id whose event is gone (deleted by hand before it was sequenced) has nothing to hash.
    const gone = waiting.filter(({ event }) => event === null).map(({ queuedId }) => queuedId);
    const due = !latest || (latest.treeSize < next.treeSize && Date.now() - latest.signedAt.getTime() >= this.options.checkpointIntervalMs);
    const checkpoint = due
      ? { treeSize: next.treeSize, rootHash: next.rootHash, origin: this.signer.origin, keyId: this.signer.keyId, signature: this.signer.sign(next.treeSize, next.rootHash) }
      : undefined;
    const preparedAt = Date.now();
    const sendsCheckpoint = checkpoint !== undefined && (this.lastSentAt === undefined || preparedAt - this.lastSentAt >= this.options.checkpointWebhookMs);
    return { from, checkpointedSize: latest?.treeSize, appended, gone, checkpoint, sendsCheckpoint, preparedAt, handled: waiting.length };
  }

  private async recordCheckpoint(tx: Executor, signed: Omit<StoredCheckpoint, 'signedAt'>, { send }: { send: boolean }): Promise<void> {
    // Partners who subscribe keep copies out of the operator's reach: a rewrite of the log cannot match them.
    await Promise.all([
      this.tree.insertCheckpoint(tx, signed),
      send &&
        this.events.publish(
          {
            type: 'audit.checkpoint',
            resource: { type: 'audit_checkpoint', id: String(signed.treeSize), url: `${this.options.apiPrefix}/audit-events/checkpoints/latest` },
            facts: {
              origin: signed.origin,
              treeSize: signed.treeSize,
              rootHash: signed.rootHash.toString('base64'),
              keyId: signed.keyId,
              signature: signed.signature.toString('base64'),
              note: this.signer.note(signed.treeSize, signed.rootHash, signed.signature),
            },
          },
          tx,
        ),
    ]);
  }
}
