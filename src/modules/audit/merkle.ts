// The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2) over the audit log: hashes, which
// stored subtrees a root or a proof is made of, and the checks a holder of a checkpoint runs.
// Only perfect subtrees are stored (level, index): the hash of the 2^level leaves from
// index × 2^level. Every other hash a proof needs is folded from O(log n) of them.
import { createHash } from 'node:crypto';

export type Hash = Buffer;

const sha256 = (...parts: Uint8Array[]): Hash => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

const leafPrefix = Buffer.from([0x00]);
const nodePrefix = Buffer.from([0x01]);

export const leafHash = (data: Uint8Array): Hash => sha256(leafPrefix, data);
export const nodeHash = (left: Uint8Array, right: Uint8Array): Hash => sha256(nodePrefix, left, right);
/** The root of the empty tree: the hash of the empty string. */
export const emptyRootHash: Hash = sha256();

export interface NodeAddress {
  level: number;
  index: number;
}

/** A run of leaves [start, end). */
export type LeafRange = readonly [start: number, end: number];

/** The largest power of two below n (n ≥ 2): where RFC 9162 splits a tree of n leaves. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The perfect subtrees a range splits into, left to right, largest first, as RFC 9162's recursion
 * splits it. Every range of a root or a proof starts on a multiple of its first subtree's size.
 * Plain arithmetic rather than bit operations: indexes pass 2^32.
 */
export function perfectSubtrees([start, end]: LeafRange): NodeAddress[] {
  const subtrees: NodeAddress[] = [];
  let at = start;
  while (at < end) {
    let size = 1;
    let level = 0;
    while (size * 2 <= end - at && at % (size * 2) === 0) {
      size *= 2;
      level++;
    }
    subtrees.push({ level, index: at / size });
    at += size;
  }
  return subtrees;
}

/** The hash of a range from the hashes of its perfect subtrees, in perfectSubtrees' order. */
export function foldSubtrees(hashes: Hash[]): Hash {
  if (hashes.length === 0) return emptyRootHash;
  let folded = hashes.at(-1)!;
  for (let i = hashes.length - 2; i >= 0; i--) folded = nodeHash(hashes[i]!, folded);
  return folded;
}

/** The ranges whose hashes make up the inclusion proof of leaf m in a tree of n (RFC 9162 §2.1.3.1), in proof order. */
export function inclusionProofRanges(m: number, n: number): LeafRange[] {
  const siblings: LeafRange[] = [];
  let start = 0;
  let end = n;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m < start + k) {
      siblings.push([start + k, end]);
      end = start + k;
    } else {
      siblings.push([start, start + k]);
      start += k;
    }
  }
  // Found from the root down; a proof lists them from the leaf up.
  return siblings.reverse();
}

/** The ranges whose hashes make up the consistency proof from a tree of m to one of n (RFC 9162 §2.1.4.1), in proof order. */
export function consistencyProofRanges(m: number, n: number): LeafRange[] {
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = n;
  let remaining = m;
  let isWholeOldTree = true;
  for (;;) {
    if (remaining === end - start) {
      if (!isWholeOldTree) ranges.push([start, end]);
      break;
    }
    const k = splitPoint(end - start);
    if (remaining <= k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
      remaining -= k;
      isWholeOldTree = false;
    }
  }
  return ranges.reverse();
}

/** RFC 9162 §2.1.3.2: does this proof lead from the leaf to the root? */
export function verifyInclusion(leafIndex: number, treeSize: number, leaf: Hash, proof: Hash[], root: Hash): boolean {
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2: is the tree of size `second` an append-only extension of the one of size `first`? */
export function verifyConsistency(first: number, second: number, firstRoot: Hash, secondRoot: Hash, proof: Hash[]): boolean {
  if (first > second) return false;
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (first === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : proof;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

const isPowerOfTwo = (n: number) => n > 0 && 2 ** Math.round(Math.log2(n)) === n;

/**
 * Appends leaves to a tree whose right edge (the perfect subtrees of [0, size)) is known, and
 * returns every node the new leaves complete: the leaves themselves and each parent whose right
 * child they fill in. Nodes already stored are never written again.
 */
export function appendLeaves(size: number, rightEdge: Map<string, Hash>, leaves: Hash[]): { nodes: (NodeAddress & { hash: Hash })[]; root: Hash } {
  const known = new Map(rightEdge);
  const nodes: (NodeAddress & { hash: Hash })[] = [];
  leaves.forEach((hash, offset) => {
    let level = 0;
    let index = size + offset;
    let current = hash;
    for (;;) {
      known.set(nodeKey(level, index), current);
      nodes.push({ level, index, hash: current });
      if (index % 2 === 0) break;
      current = nodeHash(known.get(nodeKey(level, index - 1))!, current);
      level++;
      index = (index - 1) / 2;
    }
  });
  const newSize = size + leaves.length;
  const root = foldSubtrees(perfectSubtrees([0, newSize]).map(({ level, index }) => known.get(nodeKey(level, index))!));
  return { nodes, root };
}

export const nodeKey = (level: number, index: number) => `${level}:${index}`;
