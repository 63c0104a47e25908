// npm run bench: measures the floors and every scenario of issue 5 in one run, prints the table,
// writes bench/results/<time>.json and the README's Performance section. `--quick` is a smoke
// pass with tiny durations and data; `--no-embedded` skips the PGlite pass.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import type { LoadResult, LoadRun } from './load-generator.js';
import { ask, buildService, freePort, startChild, startCpuMeter, startService, type Started } from './processes.js';
import { demoCredentials } from '../src/seed/demo-network.js';
import { demoIds, officeReferralIds, samFeedCursors, seedReferrals, seedTreating } from './seed.js';
import type { BenchData, ScenarioName } from './scenarios.js';
import { documentUpload, feedCursors, seedFeedEvents } from './events-feed.js';
import { report, type Row } from './report.js';
import { measureWebhooks } from './webhooks.js';
import { explainPull } from './explain.js';
import { startPgbouncer } from '../test/fixtures/pgbouncer.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-embedded': { type: 'boolean', default: false },
    // For profiling one scenario: e.g. --only read,create (the README is left alone).
    only: { type: 'string' },
  },
});
const only = flags.only?.split(',');
const selected = (name: string) => !only || only.includes(name);
const quick = flags.quick!;
const plan = quick
  ? { warmupSeconds: 1, runSeconds: 1, runs: 1, small: 2_000, large: 20_000, treating: 50, drain: 300, steadySeconds: 2, feedSmall: 1_000, feedLarge: 20_000 }
  : { warmupSeconds: 3, runSeconds: 5, runs: 3, small: 10_000, large: 1_000_000, treating: 2_000, drain: 10_000, steadySeconds: 10, feedSmall: 1_000, feedLarge: 1_000_000 };
const uploadBytes = 1_000_000;
const connections = 50;
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const began = performance.now();
const log = (message: string) => process.stderr.write(`[bench ${((performance.now() - began) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export interface Measured {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  samples: string[];
  /** CPU time per answered request over the measured runs (Linux /proc): the serving process's, and PostgreSQL's. */
  cpuMsPerRequest?: { service: number; postgres: number };
}

let loadGenerator: Started;

/** A warm-up, then `runs` measured runs; the median of each figure, and every refusal counted. */
async function measure(
  name: string,
  run: Omit<LoadRun, 'durationSeconds' | 'connections'> & { connections?: number },
  options: { onRun?: () => void; servingPid?: number | undefined } = {},
): Promise<Measured> {
  const base = { connections, ...run };
  await ask<LoadResult>(loadGenerator.child, { ...base, durationSeconds: plan.warmupSeconds });
  const results: LoadResult[] = [];
  const cpu = await startCpuMeter(options.servingPid);
  for (let index = 0; index < plan.runs; index++) {
    options.onRun?.();
    results.push(await ask<LoadResult>(loadGenerator.child, { ...base, durationSeconds: plan.runSeconds }));
  }
  const cpuMsPerRequest = await cpu.perItem(results.reduce((sum, result) => sum + result.total, 0));
  const measured = {
    requestsPerSecond: median(results.map((result) => result.requestsPerSecond)),
    p50: median(results.map((result) => result.p50)),
    p99: median(results.map((result) => result.p99)),
    non2xx: results.reduce((sum, result) => sum + result.non2xx + result.errors + result.timeouts, 0),
    samples: results.flatMap((result) => result.samples).slice(0, 3),
    ...(cpuMsPerRequest ? { cpuMsPerRequest } : {}),
  };
  const cpuFigures = cpuMsPerRequest ? `, CPU per request: service ${cpuMsPerRequest.service.toFixed(2)} ms, PostgreSQL ${cpuMsPerRequest.postgres.toFixed(2)} ms` : '';
  log(`${name}: ${measured.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms, non-2xx ${measured.non2xx}${cpuFigures}${measured.samples.length ? ` (${measured.samples[0]})` : ''}`);
  return measured;
}

async function token(url: string, username: string): Promise<string> {
  const response = await fetch(`${url}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'password', username, password: demoCredentials.password }),
  });
  if (!response.ok) throw new Error(`sign-in of ${username} failed: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

function serviceEnv(port: number, extra: Record<string, string>): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    DATA_ENCRYPTION_KEY: crypto.getRandomValues(Buffer.alloc(32)).toString('base64'),
    AUDIT_SIGNING_KEY: crypto.getRandomValues(Buffer.alloc(32)).toString('base64'),
    DEMO_SEED: 'true',
    ACCESS_TOKEN_TTL_SECONDS: '3600',
    // One caller sends thousands of requests a second here; the per-caller limit would refuse them.
    RATE_LIMIT_PER_MINUTE: '100000000',
    // The bench's webhook receiver listens on loopback.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    // BENCH_SERVICE_ENV='A=1 B=2' overrides the service's configuration, to compare settings.
    ...Object.fromEntries((process.env.BENCH_SERVICE_ENV ?? '').split(' ').filter(Boolean).map((pair) => pair.split('=') as [string, string])),
    ...extra,
  };
}

/** Peak resident memory of a process while `during` runs, sampled from /proc every 100 ms. */
async function peakRss<T>(pid: number, during: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  const { readFile } = await import('node:fs/promises');
  let peakKb = 0;
  const sample = async () => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    peakKb = Math.max(peakKb, kb);
  };
  const timer = setInterval(() => void sample(), 100);
  try {
    const result = await during();
    return { result, peakMb: peakKb / 1024 };
  } finally {
    clearInterval(timer);
  }
}

/**
 * How long audit events written since `since` waited to be in a signed checkpoint: from the start
 * of their transaction (occurred_at, so a little more than from commit) to the signing of the first
 * checkpoint that covers their leaf. Waits for the sequencer to catch up first.
 */
async function sequencingLag(sql: postgres.Sql, since: Date): Promise<{ p50: number; p99: number; events: number }> {
  for (let waited = 0; waited < 10_000; waited += 200) {
    const [row] = await sql<{ waiting: number }[]>`
      select (select count(*)::int from audit_unsequenced) + (select tree_size from audit_log_state) - coalesce((select max(tree_size) from audit_checkpoints), 0) as waiting`;
    if (row!.waiting === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const [lag] = await sql<{ p50: number | null; p99: number | null; events: number }[]>`
    select percentile_cont(0.5) within group (order by wait_ms) as p50, percentile_cont(0.99) within group (order by wait_ms) as p99, count(*)::int as events
    from (
      select extract(epoch from (c.signed_at - e.occurred_at)) * 1000 as wait_ms
      from audit_log_leaves l
      join audit_events e on e.id = l.event_id
      cross join lateral (select signed_at from audit_checkpoints where tree_size > l.leaf_index order by tree_size limit 1) c
      where e.occurred_at >= ${since}
    ) waits`;
  return { p50: lag!.p50 ?? 0, p99: lag!.p99 ?? 0, events: lag!.events };
}

async function main() {
  const databaseName = `bench_${Date.now()}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${databaseName}`);
  const databaseUrl = Object.assign(new URL(adminUrl), { pathname: `/${databaseName}` }).toString();
  const sql = postgres(databaseUrl, { max: 4, onnotice: () => {} });
  const rows: Row[] = [];
  const extras: Record<string, unknown> = {};
  try {
    await buildService();
    loadGenerator = await startChild('bench/load-generator.ts');

    log('floor H: bare Fastify hello world');
    const hello = await startChild('bench/floors/hello-server.ts');
    const floorH = await measure('H', { scenario: 'floor-hello', url: `http://127.0.0.1:${hello.ready.port}` }, { servingPid: hello.child.pid });
    await hello.stop();

    log('floor T: raw postgres.js transaction of three prepared inserts');
    const transactions = await startChild('bench/floors/transaction-server.ts', { env: { DATABASE_URL: databaseUrl } });
    const floorT = await measure('T', { scenario: 'floor-transaction', url: `http://127.0.0.1:${transactions.ready.port}` }, { servingPid: transactions.child.pid });
    await transactions.stop();

    log('starting the service on PostgreSQL');
    const port = await freePort();
    const env = serviceEnv(port, { DATABASE_URL: databaseUrl });
    const service = await startService(env);
    const url = service.url;
    const ids = await demoIds(sql);
    log(`seeding ${plan.small} referrals`);
    await seedReferrals(sql, ids, plan.small);
    const treating = await seedTreating(sql, ids, plan.treating);
    const data: BenchData = {
      tokens: { physician: await token(url, demoCredentials.users.physician), therapist: await token(url, demoCredentials.users.harborTherapist) },
      therapistId: ids.samId,
      practiceId: ids.harborId,
      officeReferralIds: await officeReferralIds(sql, ids, 5000),
      pullCursors: await samFeedCursors(sql, ids, 2000),
      treatingReferralIds: treating,
    };
    const scenario = (name: ScenarioName, label: string = name) => measure(label, { scenario: name, url, data }, { servingPid: service.child.pid });
    const againstT = (scenario: string, measured: Measured, share: number, extraTarget = ''): Row => ({
      scenario,
      measured,
      floor: 'T',
      ratio: measured.requestsPerSecond / floorT.requestsPerSecond,
      target: `≥ ${share.toFixed(1)} × T${extraTarget}, 0 non-2xx`,
      pass: measured.requestsPerSecond >= share * floorT.requestsPerSecond && measured.non2xx === 0,
    });
    rows.push({ scenario: 'floor H: Fastify hello world', measured: floorH }, { scenario: 'floor T: postgres.js 3-insert transaction', measured: floorT });

    let create: Measured | undefined;
    if (selected('create')) {
      create = await scenario('create');
      const row = againstT('create referral', create, 0.5, ', p99 ≤ 60 ms');
      rows.push({ ...row, pass: row.pass && create.p99 <= 60 });
    }
    let read: Measured | undefined;
    if (selected('read')) {
      read = await scenario('read');
      rows.push(againstT('read one referral (audited)', read, 1.0));
    }
    let pullSmall: Measured | undefined;
    if (selected('pull')) {
      pullSmall = await scenario('pull', `pull at ${plan.small}`);
      const row = againstT(`therapist pull, 50/page, ${plan.small.toLocaleString('en')} referrals`, pullSmall, 0.2, ', p99 ≤ 150 ms');
      rows.push({ ...row, pass: row.pass && pullSmall.p99 <= 150 });
    }
    if (selected('fhir-task') && pullSmall) {
      const fhirTasks = await scenario('fhir-task', `FHIR Task search at ${plan.small}`);
      const share = fhirTasks.requestsPerSecond / Math.max(pullSmall.requestsPerSecond, 1);
      rows.push({
        scenario: `FHIR Task search, 50/page, ${plan.small.toLocaleString('en')} referrals (the pull above, as Tasks)`,
        measured: fhirTasks,
        ratio: fhirTasks.requestsPerSecond / floorT.requestsPerSecond,
        floor: 'T',
        target: '≥ 0.7 × the pull, p99 ≤ 1.5 × its p99, 0 non-2xx',
        pass: share >= 0.7 && fhirTasks.p99 <= 1.5 * Math.max(pullSmall.p99, 1) && fhirTasks.non2xx === 0,
        note: `${share.toFixed(2)} × the pull's requests/s, p99 ${(fhirTasks.p99 / Math.max(pullSmall.p99, 1)).toFixed(2)} × its p99`,
      });
    }
    if (selected('note')) rows.push(againstT('visit note', await scenario('note'), 0.5));
    if (selected('message')) rows.push(againstT('message', await scenario('message'), 0.5));
    let eventsSmall: Measured | undefined;
    if (selected('events')) {
      log(`seeding ${plan.feedSmall} feed events`);
      await seedFeedEvents(sql, ids, treating, plan.feedSmall);
      data.feedCursors = await feedCursors(sql, ids, env.DATA_ENCRYPTION_KEY!, 2000);
      eventsSmall = await scenario('events', `events at ${plan.feedSmall}`);
      rows.push({ scenario: `events feed, 100/page, ${plan.feedSmall.toLocaleString('en')} events`, measured: eventsSmall });
    }
    if (selected('upload')) {
      const upload = documentUpload(uploadBytes);
      data.documentUpload = { body: upload.body.toString('base64'), contentType: upload.contentType };
      const { result: uploads, peakMb } = await peakRss(service.child.pid!, () => measure('upload', { scenario: 'upload', url, data, connections: 10 }, { servingPid: service.child.pid }));
      const megabytesPerSecond = (uploads.requestsPerSecond * uploadBytes) / 1_000_000;
      rows.push({
        scenario: `document upload, ${uploadBytes / 1_000_000} MB PDF, 10 connections`,
        measured: uploads,
        note: `${megabytesPerSecond.toFixed(1)} MB/s stored; peak RSS ${peakMb.toFixed(0)} MB`,
        pass: uploads.non2xx === 0,
      });
      data.documentUpload = undefined;
    }
    let mixed: Measured | undefined;
    if (selected('mixed')) {
      const mixedBegan = new Date();
      const { result, peakMb } = await peakRss(service.child.pid!, () => scenario('mixed'));
      mixed = result;
      rows.push(againstT('mixed 60/25/15', mixed, 0.5), {
        scenario: 'memory under the mixed load',
        value: `${peakMb.toFixed(0)} MB RSS (peak)`,
        target: '≤ 200 MB',
        pass: peakMb <= 200,
      });
      const lag = await sequencingLag(sql, mixedBegan);
      rows.push({
        scenario: 'audit: written → in a signed checkpoint, under the mixed load',
        value: `p50 ${lag.p50.toFixed(0)} ms, p99 ${lag.p99.toFixed(0)} ms (${lag.events} events)`,
        target: 'p99 ≤ 1 s',
        pass: lag.p99 <= 1000,
      });
    }
    // The million-referral pull only when asked for (--only pull-large) or in a full run: its seeding takes minutes.
    if (pullSmall && selected('pull-large')) {
      log(`seeding up to ${plan.large} referrals`);
      const seedBegan = performance.now();
      await seedReferrals(sql, ids, plan.large);
      extras.seedLargeSeconds = (performance.now() - seedBegan) / 1000;
      log(`seeded in ${(extras.seedLargeSeconds as number).toFixed(0)} s`);
      data.pullCursors = await samFeedCursors(sql, ids, 2000);
      const pullLarge = await scenario('pull', `pull at ${plan.large}`);
      const pullPlan = await explainPull(sql, ids, data.pullCursors[0]!);
      rows.push({
        scenario: `therapist pull, 50/page, ${plan.large.toLocaleString('en')} referrals`,
        measured: pullLarge,
        ratio: pullLarge.requestsPerSecond / floorT.requestsPerSecond,
        floor: 'T',
        target: `≥ 0.2 × T, p99 ≤ 150 ms and ≤ 1.5 × p99 at ${plan.small.toLocaleString('en')}; index scans only, no sort`,
        pass:
          pullLarge.requestsPerSecond >= 0.2 * floorT.requestsPerSecond &&
          pullLarge.p99 <= 150 &&
          pullLarge.p99 <= 1.5 * Math.max(pullSmall.p99, 1) &&
          pullPlan.indexOnly &&
          pullLarge.non2xx === 0,
        note: `p99 ${(pullLarge.p99 / Math.max(pullSmall.p99, 1)).toFixed(2)} × the p99 at ${plan.small.toLocaleString('en')}; plan at a deep cursor: ${pullPlan.summary}`,
      });
    }
    if (eventsSmall) {
      log(`seeding up to ${plan.feedLarge} feed events`);
      await seedFeedEvents(sql, ids, treating, plan.feedLarge);
      data.feedCursors = await feedCursors(sql, ids, env.DATA_ENCRYPTION_KEY!, 2000);
      const eventsLarge = await scenario('events', `events at ${plan.feedLarge}`);
      rows.push({
        scenario: `events feed, 100/page, ${plan.feedLarge.toLocaleString('en')} events`,
        measured: eventsLarge,
        floor: `p99 at ${plan.feedSmall.toLocaleString('en')}`,
        ratio: eventsLarge.p99 / Math.max(eventsSmall.p99, 1),
        target: '≤ 1.5, 0 non-2xx',
        pass: eventsLarge.p99 <= 1.5 * Math.max(eventsSmall.p99, 1) && eventsLarge.non2xx === 0,
      });
    }
    if (selected('webhooks')) {
      log('webhooks');
      rows.push(...(await measureWebhooks({ url, sql, ids, data, loadGenerator: loadGenerator.child, drainCount: plan.drain, steadySeconds: plan.steadySeconds, log, servicePid: service.child.pid })));
    }
    await service.stop();

    if (selected('pgbouncer')) {
      const direct = { create, read, mixed };
      log('the same service through PgBouncer (transaction pooling)');
      const bouncer = await startPgbouncer(databaseUrl, { poolSize: 20 });
      try {
        // The same keys as the direct run: its tokens stay valid and its sealed secrets open.
        const pooled = await startService({ ...env, PORT: String(await freePort()), DATABASE_URL: bouncer.url, DATABASE_DIRECT_URL: databaseUrl });
        try {
          for (const [name, label] of [['create', 'create referral'], ['read', 'read one referral (audited)'], ['mixed', 'mixed 60/25/15']] as const) {
            const before = direct[name];
            if (!before) continue;
            const through = await measure(`${name} through PgBouncer`, { scenario: name, url: pooled.url, data }, { servingPid: pooled.child.pid });
            rows.push({ scenario: `${label}, through PgBouncer`, measured: through, floor: 'direct', ratio: through.requestsPerSecond / before.requestsPerSecond });
          }
        } finally {
          await pooled.stop();
        }
      } finally {
        await bouncer.stop();
      }
    }

    if (!flags['no-embedded'] && selected('embedded')) {
      create ??= await (async () => {
        throw new Error('the embedded pass compares with the PostgreSQL create rate: select create too');
      })();
      rows.push(...(await embeddedPass(create)));
    }
  } finally {
    await loadGenerator?.stop();
    await sql.end({ timeout: 5 });
    await admin.unsafe(`drop database if exists ${databaseName} with (force)`).catch(() => {});
    await admin.end({ timeout: 5 });
  }
  await report(rows, { quick: quick || only !== undefined, extras, seconds: (performance.now() - began) / 1000 });
}

/** The embedded database: start-up fresh and with an existing folder, and the create rate. */
async function embeddedPass(postgresCreate: Measured): Promise<Row[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-pglite-'));
  const probeDir = await mkdtemp(join(tmpdir(), 'bench-pglite-start-'));
  try {
    log('embedded PGlite: database start-up, fresh and existing folder');
    const startUp = async () => {
      const probe = await startChild('bench/embedded-start.ts');
      const { milliseconds } = await ask<{ milliseconds: number }>(probe.child, { dataDir: probeDir });
      await probe.stop();
      return milliseconds;
    };
    const freshDatabase = await startUp();
    const existingDatabase = median([await startUp(), await startUp(), await startUp()]);

    log('embedded PGlite: the service, fresh and with an existing folder');
    const port = await freePort();
    const fresh = await startService(serviceEnv(port, { DATA_DIR: dataDir }));
    await fresh.stop();
    const existing = await startService(serviceEnv(port, { DATA_DIR: dataDir }));
    const ids = await fetchDemoIds(existing.url);
    const data: BenchData = {
      tokens: { physician: await token(existing.url, demoCredentials.users.physician), therapist: await token(existing.url, demoCredentials.users.harborTherapist) },
      therapistId: ids.samId,
      practiceId: ids.harborId,
      officeReferralIds: [],
      pullCursors: [],
      treatingReferralIds: [],
    };
    const create = await measure('embedded create', { scenario: 'create', url: existing.url, data }, { servingPid: existing.child.pid });
    await existing.stop();
    const ratio = create.requestsPerSecond / postgresCreate.requestsPerSecond;
    const seconds = (milliseconds: number) => `${(milliseconds / 1000).toFixed(2)} s`;
    return [
      { scenario: 'embedded database start, fresh folder', value: seconds(freshDatabase), target: '≤ 5 s', pass: freshDatabase <= 5000 },
      { scenario: 'embedded database start, existing folder', value: seconds(existingDatabase), target: '≤ 1 s', pass: existingDatabase <= 1000 },
      { scenario: 'service process spawn → ready, fresh folder (demo seed)', value: seconds(fresh.startedInMs) },
      { scenario: 'service process spawn → ready, existing folder', value: seconds(existing.startedInMs) },
      {
        scenario: 'embedded: create referral',
        measured: create,
        floor: 'PG create',
        ratio,
        target: '≥ 0.35 × PostgreSQL create, p99 ≤ 500 ms',
        pass: ratio >= 0.35 && create.p99 <= 500 && create.non2xx === 0,
      },
    ];
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await rm(probeDir, { recursive: true, force: true });
  }
}

/** Sam's id and practice, read through the API (the embedded database has no second connection). */
async function fetchDemoIds(url: string): Promise<{ samId: string; harborId: string }> {
  const therapistToken = await token(url, demoCredentials.users.harborTherapist);
  const response = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${therapistToken}` } });
  const me = (await response.json()) as { id: string; organizationId: string };
  return { samId: me.id, harborId: me.organizationId };
}

await main();
process.exit(0);
