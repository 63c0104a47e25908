// npm run audit:verify (tools/audit-verify.ts) against a listening service: with a checkpoint saved
// earlier and the public key, it accepts a log that only grew and refuses one that does not extend
// what was saved, or a saved checkpoint whose signature does not verify.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { systemAuditContext } from '../src/modules/audit/audit-log.js';
import { CheckpointSigner } from '../src/modules/audit/checkpoint-signer.js';
import { sequenceAuditLog } from './fixtures/audit-log.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, testAuditSigningKey, type Json } from './helper.js';

const run = promisify(execFile);
const test = await buildTestApp(t);
const admin = await test.loginAsAdmin();
await test.app.listen({ port: 0, host: '127.0.0.1' });
const { port } = test.app.server.address() as { port: number };
const folder = await mkdtemp(join(tmpdir(), 'audit-verify-'));
t.teardown(() => rm(folder, { recursive: true, force: true }));

const get = async (url: string) => requireStatus(await test.request({ method: 'GET', url, token: admin }), 200, url);
const file = (name: string) => join(folder, name);

async function verifyScript(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'tools/audit-verify.ts', ...args], {
      env: { ...process.env, AUDIT_VERIFY_URL: `http://127.0.0.1:${port}`, AUDIT_VERIFY_TOKEN: admin },
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

await sequenceAuditLog(test);
await writeFile(file('key.json'), JSON.stringify(await get('/v1/audit-events/public-key')));
const saved: Json = await get('/v1/audit-events/checkpoints/latest');
await writeFile(file('saved.json'), JSON.stringify(saved));

t.test('a log that only grew since the saved checkpoint checks out, an event with it, and the latest is saved', async (t) => {
  await test.app.auditLog.recordMany(systemAuditContext('verify-script'), Array.from({ length: 37 }, () => ({ action: 'test.filler', outcome: 'success' as const })));
  await sequenceAuditLog(test);
  const [event] = (await get('/v1/audit-events?action=test.filler&limit=1')).data as Json[];
  const { code, output } = await verifyScript('--checkpoint', file('saved.json'), '--public-key', file('key.json'), '--event', String(event!.id), '--save', file('next.json'));
  t.equal(code, 0, output);
  t.match(output, new RegExp(`grew from ${saved.treeSize} to \\d+ events`));
  t.match(output, `event ${event!.id} is leaf ${event!.leafIndex} of the signed tree`);
  const next = JSON.parse(await readFile(file('next.json'), 'utf8'));
  t.ok(next.treeSize >= saved.treeSize + 37, 'the latest checkpoint was saved');
});

t.test('a saved checkpoint of another history (signed with the key, a different root) is refused: the log was rewritten', async (t) => {
  // As if the saved checkpoint had been taken before the database's owner rewrote the first events.
  const signer = new CheckpointSigner(Buffer.from(testAuditSigningKey, 'base64'), saved.origin);
  const otherRoot = Buffer.alloc(32, 9);
  const forged = { ...saved, rootHash: otherRoot.toString('base64'), signature: signer.sign(saved.treeSize, otherRoot).toString('base64') };
  await writeFile(file('other.json'), JSON.stringify(forged));
  const { code, output } = await verifyScript('--checkpoint', file('other.json'), '--public-key', file('key.json'));
  t.equal(code, 1, output);
  t.match(output, /does not extend the saved one/);
});

t.test('a saved checkpoint whose signature does not verify is refused', async (t) => {
  await writeFile(file('altered.json'), JSON.stringify({ ...saved, treeSize: saved.treeSize + 1 }));
  const { code, output } = await verifyScript('--checkpoint', file('altered.json'), '--public-key', file('key.json'));
  t.equal(code, 1, output);
  t.match(output, /saved checkpoint's signature does not verify/);
});
