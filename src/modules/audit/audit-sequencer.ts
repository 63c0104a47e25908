// The sequencer: moves committed audit events into the Merkle tree in batches, in the order it
// finds them, and signs a checkpoint of the tree while events arrive. It runs in the worker; one
// at a time across processes (the tree's state row is its lock, skipped rather than waited for), so
// any worker may take over. A batch is one transaction: killed halfway, it leaves nothing behind,
// and each event enters the tree once (audit_log_leaves.event_id is unique).
import { asc, eq, sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/database.js';
import { auditEvents, auditUnsequenced } from '../../db/schema.js';
import type { DomainEvents } from '../../lib/domain-events.js';
import { auditLeafHash } from './audit-leaf.js';
import { toAuditEvent } from './audit-repository.js';
import type { AuditTreeRepository, StoredCheckpoint, TreeState } from './audit-tree-repository.js';
import type { CheckpointSigner } from './checkpoint-signer.js';
import { appendLeaves, perfectSubtrees } from './merkle.js';

export interface SequencerOptions {
  batchSize: number;
  checkpointIntervalMs: number;
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
   * Sequences until nothing waits; returns how many events entered the tree. With `wait`, it waits
   * for another sequencer's turn to end rather than leaving the work to it: when it returns, every
   * event committed before the call is in the tree (what a test or a tool needs).
   */
  async run({ wait = false } = {}): Promise<number> {
    let total = 0;
    for (;;) {
      const sequenced = await this.sequenceBatch({ wait });
      if (sequenced === undefined) return total;
      total += sequenced;
      if (sequenced < this.options.batchSize) return total;
    }
  }

  /** One batch and, when due, a checkpoint. Undefined when another sequencer has the turn. */
  async sequenceBatch({ wait = false } = {}): Promise<number | undefined> {
    return this.db.transaction(async (tx) => {
      const state = await this.tree.lockState(tx, { wait });
      if (!state) return undefined;
      const waiting = await tx
        .select({ queuedId: auditUnsequenced.eventId, event: auditEvents })
        .from(auditUnsequenced)
        .leftJoin(auditEvents, eq(auditEvents.id, auditUnsequenced.eventId))
        .orderBy(asc(auditUnsequenced.eventId))
        .limit(this.options.batchSize);
      const present = waiting.flatMap(({ event }) => (event ? [event] : []));
      let next: TreeState = state;
      if (present.length > 0) {
        const rightEdge = await this.tree.nodes(tx, perfectSubtrees([0, state.treeSize]));
        const { nodes, root } = appendLeaves(state.treeSize, rightEdge, present.map((event) => auditLeafHash(toAuditEvent(event))));
        next = { treeSize: state.treeSize + present.length, rootHash: root };
        await this.tree.append(tx, { firstLeafIndex: state.treeSize, eventIds: present.map(({ id }) => id), nodes, state: next });
      }
      // A queued id whose event is gone (deleted by hand before it was sequenced) has nothing to hash.
      const gone = waiting.filter(({ event }) => event === null).map(({ queuedId }) => queuedId);
      if (gone.length > 0) await tx.execute(sql`delete from audit_unsequenced where event_id = any(${sql.param(gone)}::bigint[])`);
      await this.checkpointIfDue(tx, next);
      return waiting.length;
    });
  }

  private async checkpointIfDue(tx: Executor, state: TreeState): Promise<StoredCheckpoint | undefined> {
    const latest = await this.tree.latestCheckpoint(tx);
    if (latest && latest.treeSize >= state.treeSize) return undefined;
    if (latest && Date.now() - latest.signedAt.getTime() < this.options.checkpointIntervalMs) return undefined;
    const checkpoint = await this.tree.insertCheckpoint(tx, {
      treeSize: state.treeSize,
      rootHash: state.rootHash,
      origin: this.signer.origin,
      keyId: this.signer.keyId,
      signature: this.signer.sign(state.treeSize, state.rootHash),
    });
    // Partners who subscribe keep copies out of the operator's reach: a rewrite of the log cannot match them.
    await this.events.publish(
      {
        type: 'audit.checkpoint',
        resource: { type: 'audit_checkpoint', id: String(checkpoint.treeSize), url: `${this.options.apiPrefix}/audit-events/checkpoints/latest` },
        facts: {
          origin: checkpoint.origin,
          treeSize: checkpoint.treeSize,
          rootHash: checkpoint.rootHash.toString('base64'),
          keyId: checkpoint.keyId,
          signature: checkpoint.signature.toString('base64'),
          note: this.signer.note(checkpoint.treeSize, checkpoint.rootHash, checkpoint.signature),
        },
      },
      tx,
    );
    return checkpoint;
  }
}
