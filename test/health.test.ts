// Liveness and readiness (SPEC §11): public, outside /v1; ready means database reachable and migrations applied.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { buildTestApp } from './helper.js';


// The worker's sequencer runs at start only: the lag test decides when events are sequenced.
const test = await buildTestApp(t, { env: { AUDIT_SEQUENCER_POLL_MS: '60000' } });

t.test('GET /health/live is 200 {status: ok} without a token', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/live' });
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.same(response.json(), { status: 'ok' });
});

t.test('GET /health/ready is 200 with the database and migrations checks passing', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/ready' });
  t.equal(response.statusCode, 200);
  t.match(response.json(), { status: 'ok', checks: { database: true, migrations: true } });
});

t.test("readiness details report the audit sequencer's lag: how long the oldest event not in a signed checkpoint waited", async (t) => {
  const lag = async () => (await test.request({ method: 'GET', url: '/health/ready' })).json().details.auditSequencerLagSeconds as number;
  await test.app.auditSequencer.run({ wait: true });
  t.equal(await lag(), 0, 'none waits right after the sequencer ran');
  // An event written a minute ago that no sequencer has seen yet, as when every worker is down.
  await test.app.database.rows(sql`insert into audit_events (occurred_at, actor_type, action, outcome) values (now() - interval '60 seconds', 'system', 'test.waiting', 'success')`);
  const waited = await lag();
  t.ok(waited >= 60 && waited < 120, `the waiting event shows (${waited} s)`);
  await test.app.auditSequencer.run({ wait: true });
  t.equal(await lag(), 0, 'and goes once sequenced and signed');
});

t.test('health checks ignore an invalid bearer token', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/ready', token: 'not.a.jwt' });
  t.equal(response.statusCode, 200);
});

t.test('with the database closed, /health/ready is 503 {status: unavailable} and /health/live stays 200', async (t) => {
  const broken = await buildTestApp(t);
  await broken.app.database.close();
  const ready = await broken.request({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 503);
  t.match(ready.json(), { status: 'unavailable', checks: { database: false } });
  t.notMatch(ready.body, /select|sql|pglite|postgres/i, 'no database detail in the body');
  const live = await broken.request({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200);
});
