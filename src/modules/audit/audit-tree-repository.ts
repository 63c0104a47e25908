// The stored Merkle tree of the audit log: its state row, perfect-subtree hashes, leaves and signed
// checkpoints. Hashes travel as hex text: both drivers hand text arrays over alike.
import { sql } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import { foldSubtrees, nodeKey, perfectSubtrees, type Hash, type LeafRange, type NodeAddress } from './merkle.js';

export interface TreeState {
  treeSize: number;
  rootHash: Hash;
}

export interface StoredCheckpoint {
  treeSize: number;
  rootHash: Hash;
  origin: string;
  keyId: string;
  signature: Buffer;
  signedAt: Date;
}

type CheckpointRow = { tree_size: string | number; root_hash: Uint8Array; origin: string; key_id: string; signature: Uint8Array; signed_at: Date | string };

const toCheckpoint = (row: CheckpointRow): StoredCheckpoint => ({
  treeSize: Number(row.tree_size),
  rootHash: Buffer.from(row.root_hash),
  origin: row.origin,
  keyId: row.key_id,
  signature: Buffer.from(row.signature),
  signedAt: new Date(row.signed_at),
});

const hex = (hashes: Hash[]) => hashes.map((hash) => hash.toString('hex'));

export class AuditTreeRepository {
  /**
   * The tree's size and its latest checkpoint's, the state row locked for this transaction: the
   * sequencer's turn. Undefined while another sequencer holds it (not waited for: that one is doing
   * the work), unless told to wait.
   */
  async lockState(tx: Executor, { wait = false } = {}): Promise<{ treeSize: number; checkpointedSize: number | undefined } | undefined> {
    const [row] = rowsOf<{ tree_size: string | number; checkpointed: string | number | null }>(
      await tx.execute(sql`
        select tree_size, (select max(tree_size) from audit_checkpoints) as checkpointed
        from audit_log_state where singleton for update ${wait ? sql`` : sql`skip locked`}`),
    );
    return row && { treeSize: Number(row.tree_size), checkpointedSize: row.checkpointed === null ? undefined : Number(row.checkpointed) };
  }

  async state(tx: Executor): Promise<TreeState> {
    const [row] = rowsOf<{ tree_size: string | number; root_hash: Uint8Array }>(await tx.execute(sql`select tree_size, root_hash from audit_log_state where singleton`));
    return { treeSize: Number(row!.tree_size), rootHash: Buffer.from(row!.root_hash) };
  }

  /** Stored hashes of these subtrees, by nodeKey; a missing one is absent from the map. */
  async nodes(tx: Executor, addresses: NodeAddress[]): Promise<Map<string, Hash>> {
    if (addresses.length === 0) return new Map();
    const rows = rowsOf<{ level: number; index: string | number; hash: Uint8Array }>(
      await tx.execute(sql`
        select n.level, n.index, n.hash from audit_log_nodes n
        join unnest(${sql.param(addresses.map((a) => a.level))}::int[], ${sql.param(addresses.map((a) => a.index))}::bigint[]) as wanted(level, index)
          on n.level = wanted.level and n.index = wanted.index`),
    );
    return new Map(rows.map((row) => [nodeKey(row.level, Number(row.index)), Buffer.from(row.hash)]));
  }

  /** Stored nodes above the leaves whose subtree ends within leaves (start, end], by nodeKey. */
  async innerNodesEndingIn(tx: Executor, start: number, end: number): Promise<Map<string, Hash>> {
    const levels: number[] = [];
    const firsts: number[] = [];
    const lasts: number[] = [];
    for (let level = 1; 2 ** level <= end; level++) {
      const size = 2 ** level;
      // Node i covers leaves [i·size, (i+1)·size): it ends in (start, end] for these i.
      const first = Math.ceil((start + 1) / size) - 1;
      const last = Math.floor(end / size) - 1;
      if (last < first) continue;
      levels.push(level);
      firsts.push(first);
      lasts.push(last);
    }
    if (levels.length === 0) return new Map();
    const rows = rowsOf<{ level: number; index: string | number; hash: Uint8Array }>(
      await tx.execute(sql`
        select n.level, n.index, n.hash from audit_log_nodes n
        join unnest(${sql.param(levels)}::int[], ${sql.param(firsts)}::bigint[], ${sql.param(lasts)}::bigint[]) as wanted(level, first, last)
          on n.level = wanted.level and n.index between wanted.first and wanted.last`),
    );
    return new Map(rows.map((row) => [nodeKey(row.level, Number(row.index)), Buffer.from(row.hash)]));
  }

  /** The hashes of ranges of leaves, each folded from its stored perfect subtrees. */
  async rangeHashes(tx: Executor, ranges: LeafRange[]): Promise<Hash[]> {
    const subtreesOf = ranges.map((range) => perfectSubtrees(range));
    const stored = await this.nodes(tx, subtreesOf.flat());
    return subtreesOf.map((subtrees) =>
      foldSubtrees(
        subtrees.map(({ level, index }) => {
          const hash = stored.get(nodeKey(level, index));
          if (!hash) throw new Error(`audit tree node ${level}:${index} is missing`);
          return hash;
        }),
      ),
    );
  }

  /** The batch's writes, sent together (pipelined on the transaction's connection). */
  async append(tx: Executor, { firstLeafIndex, eventIds, nodes, state }: { firstLeafIndex: number; eventIds: number[]; nodes: (NodeAddress & { hash: Hash })[]; state: TreeState }) {
    await Promise.all([
      tx.execute(sql`
      insert into audit_log_leaves (leaf_index, event_id)
      select ${firstLeafIndex}::bigint + ordinality - 1, event_id from unnest(${sql.param(eventIds)}::bigint[]) with ordinality as e(event_id, ordinality)`),
      tx.execute(sql`
      insert into audit_log_nodes (level, index, hash)
      select * from unnest(${sql.param(nodes.map((n) => n.level))}::smallint[], ${sql.param(nodes.map((n) => n.index))}::bigint[],
        array(select decode(h, 'hex') from unnest(${sql.param(hex(nodes.map((n) => n.hash)))}::text[]) as h))`),
      tx.execute(sql`delete from audit_unsequenced where event_id = any(${sql.param(eventIds)}::bigint[])`),
      tx.execute(sql`update audit_log_state set tree_size = ${state.treeSize}, root_hash = decode(${state.rootHash.toString('hex')}, 'hex') where singleton`),
    ]);
  }

  async insertCheckpoint(tx: Executor, checkpoint: Omit<StoredCheckpoint, 'signedAt'>): Promise<StoredCheckpoint> {
    const [row] = rowsOf<CheckpointRow>(
      await tx.execute(sql`
        insert into audit_checkpoints (tree_size, root_hash, origin, key_id, signature)
        values (${checkpoint.treeSize}, decode(${checkpoint.rootHash.toString('hex')}, 'hex'), ${checkpoint.origin}, ${checkpoint.keyId},
          decode(${checkpoint.signature.toString('hex')}, 'hex'))
        returning *`),
    );
    return toCheckpoint(row!);
  }

  async latestCheckpoint(tx: Executor): Promise<StoredCheckpoint | undefined> {
    const [row] = rowsOf<CheckpointRow>(await tx.execute(sql`select * from audit_checkpoints order by tree_size desc limit 1`));
    return row && toCheckpoint(row);
  }

  /** Newest first, below a tree size (the cursor). */
  async checkpoints(tx: Executor, { below, limit }: { below?: number | undefined; limit: number }): Promise<StoredCheckpoint[]> {
    const rows = rowsOf<CheckpointRow>(
      await tx.execute(sql`
        select * from audit_checkpoints ${below === undefined ? sql`` : sql`where tree_size < ${below}`}
        order by tree_size desc limit ${limit}`),
    );
    return rows.map(toCheckpoint);
  }

  /** Those of tree sizes in (above, upTo], oldest first. */
  async checkpointsBetween(tx: Executor, above: number, upTo: number): Promise<StoredCheckpoint[]> {
    const rows = rowsOf<CheckpointRow>(
      await tx.execute(sql`select * from audit_checkpoints where tree_size > ${above} and tree_size <= ${upTo} order by tree_size`),
    );
    return rows.map(toCheckpoint);
  }

  async leafOf(tx: Executor, eventId: number): Promise<number | undefined> {
    const [row] = rowsOf<{ leaf_index: string | number }>(await tx.execute(sql`select leaf_index from audit_log_leaves where event_id = ${eventId}`));
    return row && Number(row.leaf_index);
  }

  /** Nothing waits to be sequenced, and the latest checkpoint covers the whole tree. */
  async idle(tx: Executor): Promise<boolean> {
    const [row] = rowsOf<{ idle: boolean }>(
      await tx.execute(sql`
        select not exists (select 1 from audit_unsequenced)
           and (select tree_size from audit_log_state where singleton) = (select max(tree_size) from audit_checkpoints) as idle`),
    );
    return row?.idle === true;
  }

  async unsequencedCount(tx: Executor): Promise<number> {
    const [row] = rowsOf<{ n: number }>(await tx.execute(sql`select count(*)::int as n from audit_unsequenced`));
    return row!.n;
  }

  /**
   * When the oldest event not yet in a signed checkpoint was written (undefined: every event is):
   * the first event still waiting, or the first leaf past the latest checkpoint.
   */
  async oldestUncheckpointed(tx: Executor): Promise<Date | undefined> {
    const [row] = rowsOf<{ at: Date | string | null }>(
      await tx.execute(sql`
        select least(
          (select e.occurred_at from audit_unsequenced u join audit_events e on e.id = u.event_id order by u.event_id limit 1),
          (select e.occurred_at from audit_log_leaves l join audit_events e on e.id = l.event_id
            where l.leaf_index >= coalesce((select max(tree_size) from audit_checkpoints), 0) order by l.leaf_index limit 1)
        ) as at`),
    );
    return row?.at ? new Date(row.at) : undefined;
  }
}
