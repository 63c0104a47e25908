// The audit log as a verifiable log (SPEC §15, RFC 9162): checked from outside, the way a partner
// holding checkpoints would. Leaf hashes, roots, inclusion and consistency proofs are computed here
// by an implementation of RFC 9162 §2.1 of the test's own (not src/modules/audit/merkle.ts) from
// the events as the API serves them; signatures are checked with the JWK the API publishes. A
// rewrite by whoever holds the database, a sequencer killed mid-batch, two sequencers at once,
// unsequenced events, who may ask, bad input, and checkpoints sent out by webhook.
import { createHash, createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import canonicalize from 'canonicalize';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { rowsOf } from '../src/db/database.js';
import { systemAuditContext, type AuditContext, type AuditEntry } from '../src/modules/audit/audit-log.js';
import { AuditSequencer } from '../src/modules/audit/audit-sequencer.js';
import { AuditTreeRepository } from '../src/modules/audit/audit-tree-repository.js';
import { CheckpointSigner } from '../src/modules/audit/checkpoint-signer.js';
import { failedLogin, sequenceAuditLog } from './fixtures/audit-log.js';
import { auditEvents, countRows } from './fixtures/database.js';
import { fakeDns } from './fixtures/fake-dns.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { startReceiver, verified } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { requireStatus } from './fixtures/responses.js';
import { buildWebhookApp, drain, registerEndpoint } from './fixtures/webhooks.js';
import { buildTestApp, testAuditSigningKey, testConfig, testDatabaseServer, TestApp, type Json } from './helper.js';

// ---------------------------------------------------------------------------------------------
// RFC 9162 §2.1, written from the RFC: the Merkle Tree Hash, the proofs a log must give (PATH and
// PROOF), and the verifications a client runs (§2.1.3.2, §2.1.4.2).
// ---------------------------------------------------------------------------------------------
type Hash = Buffer;

const sha256 = (...parts: Uint8Array[]): Hash => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};
const hashChildren = (left: Hash, right: Hash): Hash => sha256(Buffer.from([0x01]), left, right);
/** The largest power of two smaller than n (n > 1). */
const largestPowerOfTwoBelow = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** MTH(D[n]) over leaf hashes (each already SHA-256(0x00 || entry)). */
function mth(leaves: Hash[]): Hash {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leaves[0]!;
  const k = largestPowerOfTwoBelow(leaves.length);
  return hashChildren(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** PATH(m, D[n]) of §2.1.3.1. */
function expectedInclusionPath(m: number, leaves: Hash[]): Hash[] {
  if (leaves.length <= 1) return [];
  const k = largestPowerOfTwoBelow(leaves.length);
  return m < k
    ? [...expectedInclusionPath(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...expectedInclusionPath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}

/** SUBPROOF(m, D[n], b) of §2.1.4.1; PROOF(m, D[n]) is SUBPROOF(m, D[n], true). */
function expectedSubproof(m: number, leaves: Hash[], wholeOldTree: boolean): Hash[] {
  const n = leaves.length;
  if (m === n) return wholeOldTree ? [] : [mth(leaves)];
  const k = largestPowerOfTwoBelow(n);
  return m <= k
    ? [...expectedSubproof(m, leaves.slice(0, k), wholeOldTree), mth(leaves.slice(k))]
    : [...expectedSubproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}

/** §2.1.3.2: does the path lead from the leaf hash to the root of a tree of treeSize? */
function inclusionVerifies(leafIndex: number, treeSize: number, leaf: Hash, path: Hash[], root: Hash): boolean {
  if (leafIndex >= treeSize) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** §2.1.4.2: does the proof show the tree of `second` leaves extends the one of `first`? */
function consistencyVerifies(first: number, second: number, firstRoot: Hash, secondRoot: Hash, proof: Hash[]): boolean {
  if (first > second || first < 1) return false;
  // Equal sizes: the proof is empty (SUBPROOF(m, D[m], true) = {}) and the trees are one tree.
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (proof.length === 0) return false;
  const isPowerOfTwo = (first & (first - 1)) === 0;
  const path = isPowerOfTwo ? [firstRoot, ...proof] : [...proof];
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
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

/** SPEC §15: SHA-256(0x00 || JCS(the event as served, without leafIndex)). */
function leafHashOf(event: Json): Hash {
  const { leafIndex: _position, ...served } = event;
  return sha256(Buffer.from([0x00]), Buffer.from(canonicalize(served)!, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and their signatures, checked with the published JWK only.
// ---------------------------------------------------------------------------------------------
interface Checkpoint {
  origin: string;
  treeSize: number;
  rootHash: string;
  timestamp: string;
  keyId: string;
  signature: string;
  note: string;
}

const b64 = (text: string) => Buffer.from(text, 'base64');
const body = (checkpoint: Pick<Checkpoint, 'origin' | 'treeSize' | 'rootHash'>) => `${checkpoint.origin}\n${checkpoint.treeSize}\n${checkpoint.rootHash}\n`;

function signatureVerifies(checkpoint: Pick<Checkpoint, 'origin' | 'treeSize' | 'rootHash' | 'signature'>, jwk: Json): boolean {
  const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  return verifySignature(null, Buffer.from(body(checkpoint)), key, b64(checkpoint.signature));
}

/** The C2SP signed note: the body, a blank line, and "— origin base64(keyHash[4] || signature)". */
function expectedNote(checkpoint: Checkpoint, jwk: Json): string {
  const keyHash = sha256(Buffer.from(`${checkpoint.origin}\n`), Buffer.from([0x01]), Buffer.from(jwk.x, 'base64url')).subarray(0, 4);
  return `${body(checkpoint)}\n\u2014 ${checkpoint.origin} ${Buffer.concat([keyHash, b64(checkpoint.signature)]).toString('base64')}\n`;
}

/** RFC 7638 thumbprint of an Ed25519 JWK. */
const thumbprint = (jwk: Json) => createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`).digest('base64url');

// ---------------------------------------------------------------------------------------------
// Reading the log through the API.
// ---------------------------------------------------------------------------------------------
const get = (app: TestApp, url: string, token: string) => app.request({ method: 'GET', url, token });
const latestCheckpoint = async (app: TestApp, token: string): Promise<Checkpoint> =>
  requireStatus(await get(app, '/v1/audit-events/checkpoints/latest', token), 200, 'latest checkpoint') as Checkpoint;
const publicKey = async (app: TestApp, token: string): Promise<Json> => requireStatus(await get(app, '/v1/audit-events/public-key', token), 200, 'public key');

/** Every checkpoint, newest first, walked page by page. */
async function allCheckpoints(app: TestApp, token: string): Promise<Checkpoint[]> {
  const checkpoints: Checkpoint[] = [];
  let cursor: string | null = null;
  do {
    const page: Json = requireStatus(await get(app, `/v1/audit-events/checkpoints?limit=200${cursor ? `&cursor=${cursor}` : ''}`, token), 200, 'checkpoints');
    checkpoints.push(...page.data);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return checkpoints;
}

/** Every event the caller may read, as served (one NDJSON export). */
async function servedEvents(app: TestApp, token: string): Promise<Json[]> {
  const response = await get(app, '/v1/audit-events/export', token);
  if (response.statusCode !== 200) throw new Error(`export: ${response.statusCode} ${response.body}`);
  return response.body
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Json);
}

/**
 * The first `size` leaves of the tree from the served events: the events at leaf indexes 0..size-1
 * and their leaf hashes, computed here. Throws unless every index below size holds exactly one event.
 */
async function leavesOf(app: TestApp, token: string, size: number): Promise<{ events: Json[]; hashes: Hash[] }> {
  const byIndex = new Map<number, Json>();
  for (const event of await servedEvents(app, token)) {
    if (event.leafIndex === undefined || event.leafIndex >= size) continue;
    if (byIndex.has(event.leafIndex)) throw new Error(`leaf ${event.leafIndex} is served for two events (${byIndex.get(event.leafIndex)!.id}, ${event.id})`);
    byIndex.set(event.leafIndex, event);
  }
  const events: Json[] = [];
  for (let index = 0; index < size; index++) {
    const event = byIndex.get(index);
    if (!event) throw new Error(`no served event has leafIndex ${index} (tree size ${size})`);
    events.push(event);
  }
  return { events, hashes: events.map(leafHashOf) };
}

async function inclusionProof(app: TestApp, token: string, eventId: number, treeSize?: number): Promise<{ leafIndex: number; treeSize: number; leafHash: string; hashes: string[] }> {
  return requireStatus(await get(app, `/v1/audit-events/${eventId}/proof${treeSize === undefined ? '' : `?treeSize=${treeSize}`}`, token), 200, `proof of ${eventId}`) as never;
}

async function consistencyProof(app: TestApp, token: string, from: number, to: number): Promise<Hash[]> {
  const proof = requireStatus(await get(app, `/v1/audit-events/consistency?from=${from}&to=${to}`, token), 200, `consistency ${from}→${to}`);
  if (proof.from !== from || proof.to !== to) throw new Error(`consistency ${from}→${to} answered for ${proof.from}→${proof.to}`);
  return (proof.hashes as string[]).map(b64);
}

const run = <T extends Record<string, unknown> = Json>(app: TestApp, query: ReturnType<typeof sql>) => app.app.database.rows<T>(query);

/** Runs statements as the database's owner with every trigger off, in one transaction. */
const asOwnerWithoutTriggers = <T>(app: TestApp, work: (execute: <R = Json>(query: ReturnType<typeof sql>) => Promise<R[]>) => Promise<T>) =>
  app.app.db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    return work(async <R,>(query: ReturnType<typeof sql>) => rowsOf<R>(await tx.execute(query)));
  });

/** n audit events written straight through the audit log (as the service would), in one group. */
function entries(n: number, tag: string, extra: (index: number) => Partial<AuditEntry> = () => ({})): AuditEntry[] {
  return Array.from({ length: n }, (_, index) => ({
    action: `test.${tag}`,
    outcome: (['success', 'denied', 'error'] as const)[index % 3]!,
    resourceType: 'test_record',
    resourceId: `${tag}-${index}`,
    httpStatus: 200 + (index % 5),
    ...extra(index),
  }));
}

/** A context with a user agent JCS must escape and keep as UTF-8. */
const awkwardContext = (): AuditContext => ({
  ...systemAuditContext('transparency-test'),
  userAgent: 'Zürich "quoted" \\ back\tslash \u2028 ☃ 😀 \u0001',
});

/** A sequencer of its own over an app's database, with a small batch: many batches from few events. */
function smallBatchSequencer(app: TestApp, batchSize: number): AuditSequencer {
  const signer = new CheckpointSigner(Buffer.from(testAuditSigningKey, 'base64'), app.config.audit.origin);
  return new AuditSequencer(app.app.db, new AuditTreeRepository(), signer, app.app.domainEvents, { batchSize, checkpointIntervalMs: 0, checkpointWebhookMs: 0, apiPrefix: '/v1' });
}

/** The text of an error and its causes (drizzle wraps the driver's error). */
function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let current = error as { message?: string; cause?: unknown } | undefined; current; current = current.cause as typeof current) parts.push(String(current.message));
  return parts.join(' <- ');
}

/** Leaves, queue and events of the stored tree: every event in exactly one leaf, indexes 0..n-1. */
async function assertTreeWhole(t: Test, app: TestApp, what: string) {
  const [tree] = await run<{ leaves: number; first: number | null; last: number | null; distinct_events: number; size: number }>(
    app,
    sql`select count(*)::int as leaves, min(leaf_index)::int as first, max(leaf_index)::int as last, count(distinct event_id)::int as distinct_events,
      (select tree_size::int from audit_log_state) as size from audit_log_leaves`,
  );
  const events = await countRows(app, sql`select count(*) as n from audit_events`);
  const unplaced = await countRows(app, sql`select count(*) as n from audit_events e where not exists (select 1 from audit_log_leaves l where l.event_id = e.id)`);
  const orphans = await countRows(app, sql`select count(*) as n from audit_log_leaves l where not exists (select 1 from audit_events e where e.id = l.event_id)`);
  const queued = await countRows(app, sql`select count(*) as n from audit_unsequenced`);
  const nodesPastTree = await countRows(app, sql`select count(*) as n from audit_log_nodes where (index + 1) * power(2, level) > (select tree_size from audit_log_state)`);
  t.same(
    { ...tree, events, unplaced, orphans, queued, nodesPastTree },
    { leaves: events, first: 0, last: events - 1, distinct_events: events, size: events, events, unplaced: 0, orphans: 0, queued: 0, nodesPastTree: 0 },
    `${what}: every event (${events}) in exactly one leaf, leaf indexes 0..${events - 1}, the state's size, nothing queued, no node past the tree`,
  );
}

// ---------------------------------------------------------------------------------------------
// The app most tests share: a normal one, whose worker sequences every 200 ms.
// ---------------------------------------------------------------------------------------------
const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

t.test('proofs the API serves are the ones RFC 9162 defines, checked by an implementation of the test\'s own', async (t) => {
  for (let attempt = 0; attempt < 3; attempt++) await failedLogin(test, `nobody.${attempt}@nowhere.example`);
  await test.app.auditLog.recordMany(awkwardContext(), entries(70, 'proofs', (index) => (index % 7 === 0 ? { repeatCount: index + 1, patientId: '11111111-1111-4111-8111-111111111111' } : {})));
  await sequenceAuditLog(test);
  const checkpoint = await latestCheckpoint(test, networkAdmin);
  const n = checkpoint.treeSize;
  t.ok(n >= 64, `a tree of ${n} leaves`);
  const { events, hashes } = await leavesOf(test, networkAdmin, n);
  t.ok(events.some((event) => event.userAgent?.includes('😀') && event.repeatCount !== undefined), 'among them events with escapes, non-ASCII text and a repeatCount');

  t.ok(mth(hashes).equals(b64(checkpoint.rootHash)), 'MTH of the leaf hashes computed here from the served events is the signed root');
  const jwk = await publicKey(test, networkAdmin);
  t.ok(signatureVerifies(checkpoint, jwk), 'the checkpoint signature verifies with the published JWK');

  t.test('every leaf: its leafHash, its leafIndex and its path at the checkpoint', async (t) => {
    let wrong = 0;
    for (const [index, event] of events.entries()) {
      const proof = await inclusionProof(test, networkAdmin, event.id, n);
      const path = proof.hashes.map(b64);
      const expected = expectedInclusionPath(index, hashes);
      const good =
        proof.leafIndex === index &&
        proof.treeSize === n &&
        b64(proof.leafHash).equals(hashes[index]!) &&
        path.length === expected.length &&
        path.every((hash, at) => hash.equals(expected[at]!)) &&
        inclusionVerifies(index, n, hashes[index]!, path, b64(checkpoint.rootHash));
      if (!good) {
        wrong++;
        t.fail(`event ${event.id} (leaf ${index}): ${JSON.stringify(proof)}`);
      }
    }
    t.equal(wrong, 0, `each of ${n} leaves: leafHash = SHA-256(0x00 || JCS(event)), PATH(m, D[n]) as RFC 9162 defines it, and it verifies`);
    const [one] = events.slice(Math.floor(n / 3));
    const single = requireStatus(await get(test, `/v1/audit-events/${one!.id}`, networkAdmin), 200, 'one event');
    t.same(single, one, 'GET /v1/audit-events/{id} serves the event (and leafIndex) as the export does');
    const byDefault = await inclusionProof(test, networkAdmin, one!.id);
    t.ok(byDefault.treeSize >= n, 'without treeSize: the latest checkpoint');
  });

  t.test('inclusion in smaller trees: first, middle and last leaves, sizes odd, even and powers of two', async (t) => {
    const sizes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 32, 33, 63, 64, n - 1, n];
    for (const size of sizes) {
      const root = mth(hashes.slice(0, size));
      for (const m of new Set([0, Math.floor(size / 2), size - 1])) {
        const proof = await inclusionProof(test, networkAdmin, events[m]!.id, size);
        const path = proof.hashes.map(b64);
        const expected = expectedInclusionPath(m, hashes.slice(0, size));
        t.same(proof.hashes, expected.map((hash) => hash.toString('base64')), `leaf ${m} of ${size}: PATH(m, D[n])`);
        t.ok(inclusionVerifies(m, size, hashes[m]!, path, root), `leaf ${m} of ${size}: verifies against MTH(D[${size}])`);
        if (size > 1) t.notOk(inclusionVerifies(m, size, hashes[(m + 1) % size]!, path, root), `leaf ${m} of ${size}: another leaf's hash does not verify`);
      }
    }
  });

  t.test('consistency between sizes, powers of two and not, and from = to', async (t) => {
    const pairs: [number, number][] = [
      [1, 1], [1, 2], [1, 3], [1, n], [2, 3], [2, 5], [3, 4], [3, 7], [4, 4], [4, 8], [4, 13], [5, 8], [6, 7], [7, 8],
      [8, 16], [9, 31], [13, 32], [16, 33], [31, 32], [32, 64], [33, 63], [63, n], [64, n], [n - 1, n], [n, n],
    ];
    for (const [from, to] of pairs) {
      const proof = await consistencyProof(test, networkAdmin, from, to);
      const expected = expectedSubproof(from, hashes.slice(0, to), true);
      t.same(proof.map((hash) => hash.toString('base64')), expected.map((hash) => hash.toString('base64')), `${from}→${to}: PROOF(m, D[n])`);
      const [oldRoot, newRoot] = [mth(hashes.slice(0, from)), mth(hashes.slice(0, to))];
      t.ok(consistencyVerifies(from, to, oldRoot, newRoot, proof), `${from}→${to}: verifies`);
      if (from < to) {
        const flipped = proof.map((hash, index) => (index === proof.length - 1 ? Buffer.from(hash.map((byte, at) => (at === 0 ? byte ^ 1 : byte))) : hash));
        t.notOk(consistencyVerifies(from, to, oldRoot, newRoot, flipped), `${from}→${to}: one flipped bit fails`);
        const otherOldRoot = mth([sha256(Buffer.from('not an event')), ...hashes.slice(1, from)]);
        t.notOk(consistencyVerifies(from, to, otherOldRoot, newRoot, proof), `${from}→${to}: another old root fails`);
      }
    }
  });

  t.test('every checkpoint so far is signed by the published key over MTH of its first leaves', async (t) => {
    t.equal(jwk.kty, 'OKP');
    t.equal(jwk.crv, 'Ed25519');
    t.equal(jwk.kid, thumbprint(jwk), 'kid is the RFC 7638 thumbprint of the key');
    const checkpoints = (await allCheckpoints(test, networkAdmin)).filter((each) => each.treeSize <= n);
    t.ok(checkpoints.length > 1, `${checkpoints.length} checkpoints up to ${n}`);
    t.same(
      checkpoints.map((each) => each.treeSize),
      [...checkpoints.map((each) => each.treeSize)].sort((a, b) => b - a),
      'listed newest (largest) first',
    );
    const wrong = checkpoints.filter(
      (each) =>
        !signatureVerifies(each, jwk) ||
        each.keyId !== jwk.kid ||
        each.origin !== checkpoint.origin ||
        each.note !== expectedNote(each, jwk) ||
        !b64(each.rootHash).equals(mth(hashes.slice(0, each.treeSize))),
    );
    t.same(wrong, [], 'each: signature, keyId, origin, C2SP note, and root = MTH(D[treeSize])');
    t.notOk(signatureVerifies({ ...checkpoint, treeSize: checkpoint.treeSize - 1 }, jwk), 'the signature does not cover another tree size');
  });
});

t.test('a checkpoint before and one after 10,000 more events are consistent, and both signed', async (t) => {
  await sequenceAuditLog(test);
  const before = await latestCheckpoint(test, networkAdmin);
  const started = Date.now();
  for (let part = 0; part < 4; part++) await test.app.auditLog.recordMany(systemAuditContext('bulk'), entries(2500, `bulk${part}`));
  const written = Date.now() - started;
  await sequenceAuditLog(test);
  const sequenced = Date.now() - started - written;
  const after = await latestCheckpoint(test, networkAdmin);
  t.ok(after.treeSize >= before.treeSize + 10_000, `from ${before.treeSize} to ${after.treeSize} leaves (written in ${written} ms, sequenced in ${sequenced} ms)`);

  const jwk = await publicKey(test, networkAdmin);
  t.ok(signatureVerifies(before, jwk), 'the older checkpoint verifies with the JWK');
  t.ok(signatureVerifies(after, jwk), 'the newer checkpoint verifies with the JWK');

  const proof = await consistencyProof(test, networkAdmin, before.treeSize, after.treeSize);
  const [oldRoot, newRoot] = [b64(before.rootHash), b64(after.rootHash)];
  t.ok(proof.length > 0 && proof.length <= 2 * Math.ceil(Math.log2(after.treeSize)), `a proof of ${proof.length} hashes`);
  t.ok(consistencyVerifies(before.treeSize, after.treeSize, oldRoot, newRoot, proof), 'the consistency proof verifies against both signed roots');
  for (let index = 0; index < proof.length; index++) {
    const tampered = proof.map((hash, at) => (at === index ? Buffer.from(hash.map((byte, position) => (position === 31 ? byte ^ 0x80 : byte))) : hash));
    if (consistencyVerifies(before.treeSize, after.treeSize, oldRoot, newRoot, tampered)) t.fail(`hash ${index} changed, yet the proof verifies`);
  }
  t.pass(`changing any one of the ${proof.length} hashes fails`);
  t.notOk(consistencyVerifies(before.treeSize, after.treeSize, oldRoot, newRoot, proof.slice(0, -1)), 'a hash dropped fails');
  t.notOk(consistencyVerifies(before.treeSize, after.treeSize, oldRoot, newRoot, [...proof, proof[0]!]), 'a hash added fails');
  t.notOk(consistencyVerifies(before.treeSize, after.treeSize, newRoot, oldRoot, proof), 'the roots swapped fail');

  const { events, hashes } = await leavesOf(test, networkAdmin, after.treeSize);
  t.ok(mth(hashes).equals(newRoot), `MTH of all ${after.treeSize} served events, hashed here, is the newer signed root`);
  t.ok(mth(hashes.slice(0, before.treeSize)).equals(oldRoot), 'and of the first ones the older root');
  const bulk = events[before.treeSize + 5000]!;
  const inclusion = await inclusionProof(test, networkAdmin, bulk.id, after.treeSize);
  t.ok(inclusionVerifies(inclusion.leafIndex, after.treeSize, leafHashOf(bulk), inclusion.hashes.map(b64), newRoot), 'an event of the 10,000 is proven in the newer tree');
  const verification = requireStatus(await get(test, '/v1/audit-events/verify', networkAdmin), 200, 'verify');
  t.match(verification, { valid: true }, 'verify: valid');
  t.ok(verification.treeSize >= after.treeSize, `having checked ${verification.treeSize} leaves`);
});

t.test('a rewrite by the database owner is caught against a checkpoint kept outside', async (t) => {
  const app = await buildTestApp(t, { env: { ROLE: 'api' } });
  const token = await app.loginAsAdmin();
  for (let attempt = 0; attempt < 6; attempt++) await failedLogin(app, `intruder.${attempt}@nowhere.example`);
  await app.app.auditLog.recordMany(systemAuditContext('rewrite'), entries(25, 'rewrite'));
  await sequenceAuditLog(app);
  // Kept outside: a partner's copy, out of the database owner's reach.
  const kept = await latestCheckpoint(app, token);
  const jwk = await publicKey(app, token);
  const before = await leavesOf(app, token, kept.treeSize);
  t.ok(mth(before.hashes).equals(b64(kept.rootHash)), `the kept checkpoint (${kept.treeSize} leaves) matches the served events`);
  const target = before.events.filter((event) => event.action === 'auth.login_failed').at(-2)!;
  const leaf = target.leafIndex as number;
  t.ok(leaf > 0 && leaf < kept.treeSize - 1, `the target: event ${target.id} at leaf ${leaf}`);

  t.test('rewritten with every hash recomputed and later checkpoints deleted, then signed anew', async (t) => {
    const rewritten = { ...target, action: 'auth.login' };
    const rewrittenHash = leafHashOf(rewritten);
    const touched = await asOwnerWithoutTriggers(app, async (execute) => {
      const [state] = await execute<{ tree_size: string | number }>(sql`select tree_size from audit_log_state for update`);
      const size = Number(state!.tree_size);
      await execute(sql`update audit_events set action = 'auth.login' where id = ${target.id}`);
      const leaves: Hash[] = (await execute<{ hash: Uint8Array }>(sql`select hash from audit_log_nodes where level = 0 and index < ${size} order by index`)).map((row) => Buffer.from(row.hash));
      leaves[leaf] = rewrittenHash;
      let nodes = 0;
      for (let level = 0; 2 ** level <= size; level++) {
        const index = Math.floor(leaf / 2 ** level);
        if ((index + 1) * 2 ** level > size) break;
        const hash = mth(leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
        await execute(sql`update audit_log_nodes set hash = decode(${hash.toString('hex')}, 'hex') where level = ${level} and index = ${index}`);
        nodes++;
      }
      await execute(sql`update audit_log_state set root_hash = decode(${mth(leaves).toString('hex')}, 'hex')`);
      await execute(sql`delete from audit_checkpoints where tree_size > ${leaf}`);
      return nodes;
    });
    t.ok(touched > 1, `the leaf and ${touched - 1} nodes above it rewritten`);
    for (let attempt = 0; attempt < 3; attempt++) await failedLogin(app, `later.${attempt}@nowhere.example`);
    await sequenceAuditLog(app);
    const signed = await latestCheckpoint(app, token);
    t.ok(signed.treeSize > kept.treeSize, `a new checkpoint of ${signed.treeSize} leaves`);
    t.ok(signatureVerifies(signed, jwk), 'signed with the log key (the sequencer signs whatever tree it finds)');

    const served = requireStatus(await get(app, `/v1/audit-events/${target.id}`, token), 200, 'the rewritten event');
    t.same(served, { ...rewritten, leafIndex: leaf }, 'the event is served rewritten, at its leaf');
    const now = await leavesOf(app, token, signed.treeSize);
    t.ok(mth(now.hashes).equals(b64(signed.rootHash)), 'the stored tree is self-consistent: the new root is MTH of the served events');
    t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true, treeSize: signed.treeSize }, 'so the log, asked on its own, finds nothing');

    const consistency = await consistencyProof(app, token, kept.treeSize, signed.treeSize);
    t.notOk(consistencyVerifies(kept.treeSize, signed.treeSize, b64(kept.rootHash), b64(signed.rootHash), consistency), 'the consistency proof from the kept checkpoint to the new one does not verify');
    t.ok(
      consistencyVerifies(kept.treeSize, signed.treeSize, mth(now.hashes.slice(0, kept.treeSize)), b64(signed.rootHash), consistency),
      '(it is a correct proof of the rewritten tree: only the root kept outside differs)',
    );
    const inclusion = await inclusionProof(app, token, target.id, kept.treeSize);
    t.ok(b64(inclusion.leafHash).equals(leafHashOf(served)), 'the proof names the leaf hash of the event now served');
    t.notOk(inclusionVerifies(leaf, kept.treeSize, leafHashOf(served), inclusion.hashes.map(b64), b64(kept.rootHash)), 'the rewritten event is not in the kept tree');
    t.ok(inclusionVerifies(leaf, kept.treeSize, leafHashOf(target), inclusion.hashes.map(b64), b64(kept.rootHash)), 'while the original event is: the kept checkpoint tells what was there');
  });

  t.test('rewritten without rehashing: verify says modified, at its leaf', async (t) => {
    await sequenceAuditLog(app);
    const other = before.events.filter((event) => event.action === 'test.rewrite')[1]!;
    await asOwnerWithoutTriggers(app, (execute) => execute(sql`update audit_events set outcome = 'success', http_status = 200 where id = ${other.id}`));
    t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: false, firstBrokenIndex: other.leafIndex, problem: 'modified' });
    await asOwnerWithoutTriggers(app, (execute) => execute(sql`update audit_events set outcome = ${other.outcome}, http_status = ${other.httpStatus} where id = ${other.id}`));
    t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true }, 'put back: valid again');
  });

  t.test('an event deleted: verify says missing, at its leaf', async (t) => {
    await sequenceAuditLog(app);
    const gone = before.events.filter((event) => event.action === 'test.rewrite')[4]!;
    await asOwnerWithoutTriggers(app, (execute) => execute(sql`delete from audit_events where id = ${gone.id}`));
    t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: false, firstBrokenIndex: gone.leafIndex, problem: 'missing' });
  });
});

t.test('a stored node or a checkpoint signature changed: verify says nodes-modified, bad-signature', async (t) => {
  const app = await buildTestApp(t, { env: { ROLE: 'api' } });
  const token = await app.loginAsAdmin();
  await app.app.auditLog.recordMany(systemAuditContext('nodes'), entries(40, 'nodes'));
  await sequenceAuditLog(app);
  const size = (await latestCheckpoint(app, token)).treeSize;
  t.ok(size > 32 && size < 64, `${size} leaves: the subtree of leaves 0..31 is on the right edge, that of leaves 2..3 inside`);
  const corrupt = (level: number, index: number) =>
    asOwnerWithoutTriggers(app, (execute) => execute(sql`update audit_log_nodes set hash = sha256(hash) where level = ${level} and index = ${index}`));
  const restore = (level: number, index: number, hash: Uint8Array) =>
    asOwnerWithoutTriggers(app, (execute) => execute(sql`update audit_log_nodes set hash = decode(${Buffer.from(hash).toString('hex')}, 'hex') where level = ${level} and index = ${index}`));
  const stored = async (level: number, index: number) => (await run<{ hash: Uint8Array }>(app, sql`select hash from audit_log_nodes where level = ${level} and index = ${index}`))[0]!.hash;

  const edge = await stored(5, 0);
  await corrupt(5, 0);
  t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: false, firstBrokenIndex: 0, problem: 'nodes-modified' }, 'a node on the right edge (leaves 0..31)');
  await restore(5, 0, edge);
  t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true }, 'put back: valid');

  // Proofs are served from inner nodes too: one changed there gives partners proofs that fail.
  const inner = await stored(1, 1);
  await corrupt(1, 1);
  const [leafZero] = (await leavesOf(app, token, 1)).events;
  const proof = await inclusionProof(app, token, leafZero!.id, size);
  t.notOk(inclusionVerifies(0, size, leafHashOf(leafZero!), proof.hashes.map(b64), b64((await latestCheckpoint(app, token)).rootHash)), 'the proof of leaf 0, served from the changed node, fails for its holder');
  t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: false, firstBrokenIndex: 2, problem: 'nodes-modified' }, 'an inner node (leaves 2..3): verify names it');
  await restore(1, 1, inner);
  t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true }, 'put back: valid');

  // The latest checkpoint replaced by one whose signature is not the key's.
  const jwk = await publicKey(app, token);
  await asOwnerWithoutTriggers(app, async (execute) => {
    const [row] = await execute<{ tree_size: string | number }>(sql`delete from audit_checkpoints where tree_size = ${size} returning tree_size`);
    t.ok(row, 'the latest checkpoint taken out');
    await execute(sql`
      insert into audit_checkpoints (tree_size, root_hash, origin, key_id, signature)
      select ${size}, root_hash, ${app.config.audit.origin}, ${jwk.kid}, decode(${Buffer.alloc(64, 7).toString('hex')}, 'hex') from audit_log_state`);
  });
  const forged = await latestCheckpoint(app, token);
  t.notOk(signatureVerifies(forged, jwk), 'the served checkpoint does not verify with the published key');
  t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: false, firstBrokenIndex: size, problem: 'bad-signature' }, 'verify: bad-signature');
});

t.test('a sequencer killed mid-batch loses and duplicates nothing', async (t) => {
  const app = await buildTestApp(t, { env: { ROLE: 'api' } });
  const token = await app.loginAsAdmin();
  await sequenceAuditLog(app);
  const jwk = await publicKey(app, token);

  t.test('a batch that fails after writing its leaves and nodes, before the state', async (t) => {
    await app.app.auditLog.recordMany(systemAuditContext('crash'), entries(40, 'crash'));
    const [{ size: start }] = (await run<{ size: number }>(app, sql`select tree_size::int as size from audit_log_state`)) as [{ size: number }];
    // The third batch of 7 fails at its very last statement: its leaves, nodes and dequeues are written by then.
    await run(app, sql.raw(`
      create function fail_sequencing() returns trigger language plpgsql as $$
      begin
        if new.tree_size > ${start + 14} then raise exception 'sequencer killed mid-batch'; end if;
        return new;
      end $$`));
    await run(app, sql`create trigger fail_sequencing before update on audit_log_state for each row execute function fail_sequencing()`);
    const failure = await smallBatchSequencer(app, 7).run({ wait: true }).then(
      () => undefined,
      (error: unknown) => errorText(error),
    );
    t.match(failure, /sequencer killed mid-batch/, 'the run fails partway');
    const [state] = await run<{ size: number; leaves: number; queued: number; checkpoint: number }>(
      app,
      sql`select tree_size::int as size, (select count(*)::int from audit_log_leaves) as leaves, (select count(*)::int from audit_unsequenced) as queued,
        (select max(tree_size)::int from audit_checkpoints) as checkpoint from audit_log_state`,
    );
    t.same(
      { size: state!.size, leaves: state!.leaves, checkpoint: state!.checkpoint },
      { size: start + 14, leaves: start + 14, checkpoint: start + 14 },
      'the two batches before it are in, signed; nothing of the failed one',
    );
    t.ok(state!.queued >= 40 - 14, `${state!.queued} events still queued`);
    await run(app, sql`drop trigger fail_sequencing on audit_log_state`);
    await run(app, sql`drop function fail_sequencing()`);

    await sequenceAuditLog(app);
    await assertTreeWhole(t, app, 'sequenced again');
    const latest = await latestCheckpoint(app, token);
    t.ok(mth((await leavesOf(app, token, latest.treeSize)).hashes).equals(b64(latest.rootHash)) && signatureVerifies(latest, jwk), 'the signed root is MTH of the served events');
    t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true, treeSize: latest.treeSize });
  });

  t.test(
    "PostgreSQL: the sequencer's connection terminated in the middle of a batch",
    { skip: testDatabaseServer ? false : 'PostgreSQL only: the embedded database has no backend to terminate' },
    async (t) => {
      await app.app.auditLog.recordMany(systemAuditContext('kill'), entries(30, 'kill'));
      await run(app, sql`create sequence kill_once`);
      // Once, at the second batch's node insert: its leaves are in, its state is not.
      await run(app, sql.raw(`
        create function kill_sequencer() returns trigger language plpgsql as $$
        begin
          if nextval('kill_once') = 2 then perform pg_terminate_backend(pg_backend_pid()); perform pg_sleep(5); end if;
          return null;
        end $$`));
      await run(app, sql`create trigger kill_sequencer after insert on audit_log_nodes for each statement execute function kill_sequencer()`);
      const outcome = await smallBatchSequencer(app, 6).run({ wait: true }).then(
        () => 'finished',
        (error: unknown) => errorText(error),
      );
      t.match(outcome, /terminat|closed|57P01|CONNECTION/i, `the run fails with its connection (${outcome.slice(0, 200)})`);
      const [{ calls }] = (await run<{ calls: number }>(app, sql`select last_value::int as calls from kill_once`)) as [{ calls: number }];
      t.equal(calls, 2, 'the second batch was killed');
      await run(app, sql`drop trigger kill_sequencer on audit_log_nodes`);
      await run(app, sql`drop function kill_sequencer()`);
      await run(app, sql`drop sequence kill_once`);
      await sequenceAuditLog(app);
      await assertTreeWhole(t, app, 'sequenced again');
      const latest = await latestCheckpoint(app, token);
      t.ok(mth((await leavesOf(app, token, latest.treeSize)).hashes).equals(b64(latest.rootHash)), 'the signed root is MTH of the served events');
      t.match(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true, treeSize: latest.treeSize });
    },
  );
});

t.test(
  'two sequencers on one database never interleave',
  { skip: testDatabaseServer ? false : 'PostgreSQL only: two apps cannot open one embedded database' },
  async (t) => {
    const app = await buildTestApp(t);
    const token = await app.loginAsAdmin();
    const second = await buildApp({ config: testConfig({ DATABASE_URL: app.config.databaseUrl!, ROLE: 'api' }) });
    t.teardown(() => second.close());
    const secondApp = new TestApp(second, app.config);
    // The two apps' own sequencers, and one of small batches on each app's connections.
    const sequencers = [app.app.auditSequencer, second.auditSequencer, smallBatchSequencer(app, 5), smallBatchSequencer(secondApp, 3)];

    let writing = true;
    let written = 0;
    const writers = [app, secondApp].map(async (writer, which) => {
      for (let round = 0; writing; round++) {
        const n = 1 + ((round * 7 + which) % 23);
        await writer.app.auditLog.recordMany(systemAuditContext(`writer${which}`), entries(n, `race${which}`));
        written += n;
        await sleep(2);
      }
    });
    // A batch at a time, not run(): a run drains the whole queue, and the small-batch sequencers
    // would go on for 40 s after the writers stop, racing nobody. The queue left is drained below.
    const runs = sequencers.map(async (sequencer, which) => {
      let count = 0;
      while (writing) {
        await sequencer.sequenceBatch({ wait: (count + which) % 3 === 0 });
        count++;
        await sleep(which);
      }
      return count;
    });
    await sleep(2500);
    writing = false;
    await Promise.all(writers);
    const runCounts = await Promise.all(runs);
    await sequenceAuditLog(app);
    t.ok(written > 200, `${written} events written while ${runCounts.join(' + ')} sequencer batches went on`);
    await assertTreeWhole(t, app, 'after the race');

    const jwk = await publicKey(app, token);
    const checkpoints = (await allCheckpoints(app, token)).reverse();
    t.ok(checkpoints.length > 10, `${checkpoints.length} checkpoints signed`);
    const broken: string[] = [];
    for (let index = 1; index < checkpoints.length; index++) {
      const [older, newer] = [checkpoints[index - 1]!, checkpoints[index]!];
      if (!signatureVerifies(newer, jwk)) broken.push(`${newer.treeSize}: bad signature`);
      // Every tree extends the empty one (a first run may sign it): its root is the hash of nothing.
      if (older.treeSize === 0) {
        if (!b64(older.rootHash).equals(sha256()) || !signatureVerifies(older, jwk)) broken.push('the empty tree');
        continue;
      }
      const proof = await consistencyProof(app, token, older.treeSize, newer.treeSize);
      if (!consistencyVerifies(older.treeSize, newer.treeSize, b64(older.rootHash), b64(newer.rootHash), proof)) broken.push(`${older.treeSize}→${newer.treeSize}`);
    }
    t.same(broken, [], 'each checkpoint is signed and consistent with the one before it');
    const latest = checkpoints.at(-1)!;
    t.ok(mth((await leavesOf(app, token, latest.treeSize)).hashes).equals(b64(latest.rootHash)), 'the last root is MTH of every served event');
    // The first app's worker goes on sequencing (the export is an event too): at least that tree.
    const verification = requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify');
    t.match(verification, { valid: true }, 'verify: valid');
    t.ok(verification.treeSize >= latest.treeSize, `over ${verification.treeSize} leaves`);
  },
);

t.test('events not yet sequenced, or not yet in a checkpoint, are not tampering', async (t) => {
  // No worker: nothing is sequenced unless the test runs the sequencer; a checkpoint at most hourly.
  const app = await buildTestApp(t, { env: { ROLE: 'api', AUDIT_CHECKPOINT_INTERVAL_MS: '3600000' } });
  const token = await app.loginAsAdmin();
  await app.app.auditLog.recordMany(systemAuditContext('waiting'), entries(5, 'waiting'));
  const events = await countRows(app, sql`select count(*) as n from audit_events`);
  t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true, treeSize: 0, unsequenced: events }, `no checkpoint yet: valid, ${events} unsequenced`);
  const [waiting] = await auditEvents(app, { action: 'test.waiting' });
  const served = requireStatus(await get(app, `/v1/audit-events/${waiting!.id}`, token), 200, 'the event');
  t.notOk('leafIndex' in served, 'served without a leafIndex');

  const notYet = async (what: string) => {
    const response = await get(app, `/v1/audit-events/${waiting!.id}/proof`, token);
    const problem = assertProblem(t, response, 409, [], what);
    t.equal(problem.code, 'not-yet-sequenced', `${what}: code not-yet-sequenced`);
    t.match(response.headers['retry-after'], /^[1-9]\d*$/, `${what}: Retry-After in seconds`);
  };
  await notYet('unsequenced');

  await sequenceAuditLog(app);
  const first = await latestCheckpoint(app, token);
  t.ok(first.treeSize >= events, `the first run signs a checkpoint (${first.treeSize})`);
  requireStatus(await get(app, `/v1/audit-events/${waiting!.id}/proof`, token), 200, 'provable once in a checkpoint');

  await app.app.auditLog.recordMany(systemAuditContext('waiting'), entries(4, 'later'));
  await sequenceAuditLog(app);
  const [later] = await auditEvents(app, { action: 'test.later' });
  const sequenced = requireStatus(await get(app, `/v1/audit-events/${later!.id}`, token), 200, 'the later event');
  t.ok(Number.isInteger(sequenced.leafIndex) && sequenced.leafIndex >= first.treeSize, `in the tree at ${sequenced.leafIndex}, past the checkpoint`);
  t.equal((await latestCheckpoint(app, token)).treeSize, first.treeSize, 'no new checkpoint within the interval');
  const { id: laterId } = later!;
  const response = await get(app, `/v1/audit-events/${laterId}/proof`, token);
  const problem = assertProblem(t, response, 409, [], 'sequenced but not in a checkpoint');
  t.equal(problem.code, 'not-yet-sequenced');
  t.match(response.headers['retry-after'], /^[1-9]\d*$/);
  const total = await countRows(app, sql`select count(*) as n from audit_events`);
  t.same(requireStatus(await get(app, '/v1/audit-events/verify', token), 200, 'verify'), { valid: true, treeSize: first.treeSize, unsequenced: total - first.treeSize }, 'valid; the rest counted as unsequenced');
});

t.test('who may ask, and bad input', async (t) => {
  await sequenceAuditLog(test);
  const [own] = (await auditEvents(test, { action: 'auth.login', actorId: officeA.physician.id })).slice(-1);
  t.ok(own, "an event of office A's physician");
  const ownId = Number(own!.id);
  await sequenceAuditLog(test);

  t.test("an organization admin reads checkpoints, the key, consistency proofs and its own organization's proofs", async (t) => {
    const admin = officeA.admin.token;
    const latest = await latestCheckpoint(test, admin);
    const jwk = await publicKey(test, admin);
    t.ok(signatureVerifies(latest, jwk), "the latest checkpoint verifies with the key it is given");
    t.ok((await allCheckpoints(test, admin)).length > 0, 'lists checkpoints');
    const [older] = (await allCheckpoints(test, admin)).filter((checkpoint) => checkpoint.treeSize > 0 && checkpoint.treeSize < latest.treeSize);
    const proof = await consistencyProof(test, admin, older!.treeSize, latest.treeSize);
    t.ok(consistencyVerifies(older!.treeSize, latest.treeSize, b64(older!.rootHash), b64(latest.rootHash), proof), 'a consistency proof that verifies');
    const event = requireStatus(await get(test, `/v1/audit-events/${ownId}`, admin), 200, 'own event');
    const inclusion = await inclusionProof(test, admin, ownId, latest.treeSize);
    t.ok(b64(inclusion.leafHash).equals(leafHashOf(event)), 'the leaf hash of the event as served to it');
    t.ok(inclusionVerifies(inclusion.leafIndex, latest.treeSize, leafHashOf(event), inclusion.hashes.map(b64), b64(latest.rootHash)), 'and a proof that verifies');
  });

  t.test("another organization's admin: 404 for an event it cannot read, the attempt audited", async (t) => {
    const stranger = officeB.admin;
    const response = await get(test, `/v1/audit-events/${ownId}/proof`, stranger.token);
    assertProblem(t, response, 404);
    t.notOk(response.body.includes('leafHash'), 'no proof in the answer');
    const refused = await auditEvents(test, { action: 'audit.proof', outcome: 'denied', actorId: stranger.id });
    t.equal(refused.length, 1, 'one refused attempt recorded');
    t.match(refused[0], { resourceType: 'audit_event', resourceId: String(ownId), httpStatus: 404, actorOrganizationId: officeB.id });
    assertProblem(t, await get(test, '/v1/audit-events/999999999/proof', networkAdmin), 404, [], 'an event that does not exist');
  });

  const routes: [string, string][] = [
    ['/v1/audit-events/checkpoints/latest', 'audit.checkpoint.read'],
    ['/v1/audit-events/checkpoints', 'audit.checkpoint.list'],
    ['/v1/audit-events/public-key', 'audit.public_key.read'],
    ['/v1/audit-events/consistency?from=1&to=2', 'audit.proof'],
    [`/v1/audit-events/${ownId}/proof`, 'audit.proof'],
    ['/v1/audit-events/verify', 'audit.verify'],
  ];
  for (const [who, member] of [
    ['a therapist', practice.therapist],
    ['a physician', officeA.physician],
    ['office staff', officeA.staff],
  ] as const) {
    t.test(`${who}: 403 on every route of the verifiable log, each refusal audited`, async (t) => {
      for (const [url, action] of routes) {
        const before = (await auditEvents(test, { action, outcome: 'denied', actorId: member.id })).length;
        assertProblem(t, await get(test, url, member.token), 403, [], url);
        const after = await auditEvents(test, { action, outcome: 'denied', actorId: member.id });
        t.equal(after.length, before + 1, `${url}: one more ${action} refusal`);
        t.match(after.at(-1), { httpStatus: 403 });
      }
    });
  }
  t.test('organization admins may not run verify', async (t) => {
    assertProblem(t, await get(test, '/v1/audit-events/verify', practice.admin.token), 403);
  });
  t.test('without a token: 401', async (t) => {
    for (const [url] of routes) assertProblem(t, await test.request({ method: 'GET', url }), 401, [], url);
  });

  t.test('bad input: 400 problem+json naming the field, and nothing changes', async (t) => {
    const leafIndex = requireStatus(await get(test, `/v1/audit-events/${ownId}`, networkAdmin), 200, 'own event').leafIndex as number;
    t.ok(leafIndex > 0, `the event is at leaf ${leafIndex}`);
    await sequenceAuditLog(test);
    const latest = (await latestCheckpoint(test, networkAdmin)).treeSize;
    const snapshot = async () => ({
      lastEvent: (await run<{ id: number }>(test, sql`select max(id)::int as id from audit_events`))[0]!.id,
      state: (await run(test, sql`select tree_size::text as size, encode(root_hash, 'hex') as root from audit_log_state`))[0],
      checkpoints: await countRows(test, sql`select count(*) as n from audit_checkpoints`),
    });
    const before = await snapshot();
    const cases: [string, string, string][] = [
      ['treeSize=0', `/v1/audit-events/${ownId}/proof?treeSize=0`, 'query.treeSize'],
      ['treeSize=-1', `/v1/audit-events/${ownId}/proof?treeSize=-1`, 'query.treeSize'],
      ['treeSize=1.5', `/v1/audit-events/${ownId}/proof?treeSize=1.5`, 'query.treeSize'],
      ['treeSize=abc', `/v1/audit-events/${ownId}/proof?treeSize=abc`, 'query.treeSize'],
      ['treeSize equal to the leafIndex', `/v1/audit-events/${ownId}/proof?treeSize=${leafIndex}`, 'query.treeSize'],
      ['treeSize beyond the latest checkpoint', `/v1/audit-events/${ownId}/proof?treeSize=${latest + 1}`, 'query.treeSize'],
      ['an unknown query parameter', `/v1/audit-events/${ownId}/proof?size=3`, 'query.size'],
      ['id=abc', '/v1/audit-events/abc/proof', 'params.id'],
      ['id=0', '/v1/audit-events/0/proof', 'params.id'],
      ['id=abc (the event)', '/v1/audit-events/abc', 'params.id'],
      ['from > to', '/v1/audit-events/consistency?from=5&to=3', 'query.from'],
      ['from=abc', '/v1/audit-events/consistency?from=abc&to=3', 'query.from'],
      ['from=-1', '/v1/audit-events/consistency?from=-1&to=3', 'query.from'],
      ['from missing', '/v1/audit-events/consistency?to=3', 'query.from'],
      ['to missing', '/v1/audit-events/consistency?from=1', 'query.to'],
      ['to=abc', '/v1/audit-events/consistency?from=1&to=abc', 'query.to'],
      ['to beyond the latest checkpoint', `/v1/audit-events/consistency?from=1&to=${latest + 1}`, 'query.to'],
      ['limit=0 on the checkpoints', '/v1/audit-events/checkpoints?limit=0', 'query.limit'],
      ['a forged checkpoints cursor', '/v1/audit-events/checkpoints?cursor=%21%21', 'query.cursor'],
    ];
    for (const [what, url, field] of cases) assertProblem(t, await get(test, url, networkAdmin), 400, [field], what);
    // The empty tree is extended by every tree: nothing to prove.
    const fromEmpty = await get(test, '/v1/audit-events/consistency?from=0&to=3', networkAdmin);
    t.equal(fromEmpty.statusCode, 200, 'from=0 is the empty tree');
    t.strictSame(fromEmpty.json(), { from: 0, to: 3, hashes: [] });
    await sequenceAuditLog(test);
    t.same(await snapshot(), before, 'no event written, the tree and its checkpoints as they were');
  });
});

t.test('checkpoints are sent to every endpoint subscribed to audit.checkpoint, and to no other', async (t) => {
  const dns = fakeDns();
  const app = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_TIMEOUT_MS: '2000' }, dns.resolve);
  const admin = await app.loginAsAdmin();
  const office = await createOffice(app, admin);
  const otherPractice = await createPractice(app, admin);
  const [officeReceiver, practiceReceiver, bystander] = [await startReceiver(t), await startReceiver(t), await startReceiver(t)];
  const officeEndpoint = await registerEndpoint(t, app, office.admin.token, { url: officeReceiver.url, eventTypes: ['audit.checkpoint'] });
  const practiceEndpoint = await registerEndpoint(t, app, otherPractice.admin.token, { url: practiceReceiver.url, eventTypes: ['referral.sent', 'audit.checkpoint'] });
  await registerEndpoint(t, app, office.admin.token, { url: bystander.url, eventTypes: ['referral.sent', 'referral.accepted'] });

  const signedBefore = new Set((await allCheckpoints(app, admin)).map((checkpoint) => checkpoint.treeSize));
  for (let round = 0; round < 3; round++) {
    await app.app.auditLog.recordMany(systemAuditContext('webhook'), entries(3 + round, `webhook${round}`));
    await sequenceAuditLog(app);
  }
  await drain(app);
  const checkpoints = (await allCheckpoints(app, admin)).filter((checkpoint) => !signedBefore.has(checkpoint.treeSize)).reverse();
  t.ok(checkpoints.length >= 3, `${checkpoints.length} checkpoints signed meanwhile`);
  const jwk = await publicKey(app, admin);

  for (const [name, receiver, endpoint] of [
    ['the office', officeReceiver, officeEndpoint],
    ['the other organization', practiceReceiver, practiceEndpoint],
  ] as const) {
    t.test(`${name}'s endpoint receives every one, signed by the log key`, async (t) => {
      const payloads = receiver.requests.map((delivered, index) => verified(t, delivered, endpoint.secret, `${name}: delivery ${index + 1}`));
      t.ok(payloads.every((payload) => payload.type === 'audit.checkpoint'), 'all of type audit.checkpoint');
      const received = payloads.map((payload) => payload.data as Json).sort((a, b) => a.treeSize - b.treeSize);
      t.same(
        received,
        checkpoints.map((checkpoint) => ({
          resource: 'audit_checkpoint',
          id: String(checkpoint.treeSize),
          origin: checkpoint.origin,
          treeSize: checkpoint.treeSize,
          rootHash: checkpoint.rootHash,
          keyId: checkpoint.keyId,
          signature: checkpoint.signature,
          note: checkpoint.note,
          url: '/v1/audit-events/checkpoints/latest',
        })),
        'one delivery per checkpoint, carrying it as the API lists it',
      );
      t.same(received.filter((data) => !signatureVerifies(data as Checkpoint, jwk) || data.keyId !== jwk.kid), [], 'each verifies with the published key');
      for (let index = 1; index < received.length; index++) {
        const [older, newer] = [received[index - 1]!, received[index]!];
        const proof = await consistencyProof(app, office.admin.token, older.treeSize, newer.treeSize);
        t.ok(consistencyVerifies(older.treeSize, newer.treeSize, b64(older.rootHash), b64(newer.rootHash), proof), `received ${older.treeSize} → ${newer.treeSize}: consistent`);
      }
    });
  }
  t.test('the endpoint not subscribed to it receives none', async (t) => {
    t.equal(bystander.requests.length, 0, 'no request');
    t.equal(bystander.connections, 0, 'not even a connection');
  });
});

t.test('partners get a checkpoint at most every AUDIT_CHECKPOINT_WEBHOOK_SECONDS, however often one is signed', async (t) => {
  const intervalMs = 2000;
  const dns = fakeDns();
  const app = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_TIMEOUT_MS: '2000', AUDIT_CHECKPOINT_WEBHOOK_SECONDS: String(intervalMs / 1000) }, dns.resolve);
  const admin = await app.loginAsAdmin();
  const office = await createOffice(app, admin);
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, app, office.admin.token, { url: receiver.url, eventTypes: ['audit.checkpoint'] });

  const signedBefore = new Set((await allCheckpoints(app, admin)).map((checkpoint) => checkpoint.treeSize));
  const round = async (tag: string) => {
    await app.app.auditLog.recordMany(systemAuditContext('webhook'), entries(2, tag));
    await sequenceAuditLog(app);
  };
  for (let index = 0; index < 4; index++) await round(`burst${index}`);
  await sleep(intervalMs + 200);
  await round('after-the-interval');
  await drain(app);

  const signed = (await allCheckpoints(app, admin)).filter((checkpoint) => !signedBefore.has(checkpoint.treeSize));
  const signedAt = new Map(signed.map((checkpoint) => [checkpoint.treeSize, Date.parse(checkpoint.timestamp)]));
  const received = receiver.requests
    .map((delivered, index) => verified(t, delivered, endpoint.secret, `delivery ${index + 1}`).data as Json)
    .sort((a, b) => a.treeSize - b.treeSize);
  t.ok(signed.length >= 5, `${signed.length} checkpoints signed, one per sequencing run`);
  t.ok(received.length >= 1 && received.length < signed.length, `${received.length} of them sent`);
  t.ok(received.every((data) => signedAt.has(data.treeSize)), 'each one sent is a checkpoint the API lists');
  const latest = signed.reduce((a, b) => (a.treeSize > b.treeSize ? a : b));
  t.equal(received.at(-1)?.treeSize, latest.treeSize, 'the first one signed after the interval is sent');
  for (let index = 1; index < received.length; index++) {
    const gap = signedAt.get(received[index]!.treeSize)! - signedAt.get(received[index - 1]!.treeSize)!;
    t.ok(gap >= intervalMs - 100, `sent ${gap} ms after the one before`);
  }
});
