// npm run openapi:examples [-- --all] — records the document's examples from real answers: runs the
// test files that between them call every operation (or the whole suite) on the embedded database
// with the recorder on (test/fixtures/example-recorder.ts), merges and scrubs what they saw into
// src/openapi-examples/examples.json, then regenerates the document. test/openapi-examples.test.ts
// fails when an operation has no example, so a new route asks for this to be run.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { leftovers, mergeRecordings, scrubExamples } from './examples.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Taken first: the walk-throughs, whose requests read like a user's. */
const preferred = ['demo-walkthrough', 'referral-e2e', 'therapist-app-sync', 'fhir-round-trip', 'webhook-events'];
/** Between them these call every operation and deliver every event type. */
const recordedFiles = [
  ...preferred,
  'accept-safety', 'adverse-events', 'appointments', 'audit-log', 'audit-transparency', 'auth', 'billing', 'clinical-reports', 'directory', 'documents',
  'events-feed', 'fhir-read', 'fhir-thread', 'fhir-webhooks', 'fhir-write', 'health', 'messages', 'network', 'patients', 'progress-reports',
  'referral-signing', 'referrals', 'renewals', 'smart-backend-services', 'urgent-messages', 'webhook-delivery-log', 'webhook-endpoints',
].map((name) => `test/${name}.test.ts`);

const files = process.argv.includes('--all') ? [] : recordedFiles;
const folder = mkdtempSync(join(tmpdir(), 'openapi-examples-'));
try {
  const { TEST_DATABASE_URL: _embeddedOnly, ...env } = process.env;
  const run = spawnSync('npx', ['tap', '--disable-coverage', '-R', 'terse', ...files], { cwd: root, env: { ...env, OPENAPI_EXAMPLES_DIR: folder }, stdio: 'inherit' });
  if (run.status !== 0) throw new Error('the tests failed: examples are recorded only from a green run');
  const recordings = readdirSync(folder).map((name) => JSON.parse(readFileSync(join(folder, name), 'utf8')));
  const examples = scrubExamples(mergeRecordings(recordings, preferred));
  const found = leftovers(examples);
  if (found.length > 0) throw new Error(`credentials left in the examples: ${found.join(', ')}`);
  mkdirSync(join(root, 'src/openapi-examples'), { recursive: true });
  writeFileSync(join(root, 'src/openapi-examples/examples.json'), `${JSON.stringify(examples, null, 2)}\n`);
  process.stdout.write(`recorded examples of ${Object.keys(examples.responses).length} operations and ${Object.keys(examples.webhooks).length} event types\n`);
} finally {
  rmSync(folder, { recursive: true, force: true });
}
const write = spawnSync('npm', ['run', '-s', 'openapi:write'], { cwd: root, stdio: 'inherit' });
process.exitCode = write.status ?? 1;
