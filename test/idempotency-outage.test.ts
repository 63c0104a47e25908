// An Idempotency-Key across a database outage: a POST whose key was claimed and which then failed
// with 503 because PostgreSQL went away must not leave the key claimed once PostgreSQL is back;
// a retry of it runs afresh. (The scale-out test found retries told 409 "in progress" for the 5
// minutes after which a claim counts as abandoned.) The service reaches PostgreSQL through a TCP
// relay the test cuts; a row lock holds the POST after its claim until the cut.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { startTcpRelay } from './fixtures/tcp-relay.js';
import { createOffice, createPractice, createTestDatabase, testConfig, testDatabaseServer, TestApp } from './helper.js';

if (!testDatabaseServer) {
  t.plan(0, 'cutting the way to a PostgreSQL server: runs in the PostgreSQL suite (TEST_DATABASE_URL)');
} else {
  await run();
}

async function run() {
  const database = await createTestDatabase();
  t.teardown(database.drop);
  const server = new URL(database.url);
  const relay = await startTcpRelay(t, server.hostname, Number(server.port || 5432));
  const throughRelay = new URL(database.url);
  throughRelay.hostname = '127.0.0.1';
  throughRelay.port = String(relay.port());
  const config = testConfig({ DATABASE_URL: throughRelay.toString() });
  const app = await buildApp({ config });
  t.teardown(() => app.close());
  const test = new TestApp(app, config);
  const direct = postgres(database.url, { max: 2, onnotice: () => {} });
  t.teardown(() => direct.end({ timeout: 1 }));

  const admin = await test.loginAsAdmin();
  const office = await createOffice(test, admin);
  const practice = await createPractice(test, admin);

  t.test('a POST claimed, then failed with 503 as PostgreSQL went away, can be retried once it is back', async (t) => {
    const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
    const key = `outage-${randomBytes(6).toString('hex')}`;
    const accept = () =>
      test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {}, headers: { 'idempotency-key': key } });

    const holder = await direct.reserve();
    let first: Awaited<ReturnType<typeof accept>>;
    try {
      await holder`begin`;
      await holder`select id from referrals where id = ${referral.id} for update`;
      const answer = accept();
      // The key is claimed (its own statement) before the accept waits on the row lock.
      for (let waited = 0; (await direct`select 1 from idempotency_records where key = ${key}`).length === 0; waited += 20) {
        if (waited > 5_000) throw new Error('the key was never claimed');
        await sleep(20);
      }
      await sleep(100);
      await relay.cut();
      first = await answer;
    } finally {
      await holder`rollback`;
      holder.release();
    }
    t.equal(first.statusCode, 503, 'the accept in flight is a 503 when the database goes away');
    await relay.restore();

    const began = performance.now();
    const statuses: number[] = [];
    while (statuses.at(-1) !== 200 && performance.now() - began < 5_000) {
      statuses.push((await accept()).statusCode);
      if (statuses.at(-1) !== 200) await sleep(250);
    }
    t.equal(statuses.at(-1), 200, `a retry with the key is accepted within seconds of the database being back (${statuses.join(', ')})`);
    const [row] = await direct<{ status: string }[]>`select status from referrals where id = ${referral.id}`;
    t.equal(row!.status, 'accepted', 'once');
    const [history] = await direct<{ n: number }[]>`select count(*)::int as n from referral_events where referral_id = ${referral.id} and action = 'accept'`;
    t.equal(history!.n, 1, 'with one accept in its history');
  });
}
