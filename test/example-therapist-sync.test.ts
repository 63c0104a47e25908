// The example therapist app (examples/therapist-sync) as its README runs it, against the service
// started as a process: it signs in through the typed client, follows the events feed, accepts the
// referral sent to the therapist and records one visit note; run again, from its saved cursor or
// from the start of the feed, it records nothing new. The example, the client and the generated
// types are the ones committed: a contract change that breaks them fails here.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import t, { type Test } from 'tap';
import { referralBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { createOffice, createPractice, createTestDatabase, defaultPassword, testDatabaseServer, type Json } from './helper.js';

interface ExampleRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  ms: number;
}

const runLimitMs = 60_000;
const patient = referralBody().patient as Json;

if (!testDatabaseServer) {
  t.plan(0, 'runs the service as a process on a PostgreSQL database: in the PostgreSQL suite (TEST_DATABASE_URL)');
} else {
  await run();
}

async function run() {
  // Loaded here only: the process helpers of the fault tests are not part of the embedded suite's coverage.
  const { buildService, HttpApp, root, serviceEnv, startServiceProcess, stopAllServices } = await import('../test-faults/service-process.js');
  const service = await buildService('therapist-sync');
  const database = await createTestDatabase();
  const folder = await mkdtemp(join(tmpdir(), 'therapist-sync-'));
  t.teardown(async () => {
    await stopAllServices(); // before its database goes
    await database.drop();
    service.remove();
    await rm(folder, { recursive: true, force: true });
  });
  const api = await startServiceProcess(service.folder, 'api', serviceEnv(database.url));

  // The example as a user builds it: one file, with the client's import resolved to its source.
  const example = join(service.folder, 'therapist-sync.mjs');
  await build({
    entryPoints: [join(root, 'examples/therapist-sync/src/main.ts')],
    outfile: example,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    alias: { '@massage-referral/client': join(root, 'clients/typescript/src/index.ts') },
    logLevel: 'warning',
  });

  const http = new HttpApp(api.baseUrl);
  const adminToken = await http.loginAsAdmin();
  const office = await createOffice(http, adminToken);
  const practice = await createPractice(http, adminToken);
  const referral = await http.create(
    '/v1/referrals',
    office.physician.token,
    referralBody({ therapistId: practice.therapist.id, precautions: ['No deep pressure over the lumbar surgical scar'], send: true }),
  );

  const runExample = (stateFile: string | undefined) =>
    new Promise<ExampleRun>((resolve, reject) => {
      const started = Date.now();
      const child = spawn(process.execPath, [example, '--until-idle'], {
        env: {
          PATH: process.env.PATH ?? '',
          API_URL: api.baseUrl,
          THERAPIST_EMAIL: practice.therapist.email,
          THERAPIST_PASSWORD: defaultPassword,
          AUTO_ACCEPT: '1',
          // Each run ends with one empty long poll: a short one keeps the test short.
          WAIT_SECONDS: '3',
          ...(stateFile && { STATE_FILE: stateFile }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        // Not SIGTERM: the app stops cleanly on it, and exits 0.
        timeout: runLimitMs,
        killSignal: 'SIGKILL',
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, output, ms: Date.now() - started }));
    });

  const asOffice = async (path: string) => requireStatus(await http.request({ method: 'GET', url: path, token: office.physician.token }), 200, `GET ${path}`);
  const visitNotes = async () => (await asOffice(`/v1/referrals/${referral.id}/progress-reports`)).data as Json[];

  const assertRan = (t: Test, result: ExampleRun) => {
    t.equal(result.code, 0, `exits 0 (${result.signal ?? 'no signal'}, ${result.ms} ms):\n${result.output}`);
    t.ok(result.ms < runLimitMs, `within ${runLimitMs / 1000} s (${result.ms} ms)`);
    t.notMatch(result.output, new RegExp([patient.givenName, patient.familyName, patient.birthDate].join('|')), 'prints no patient data');
  };

  const stateFile = join(folder, 'state.json');

  t.test('examples/therapist-sync › accepts the referral sent to the therapist and records one visit note', async (t) => {
    const result = await runExample(stateFile);
    assertRan(t, result);
    t.match(result.output, `event referral.sent`, 'follows the events feed');
    t.match(result.output, `referral ${referral.id}: accepted, precautions acknowledged`, 'says what it did');
    const read = await asOffice(`/v1/referrals/${referral.id}`);
    t.equal(read.acceptedBy?.therapistId, practice.therapist.id, 'the office sees the referral accepted by the therapist');
    t.equal(read.status, 'in_progress', 'and started by the visit');
    t.equal((await visitNotes()).length, 1, 'one visit note on it');
  });

  t.test('examples/therapist-sync › run again from its saved cursor, it records nothing new', async (t) => {
    const result = await runExample(stateFile);
    assertRan(t, result);
    t.match(result.output, 'from the saved cursor', 'resumes from its saved cursor');
    t.notMatch(result.output, `event referral.sent`, 'the events handled are behind the cursor');
    t.equal((await visitNotes()).length, 1, 'still one visit note');
  });

  t.test('examples/therapist-sync › run from the start of the feed, its visit note is a replay', async (t) => {
    const result = await runExample(undefined);
    assertRan(t, result);
    t.match(result.output, `referral ${referral.id}: visit note 1 of `, 'handles the referral again');
    t.match(result.output, 'already recorded (replayed)', 'the Idempotency-Key it derives returns the first answer');
    t.equal((await visitNotes()).length, 1, 'still one visit note');
  });
}
