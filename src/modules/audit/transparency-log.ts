// What a holder of a checkpoint asks the audit log (SPEC §15): checkpoints, inclusion and
// consistency proofs, and a verification of the stored tree against what was signed. Reads that
// must agree with each other run in one repeatable-read snapshot.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { and, asc, eq, gte, lt } from 'drizzle-orm';
import type { Database, Executor } from '../../db/database.js';
import { auditEvents, auditLogLeaves, auditLogNodes } from '../../db/schema.js';
import { auditLeafHash, leavesPerTurn } from './audit-leaf.js';
import { toAuditEvent } from './audit-repository.js';
import type { AuditTreeRepository, StoredCheckpoint } from './audit-tree-repository.js';
import type { CheckpointSigner } from './checkpoint-signer.js';
import { consistencyProofRanges, foldSubtrees, inclusionProofRanges, nodeHash, nodeKey, type Hash } from './merkle.js';
import type { Checkpoint, LogVerification } from './schemas.js';

/** Why a proof cannot be given; the routes turn each into a problem. */
export type ProofRefusal =
  | { reason: 'unsequenced' }
  | { reason: 'tree-too-small'; leafIndex: number }
  | { reason: 'beyond-checkpoint'; treeSize: number }
  | { reason: 'from-after-to' };

const snapshot = { isolationLevel: 'repeatable read', accessMode: 'read only' } as const;
const verifyBatch = 5000;

export class TransparencyLog {
  constructor(
    private readonly db: Database,
    private readonly tree: AuditTreeRepository,
    private readonly signer: CheckpointSigner,
  ) {}

  get publicJwk() {
    return this.signer.publicJwk;
  }

  present(checkpoint: StoredCheckpoint): Checkpoint {
    return {
      origin: checkpoint.origin,
      treeSize: checkpoint.treeSize,
      rootHash: checkpoint.rootHash.toString('base64'),
      timestamp: checkpoint.signedAt.toISOString(),
      keyId: checkpoint.keyId,
      signature: checkpoint.signature.toString('base64'),
      note: this.signer.note(checkpoint.treeSize, checkpoint.rootHash, checkpoint.signature),
    };
  }

  /** How long the oldest event not yet in a signed checkpoint has waited; 0 when none waits. */
  async sequencerLagSeconds(): Promise<number> {
    const oldest = await this.tree.oldestUncheckpointed(this.db);
    return oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0;
  }

  latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    return this.tree.latestCheckpoint(this.db);
  }

  checkpoints(query: { below?: number | undefined; limit: number }): Promise<StoredCheckpoint[]> {
    return this.tree.checkpoints(this.db, query);
  }

  /** Proofs are given up to the latest checkpoint: a tree its holder can have been told of. */
  async inclusionProof(eventId: number, treeSize: number | undefined) {
    return this.db.transaction(async (tx): Promise<ProofRefusal | { leafIndex: number; treeSize: number; leafHash: string; hashes: string[] }> => {
      const leafIndex = await this.tree.leafOf(tx, eventId);
      const latest = await this.tree.latestCheckpoint(tx);
      if (leafIndex === undefined || !latest || leafIndex >= latest.treeSize) return { reason: 'unsequenced' };
      const size = treeSize ?? latest.treeSize;
      if (size > latest.treeSize) return { reason: 'beyond-checkpoint', treeSize: latest.treeSize };
      if (leafIndex >= size) return { reason: 'tree-too-small', leafIndex };
      const [leafHash] = await this.tree.rangeHashes(tx, [[leafIndex, leafIndex + 1]]);
      const hashes = await this.tree.rangeHashes(tx, inclusionProofRanges(leafIndex, size));
      return { leafIndex, treeSize: size, leafHash: leafHash!.toString('base64'), hashes: hashes.map((hash) => hash.toString('base64')) };
    }, snapshot);
  }

  async consistencyProof(from: number, to: number) {
    return this.db.transaction(async (tx): Promise<ProofRefusal | { from: number; to: number; hashes: string[] }> => {
      if (from > to) return { reason: 'from-after-to' };
      const latest = await this.tree.latestCheckpoint(tx);
      if (!latest || to > latest.treeSize) return { reason: 'beyond-checkpoint', treeSize: latest?.treeSize ?? 0 };
      const hashes = from === to || from === 0 ? [] : await this.tree.rangeHashes(tx, consistencyProofRanges(from, to));
      return { from, to, hashes: hashes.map((hash) => hash.toString('base64')) };
    }, snapshot);
  }

  /**
   * Hashes every event in the latest checkpoint again, from one snapshot, and compares: each leaf
   * with its stored hash, the root at each checkpoint's size with the root that was signed, and the
   * stored subtrees with the ones recomputed. Events not yet in a checkpoint are counted, never
   * taken for tampering.
   */
  async verify(): Promise<LogVerification> {
    return this.db.transaction((tx) => this.verifyIn(tx), snapshot);
  }

  private async verifyIn(tx: Executor): Promise<LogVerification> {
    const latest = await this.tree.latestCheckpoint(tx);
    const state = await this.tree.state(tx);
    const waiting = await this.tree.unsequencedCount(tx);
    const treeSize = latest?.treeSize ?? 0;
    const unsequenced = waiting + state.treeSize - treeSize;
    if (!latest) return { valid: true, treeSize: 0, unsequenced };
    if (!this.signer.verify(latest)) return { valid: false, firstBrokenIndex: treeSize, problem: 'bad-signature' };

    // The perfect subtrees of the leaves so far, left to right: the tree's right edge as it grows.
    const edge: { level: number; hash: Hash }[] = [];
    const rootSoFar = () => foldSubtrees(edge.map(({ hash }) => hash));
    let lastMatching = 0;
    for (let start = 0; start < treeSize; start += verifyBatch) {
      const end = Math.min(start + verifyBatch, treeSize);
      const leaves = await tx
        .select({ leafIndex: auditLogLeaves.leafIndex, event: auditEvents, stored: auditLogNodes.hash })
        .from(auditLogLeaves)
        .leftJoin(auditEvents, eq(auditEvents.id, auditLogLeaves.eventId))
        .leftJoin(auditLogNodes, and(eq(auditLogNodes.level, 0), eq(auditLogNodes.index, auditLogLeaves.leafIndex)))
        .where(and(gte(auditLogLeaves.leafIndex, start), lt(auditLogLeaves.leafIndex, end)))
        .orderBy(asc(auditLogLeaves.leafIndex));
      // Proofs are served from the stored inner nodes: each must be the one its leaves give.
      const storedInner = await this.tree.innerNodesEndingIn(tx, start, end);
      const signedSizes = new Map((await this.tree.checkpointsBetween(tx, start, end)).map((checkpoint) => [checkpoint.treeSize, checkpoint]));
      for (let index = start; index < end; index++) {
        const leaf = leaves[index - start];
        if (!leaf || leaf.leafIndex !== index || !leaf.event) return { valid: false, firstBrokenIndex: index, problem: 'missing' };
        // Thousands of events are rehashed per batch: other requests get their turn now and then.
        if ((index - start) % leavesPerTurn === leavesPerTurn - 1) await nextTurn();
        const hash = auditLeafHash(toAuditEvent(leaf.event));
        if (!leaf.stored || !hash.equals(leaf.stored)) return { valid: false, firstBrokenIndex: index, problem: 'modified' };
        let level = 0;
        let merged = hash;
        while (edge.length > 0 && edge.at(-1)!.level === level) {
          merged = nodeHash(edge.pop()!.hash, merged);
          level++;
          const nodeIndex = Math.floor(index / 2 ** level);
          if (!storedInner.get(nodeKey(level, nodeIndex))?.equals(merged)) {
            return { valid: false, firstBrokenIndex: nodeIndex * 2 ** level, problem: 'nodes-modified' };
          }
        }
        edge.push({ level, hash: merged });
        const checkpoint = signedSizes.get(index + 1);
        if (!checkpoint) continue;
        if (rootSoFar().equals(checkpoint.rootHash)) {
          lastMatching = checkpoint.treeSize;
          continue;
        }
        // Leaves and their hashes agree, yet the root is not what was signed: events and their
        // hashes were rewritten together, somewhere after the last checkpoint that still matches.
        if (!this.signer.verify(checkpoint)) return { valid: false, firstBrokenIndex: checkpoint.treeSize, problem: 'bad-signature' };
        return { valid: false, firstBrokenIndex: lastMatching, problem: 'modified' };
      }
    }
    return { valid: true, treeSize, unsequenced };
  }
}
