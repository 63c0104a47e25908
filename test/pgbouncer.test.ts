// Issue 17: the service through PgBouncer in transaction pooling mode (DATABASE_URL through the
// bouncer, DATABASE_DIRECT_URL for LISTEN and migrations). Each failure the issue found without
// support is checked: startup, sign-ins and prepared lookups mixed up between clients, the
// migration lock, the statement timeout, and NOTIFY reaching the worker.
import { readdir } from 'node:fs/promises';
import postgres from 'postgres';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { migrationsFolder } from '../src/db/database.js';
import { startPgbouncer, type Bouncer } from './fixtures/pgbouncer.js';
import { startReceiver } from './fixtures/partner-ehr.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { registerEndpoint } from './fixtures/webhooks.js';
import { createOffice, createPractice, createTestDatabase, testConfig, testDatabaseServer, TestApp, type OfficeFixture, type PracticeFixture } from './helper.js';

if (!testDatabaseServer) {
  t.plan(0, 'PgBouncer stands in front of a PostgreSQL server: these tests run in the PostgreSQL suite (TEST_DATABASE_URL)');
} else {
  await run();
}

async function run() {
  const database = await createTestDatabase();
  t.teardown(database.drop);
  // A small server pool, so that the two services' clients share server connections all the time.
  const bouncer: Bouncer = await startPgbouncer(database.url, { poolSize: 3 });
  t.teardown(bouncer.stop);
  const direct = postgres(database.url, { max: 2, onnotice: () => {} });
  t.teardown(() => direct.end({ timeout: 1 }));

  const pooledEnv = (env: Record<string, string> = {}) => ({
    DATABASE_URL: bouncer.url,
    DATABASE_DIRECT_URL: database.url,
    DATABASE_POOL_SIZE: '8',
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    ...env,
  });
  async function startService(env: Record<string, string> = {}): Promise<TestApp> {
    const config = testConfig(pooledEnv(env));
    const app = await buildApp({ config });
    t.teardown(() => app.close());
    return new TestApp(app, config);
  }

  // Two processes of the service starting at once on an empty database: migrations run once.
  const [first, second] = await Promise.all([startService(), startService({ ROLE: 'api' })]);

  t.test('two services start at once through the bouncer and migrate the empty database once', async (t) => {
    const files = (await readdir(migrationsFolder)).filter((name) => name.endsWith('.sql'));
    const [applied] = await direct<{ count: number }[]>`select count(*)::int as count from drizzle.__drizzle_migrations`;
    t.equal(applied!.count, files.length, 'every migration applied exactly once');
    t.equal(first.config.databasePreparedStatements, false, 'no named prepared statements behind a pooler unless asked for');
    // pg_locks shows the whole server's locks: other test files migrate beside this one.
    const [leaked] = await direct<{ count: number }[]>`select count(*)::int as count from pg_locks
      where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
    t.equal(leaked!.count, 0, 'no advisory lock outlives the migration');
    for (const service of [first, second]) {
      const ready = await service.request({ method: 'GET', url: '/health/ready' });
      t.equal(ready.statusCode, 200, 'ready');
    }
  });

  let office: OfficeFixture;
  let practice: PracticeFixture;
  t.test('sign-ins and reads of many callers through both services answer each caller as itself', async (t) => {
    const admin = await first.loginAsAdmin();
    office = await createOffice(first, admin);
    practice = await createPractice(second, admin);
    const callers = [office.physician, office.staff, office.admin, practice.therapist, practice.admin];
    // Fresh tokens through both services, all at once (two per caller: more would meet the
    // sign-in throttle, which counts attempts in flight).
    const signIns = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).login(callers[i % callers.length]!.email)),
    );
    t.equal(signIns.length, 10, '10 sign-ins succeed');
    const answers = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const response = await (i % 2 === 0 ? first : second).request({ method: 'GET', url: '/v1/me', token: signIns[i % signIns.length]! });
        return { status: response.statusCode, expected: callers[(i % signIns.length) % callers.length]!.id, actual: response.json().id as string };
      }),
    );
    t.same(answers.filter((answer) => answer.status !== 200), [], 'all 300 answered 200 (no 401, 400 or 500)');
    t.same(answers.filter((answer) => answer.actual !== answer.expected), [], "each answered with its own caller's identity");
  });

  t.test('changes and reads of referrals through both services, concurrently', async (t) => {
    const created = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? first : second).request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ therapistId: practice.therapist.id, send: true }) }),
      ),
    );
    t.same(created.map((response) => response.statusCode).filter((status) => status !== 201), [], '40 referrals created');
    const ids = created.map((response) => response.json().id as string);
    const reads = await Promise.all(ids.map((id, i) => (i % 2 === 0 ? second : first).request({ method: 'GET', url: `/v1/referrals/${id}`, token: practice.therapist.token })));
    t.same(reads.map((response) => response.statusCode).filter((status) => status !== 200), [], 'each readable by the therapist through the other service');
    t.same(reads.map((response) => response.json().id), ids, 'each the referral asked for');
  });

  t.test('the statement timeout holds behind the bouncer: a change stuck on a row lock is a 503 in time', async (t) => {
    const impatient = await startService({ ROLE: 'api', DATABASE_STATEMENT_TIMEOUT_MS: '600' });
    const referral = await impatient.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
    const holder = await direct.reserve();
    try {
      await holder`begin`;
      await holder`select id from referrals where id = ${referral.id} for update`;
      const began = performance.now();
      const stuck = await impatient.request({ method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, payload: { visitsAuthorized: 20 } });
      const waited = performance.now() - began;
      t.equal(stuck.statusCode, 503, '503 while the row stays locked');
      t.match(stuck.headers['content-type'], /^application\/problem\+json/);
      t.ok(waited < 3_000, `answered after ${Math.round(waited)} ms, not held until the lock is released`);
    } finally {
      await holder`rollback`;
      holder.release();
    }
    const after = await impatient.request({ method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, payload: { visitsAuthorized: 20 } });
    t.equal(after.statusCode, 200, 'the change goes through once the lock is gone');
  });

  t.test('audited reads under load through the bouncer never wedge a connection', async (t) => {
    // With the driver's pipelining on, PgBouncer 1.18 lost answers to statements sent behind
    // others on a connection, and those connections never answered again: the bench's reads
    // through it turned into 503s for good. The load-shedding probe runs, as in production. With
    // pipelining on, 1 or 2 of these 1,000 reads never got an answer, in each of 3 runs.
    const loaded = await startService({ ROLE: 'api', DATABASE_PROBE_INTERVAL_MS: '1000' });
    const referral = await loaded.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
    const read = (ms: number) =>
      Promise.race([
        loaded.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: practice.therapist.token }).then((response) => response.statusCode),
        new Promise<'hung'>((resolve) => setTimeout(resolve, ms, 'hung').unref()),
      ]);
    const statuses: (number | 'hung')[] = [];
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        for (let i = 0; i < 25; i++) statuses.push(await read(10_000));
      }),
    );
    const counts = statuses.reduce<Record<string, number>>((all, status) => ({ ...all, [status]: (all[status] ?? 0) + 1 }), {});
    t.notOk(counts.hung, `no read waited 10 s (${JSON.stringify(counts)})`);
    t.ok((counts[200] ?? 0) >= statuses.length * 0.9, 'nine in ten or more answered 200');
    // Connections wedged by lost answers would leave the service shedding everything from here on.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const after = await Promise.all(Array.from({ length: 20 }, () => read(5_000)));
    t.same(after, Array(20).fill(200), 'and afterwards every read is answered 200');
  });

  t.test('NOTIFY reaches the worker through the direct connection: deliveries go out at once, not at the next poll', async (t) => {
    // The worker polls only every 10 s: a delivery within a second was woken by NOTIFY.
    const worker = await startService({ ROLE: 'worker', WEBHOOK_POLL_MS: '10000' });
    const hook = await startReceiver(t);
    await registerEndpoint(t, first, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
    // The worker's first poll (at start) has passed once the endpoint exists.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const began = performance.now();
      const before = hook.requests.length;
      await first.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
      while (hook.requests.length === before && performance.now() - began < 5_000) await new Promise((resolve) => setTimeout(resolve, 5));
      latencies.push(performance.now() - began);
    }
    t.comment(`create → delivery through PgBouncer: ${latencies.map((ms) => Math.round(ms)).join(', ')} ms`);
    t.ok(latencies.every((ms) => ms < 1_000), 'every delivery within a second of its create');
    t.ok(worker.app.hasDecorator('webhookWorker'), 'the worker ran the delivery');
  });
}
