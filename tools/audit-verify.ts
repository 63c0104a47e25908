// Checks the service's audit log against a checkpoint kept outside it, trusting nothing but the
// log's public key (SPEC §15):
//   npm run audit:verify -- --checkpoint saved.json --public-key key.jwk.json [--event 123] [--save saved.json]
// 1. the saved checkpoint's signature; 2. the service's latest checkpoint (same origin, same key);
// 3. the consistency proof from the saved tree to the latest: the log only grew; 4. with --event,
// the event's leaf hash, recomputed from the event as served, and its inclusion proof in the latest
// tree. With --save, the latest checkpoint replaces the saved one once everything checked out.
// The service is reached at --url (AUDIT_VERIFY_URL, default http://localhost:3000) with the bearer
// token in AUDIT_VERIFY_TOKEN (a network admin's, or an organization admin's for its own events).
import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { auditLeafHash } from '../src/modules/audit/audit-leaf.js';
import { checkpointBody } from '../src/modules/audit/checkpoint-signer.js';
import { verifyConsistency, verifyInclusion } from '../src/modules/audit/merkle.js';
import type { AuditEvent, Checkpoint } from '../src/modules/audit/schemas.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    'public-key': { type: 'string' },
    event: { type: 'string' },
    save: { type: 'string' },
    url: { type: 'string', default: process.env.AUDIT_VERIFY_URL ?? 'http://localhost:3000' },
  },
});

function fail(message: string): never {
  process.stderr.write(`FAILED: ${message}\n`);
  process.exit(1);
}

if (!values.checkpoint || !values['public-key']) fail('usage: npm run audit:verify -- --checkpoint saved.json --public-key key.jwk.json [--event id] [--save file]');
const token = process.env.AUDIT_VERIFY_TOKEN;
if (!token) fail('set AUDIT_VERIFY_TOKEN to a bearer token of an admin');

const jwk = JSON.parse(await readFile(values['public-key'], 'utf8')) as JsonWebKey & { kid?: string };
const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
const hash = (base64: string) => Buffer.from(base64, 'base64');

async function api<T>(path: string): Promise<T> {
  const response = await fetch(new URL(path, values.url), { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) fail(`GET ${path} answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  return (await response.json()) as T;
}

function checkSignature(checkpoint: Checkpoint, name: string): void {
  if (jwk.kid && checkpoint.keyId !== jwk.kid) fail(`${name} checkpoint is signed by key ${checkpoint.keyId}, not ${jwk.kid}`);
  const body = Buffer.from(checkpointBody(checkpoint.origin, checkpoint.treeSize, hash(checkpoint.rootHash)));
  if (!verifySignature(null, body, publicKey, hash(checkpoint.signature))) fail(`${name} checkpoint's signature does not verify`);
  console.log(`ok: ${name} checkpoint (tree size ${checkpoint.treeSize}) is signed by the log's key`);
}

const saved = JSON.parse(await readFile(values.checkpoint, 'utf8')) as Checkpoint;
checkSignature(saved, 'the saved');
const latest = await api<Checkpoint>('/v1/audit-events/checkpoints/latest');
checkSignature(latest, "the service's latest");
if (latest.origin !== saved.origin) fail(`the service's log is ${latest.origin}, the saved checkpoint's ${saved.origin}`);
if (latest.treeSize < saved.treeSize) fail(`the service's tree (${latest.treeSize}) is smaller than the saved one (${saved.treeSize}): events were removed`);

if (saved.treeSize === 0 || saved.treeSize === latest.treeSize) {
  if (saved.treeSize === latest.treeSize && saved.rootHash !== latest.rootHash) fail('same tree size, different root: the log was rewritten');
} else {
  const proof = await api<{ hashes: string[] }>(`/v1/audit-events/consistency?from=${saved.treeSize}&to=${latest.treeSize}`);
  if (!verifyConsistency(saved.treeSize, latest.treeSize, hash(saved.rootHash), hash(latest.rootHash), proof.hashes.map(hash))) {
    fail(`the tree of ${latest.treeSize} events does not extend the saved one of ${saved.treeSize}: events in it were changed or removed`);
  }
}
console.log(`ok: the log grew from ${saved.treeSize} to ${latest.treeSize} events without changing any of the first ${saved.treeSize}`);

if (values.event) {
  const event = await api<AuditEvent>(`/v1/audit-events/${values.event}`);
  if (event.leafIndex === undefined || event.leafIndex >= latest.treeSize) fail(`event ${values.event} is not in the latest checkpoint yet; try again in a few seconds`);
  const proof = await api<{ leafIndex: number; leafHash: string; hashes: string[] }>(`/v1/audit-events/${values.event}/proof?treeSize=${latest.treeSize}`);
  const leaf = auditLeafHash(event);
  if (leaf.toString('base64') !== proof.leafHash) fail(`event ${values.event} as served does not hash to its leaf (it was changed, or parts of it are hidden from this caller)`);
  if (!verifyInclusion(event.leafIndex, latest.treeSize, leaf, proof.hashes.map(hash), hash(latest.rootHash))) fail(`event ${values.event} is not in the signed tree`);
  console.log(`ok: event ${values.event} is leaf ${event.leafIndex} of the signed tree, as served`);
}

if (values.save) {
  await writeFile(values.save, `${JSON.stringify(latest, null, 2)}\n`);
  console.log(`saved the latest checkpoint to ${values.save}`);
}
