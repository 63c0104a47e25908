// Issue 17, scale-out as an operator runs it: two API processes and two workers (the esbuild output
// of src, as `npm start` builds it) on one PostgreSQL behind PgBouncer in transaction mode, sharing
// rate limits through Redis. Clients drive referrals, acceptances and messages through both APIs,
// as behind a load balancer, while the test
//   1. SIGKILLs a worker (and starts it again, as a supervisor would),
//   2. replaces both APIs one after the other (a rolling deploy: out of rotation, SIGTERM, a new
//      process, back in rotation),
//   3. restarts PostgreSQL.
// Then: every acknowledged write is there; every event reached the partner's endpoint, none sent
// twice at once, in order per referral, duplicates only where a worker died or the database went
// away between the answer and its record; the therapist's sync feed and events feed, followed
// through both APIs during all of it, hold every referral and event; the audit log verifies.
// Last, two more API processes with small limits show the limits are counted once for all
// processes. The figures are printed for the README.
// The database is a private cluster of this file (private-postgres.ts), so the restart touches
// nothing else. Run: npx tap test-faults/scale-out.test.ts --disable-coverage --timeout 600
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import postgres from 'postgres';
import t from 'tap';
import { startPgbouncer, pgbouncerBinary } from '../test/fixtures/pgbouncer.js';
import { startReceiver, verify, type Delivered } from '../test/fixtures/partner-ehr.js';
import { referralBody } from '../test/fixtures/referral-bodies.js';
import { isolatedPrefix, redisAnswers, redisUrl } from '../test/fixtures/redis.js';
import { startPrivatePostgres } from './private-postgres.js';

process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
// helper.ts reads TEST_DATABASE_URL when it is loaded, so it and what imports it come after the line above.
const { createOffice, createPractice } = await import('../test/helper.js');
const { buildService, HttpApp, serviceEnv, sleep, startServiceProcess, stopAllServices, waitFor } = await import('./service-process.js');
type Json = Record<string, any>;
type ServiceProcess = Awaited<ReturnType<typeof startServiceProcess>>;

const lanes = 6; // clients writing at once, each a referral's whole loop at a time
const thinkMs = 150; // each client's pause between referrals
const driveSeconds = 24;
const killWorkerAtMs = 3_000;
const restartWorkerAfterMs = 2_000;
const rollingDeployAtMs = 7_000;
const databaseRestartAtMs = 15_000;
const databaseDownMs = 2_000;
const receiverDelayMs = 40; // each delivery is in flight this long at the partner
const leaseSeconds = 10; // WEBHOOK_LEASE_SECONDS, the default
const tokenLimit = 30;
const perCallerLimit = 20;

if (!existsSync(pgbouncerBinary) && !process.env.CI) {
  t.plan(0, `no PgBouncer at ${pgbouncerBinary} (PGBOUNCER_BIN): .ci/run installs it`);
} else if (!(await redisAnswers()) && !process.env.CI) {
  t.plan(0, `no Redis server at ${redisUrl} (TEST_REDIS_URL): the scale-out test needs one`);
} else {
  await run();
}

async function run() {
  const setupStarted = Date.now();
  const cluster = await startPrivatePostgres(t);
  const bouncer = await startPgbouncer(cluster.url, { poolSize: 10 });
  const side = postgres(cluster.url, { max: 2, onnotice: () => {} });
  const serviceBuild = await buildService('scale-out');
  t.teardown(async () => {
    await stopAllServices();
    await side.end({ timeout: 1 }).catch(() => {});
    await bouncer.stop();
    serviceBuild.remove();
  });

  // ---- the partner's endpoint: counts deliveries in flight per event, and those answered ----
  const inFlight = new Set<string>();
  const answered = new Map<string, number>(); // webhook-id → 200s written while the sender was there
  const firstAnswered: string[] = []; // webhook-ids in the order of their first 200
  let overlaps = 0;
  let secret = '';
  let badSignatures = 0;
  const receiver = await startReceiver(t, (delivered: Delivered, response: ServerResponse) => {
    try {
      verify(delivered, secret);
    } catch {
      badSignatures++;
      response.writeHead(400).end();
      return;
    }
    if (inFlight.has(delivered.id)) overlaps++;
    inFlight.add(delivered.id);
    const answer = () =>
      setTimeout(() => {
        inFlight.delete(delivered.id);
        if (response.destroyed) return; // the worker is gone: it never sees this answer
        if (!answered.has(delivered.id)) firstAnswered.push(delivered.id);
        answered.set(delivered.id, (answered.get(delivered.id) ?? 0) + 1);
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      }, receiverDelayMs);
    if (held) void held.then(answer);
    else answer();
  });
  // While held, the endpoint answers nothing: both workers then have deliveries in flight.
  let held: Promise<void> | undefined;
  let releaseHeld = () => {};

  // ---- the processes ----
  const common = {
    DATABASE_DIRECT_URL: cluster.url,
    DATABASE_POOL_SIZE: '6',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: isolatedPrefix(),
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    WEBHOOK_LEASE_SECONDS: String(leaseSeconds),
  };
  const startApi = (name: string) => startServiceProcess(serviceBuild.folder, name, serviceEnv(bouncer.url, { ...common, ROLE: 'api' }));
  const startWorker = (name: string) => startServiceProcess(serviceBuild.folder, name, serviceEnv(bouncer.url, { ...common, ROLE: 'worker' }));
  // All four at once on the empty database: one of them migrates it, under the transaction lock.
  const [apiA, apiB, worker1, worker2] = await Promise.all([startApi('api A'), startApi('api B'), startWorker('worker 1'), startWorker('worker 2')]);
  const workers: ServiceProcess[] = [worker1!, worker2!];

  // ---- the load balancer: round robin over the APIs in rotation ----
  const rotation: ServiceProcess[] = [apiA!, apiB!];
  const servedBy = new Map<string, number>(); // 2xx answers by API process
  let turn = 0;
  interface Outcome {
    status: number; // 0: no HTTP answer (connection refused or reset)
    body: Json;
    at: number;
    error?: string;
  }
  const outcomes: Outcome[] = [];
  async function call(method: string, path: string, token: string | undefined, payload?: Json, headers: Record<string, string> = {}): Promise<Outcome> {
    const api = rotation[turn++ % rotation.length]!;
    let outcome: Outcome;
    try {
      const response = await fetch(`${api.baseUrl}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
        body: payload ? JSON.stringify(payload) : undefined,
      });
      const text = await response.text();
      outcome = { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : {}, at: Date.now() };
      if (response.ok) servedBy.set(api.name, (servedBy.get(api.name) ?? 0) + 1);
    } catch (error) {
      outcome = { status: 0, body: {}, at: Date.now(), error: `${api.name}: ${String((error as Error).cause ?? error)}` };
    }
    outcomes.push(outcome);
    return outcome;
  }
  /** Repeats a request (with one Idempotency-Key for a POST) until it succeeds, as a careful client does. */
  async function until2xx(method: string, path: string, token: string, payload?: Json): Promise<Json> {
    const headers: Record<string, string> = method === 'POST' ? { 'idempotency-key': randomUUID() } : {};
    const deadline = Date.now() + 60_000;
    for (;;) {
      const outcome = await call(method, path, token, payload, headers);
      if (outcome.status >= 200 && outcome.status < 300) return outcome.body;
      if (Date.now() > deadline) throw new Error(`${method} ${path} kept failing: ${outcome.status} ${JSON.stringify(outcome.body)} ${outcome.error ?? ''}`);
      await sleep(200);
    }
  }

  // ---- the network, through the balancer's first API ----
  const admin = new HttpApp(apiA!.baseUrl);
  const networkAdmin = await admin.loginAsAdmin();
  const office = await createOffice(admin, networkAdmin);
  const practice = await createPractice(admin, networkAdmin);
  const endpoint = await admin.create('/v1/webhook-endpoints', office.admin.token, {
    url: receiver.url,
    eventTypes: ['referral.sent', 'referral.accepted', 'message.created'],
    description: 'scale-out partner',
  });
  secret = endpoint.secret;
  t.comment(`set up in ${Date.now() - setupStarted} ms (cluster, PgBouncer, build, four processes, fixtures)`);

  // ---- the therapist's app: follows the sync feed and the events feed through the balancer ----
  let following = true;
  const syncSeen = new Map<string, Json>(); // referral id → the latest version seen
  const feedEvents: Json[] = [];
  /**
   * Polls a feed as the app does: `take` keeps each page's records and says where to ask from next
   * and whether more is waiting at once; once `following` ends, one last pass reads to the end.
   */
  async function follow(pageAt: (cursor: string | undefined) => string, take: (page: Json) => { cursor: string; more: boolean }): Promise<void> {
    let cursor: string | undefined;
    for (;;) {
      const finalPass = !following;
      const outcome = await call('GET', pageAt(cursor), practice.therapist.token);
      if (outcome.status !== 200) {
        await sleep(200);
        continue;
      }
      const next = take(outcome.body);
      cursor = next.cursor;
      if (next.more) continue;
      if (finalPass) return;
      await sleep(300);
    }
  }
  const followSync = () =>
    follow(
      (cursor) => `/v1/referrals?limit=50${cursor ? `&cursor=${cursor}` : ''}`,
      (page) => {
        for (const referral of page.data as Json[]) syncSeen.set(referral.id, referral);
        return { cursor: page.syncCursor, more: page.nextCursor !== null };
      },
    );
  const followEvents = () =>
    follow(
      (after) => `/v1/events?limit=200${after ? `&after=${after}` : ''}`,
      (page) => {
        feedEvents.push(...(page.data as Json[]));
        return { cursor: page.nextCursor, more: (page.data as Json[]).length === 200 };
      },
    );

  const countClaimed = async () => (await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where status = 'delivering'`)[0]!.n;

  // ---- the drive ----
  const driveStarted = Date.now();
  const acknowledged: string[] = [];
  let driving = true;
  async function lane(): Promise<void> {
    while (driving) {
      const referral = await until2xx('POST', '/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
      acknowledged.push(referral.id);
      await until2xx('POST', `/v1/referrals/${referral.id}/accept`, practice.therapist.token, {});
      await until2xx('POST', `/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: 'First visit booked for Tuesday.' });
      await until2xx('POST', `/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'Thank you; please send the evaluation.' });
      // People between referrals: the machine is not saturated, so process starts take their usual time.
      await sleep(thinkMs);
    }
  }
  const followers = [followSync(), followEvents()];
  const writers = Array.from({ length: lanes }, () => lane());
  const at = (ms: number) => sleep(Math.max(0, driveStarted + ms - Date.now()));

  // 1. A worker SIGKILLed: what it had claimed waits for its lease, then the other worker sends it.
  // Killed while it surely has deliveries in flight: the endpoint holds its answers until then.
  await at(killWorkerAtMs);
  held = new Promise((resolve) => (releaseHeld = resolve));
  await waitFor('deliveries in flight at the endpoint', () => inFlight.size >= 8, 10_000, 20);
  await sleep(200);
  const claimedAtKill = (await side<{ id: string }[]>`select id from webhook_deliveries where status = 'delivering'`).map((row) => row.id);
  const killedAt = Date.now();
  await worker1!.stop('SIGKILL');
  held = undefined;
  releaseHeld();
  const recovery = (async () => {
    await waitFor(
      'the killed worker\'s deliveries to be sent by another',
      async () => (await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where id = any(${claimedAtKill}::uuid[]) and status <> 'succeeded'`)[0]!.n === 0,
      (leaseSeconds + 20) * 1000,
      100,
    );
    return Date.now() - killedAt;
  })();
  await sleep(restartWorkerAfterMs);
  workers[0] = await startWorker('worker 1 again');

  // 2. A rolling deploy of the APIs: each leaves the rotation, ends gracefully, and its
  //    replacement joins once ready.
  await at(rollingDeployAtMs);
  const deployStarted = Date.now();
  const exitCodes: (number | null)[] = [];
  const deploySteps: string[] = [];
  for (const [index, name] of [[0, 'api A v2'], [1, 'api B v2']] as const) {
    const leaving = rotation[index]!;
    rotation.splice(index, 1);
    const stopping = Date.now();
    exitCodes.push((await leaving.stop('SIGTERM')).code);
    const starting = Date.now();
    const replacement = await startApi(name);
    rotation.splice(index, 0, replacement);
    deploySteps.push(`${leaving.name} stopped in ${starting - stopping} ms, ${name} ready in ${Date.now() - starting} ms`);
  }
  const deployMs = Date.now() - deployStarted;

  // 3. PostgreSQL restarted behind PgBouncer.
  await at(databaseRestartAtMs);
  const claimedAtDatabaseStop = await countClaimed();
  const databaseDownAt = Date.now();
  await cluster.restart(databaseDownMs);
  const databaseBackAt = Date.now();

  await at(driveSeconds * 1000);
  driving = false;
  await Promise.all(writers);
  const driveMs = Date.now() - driveStarted;
  const recoveryMs = await recovery;

  // Everything written is delivered (no delivery left pending or under a lease).
  await waitFor(
    'every delivery to be sent',
    async () => (await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where status <> 'succeeded'`)[0]!.n === 0,
    60_000,
    200,
  );
  following = false;
  await Promise.all(followers);

  // ---- checks ----
  t.test('every process stayed up, and the deploy ended each old API cleanly', async (t) => {
    for (const service of [...rotation, ...workers]) t.notOk(service.exited(), `${service.name} is running${service.exited() ? `: ${service.output().slice(-2000)}` : ''}`);
    t.same(exitCodes, [0, 0], 'each API replaced in the rolling deploy exited 0 after SIGTERM');
  });

  t.test('clients got answers, never errors, through two APIs, a rolling deploy and a database restart', async (t) => {
    const refused = outcomes.filter((outcome) => outcome.status === 0);
    t.same(refused.map((outcome) => outcome.error), [], 'no connection refused or reset: the rolling deploy dropped no request');
    const failures = outcomes.filter((outcome) => outcome.status >= 300 && outcome.status !== 503);
    t.same(failures.map((outcome) => `${outcome.status} ${JSON.stringify(outcome.body).slice(0, 300)}`), [], 'no answer but 2xx and 503');
    const unavailable = outcomes.filter((outcome) => outcome.status === 503);
    const outsideOutage = unavailable.filter((outcome) => outcome.at < databaseDownAt || outcome.at > databaseBackAt + 10_000);
    t.same(
      outsideOutage.map((outcome) => `${outcome.at - driveStarted} ms: ${JSON.stringify(outcome.body).slice(0, 200)}`),
      [],
      `503 only while PostgreSQL was down or coming back (${databaseDownAt - driveStarted}–${databaseBackAt - driveStarted} ms into the drive)`,
    );
    t.ok(servedBy.size >= 4, `both APIs and both of their replacements served (${[...servedBy].map(([name, n]) => `${name} ${n}`).join(', ')})`);
    const found = await side<{ id: string }[]>`select id from referrals where id = any(${acknowledged}::uuid[])`;
    t.equal(found.length, acknowledged.length, `every acknowledged referral is in the database (${acknowledged.length})`);
  });

  const ordered = await side<{ eventId: string; referralId: string }[]>`
    select event_id as "eventId", referral_id as "referralId" from webhook_deliveries where endpoint_id = ${endpoint.id} order by seq`;
  const duplicates = [...answered.values()].reduce((sum, n) => sum + n - 1, 0);

  t.test('webhooks: every event delivered, never twice at once, in order per referral', async (t) => {
    t.equal(badSignatures, 0, 'every delivery verifies with the endpoint secret');
    t.equal(overlaps, 0, 'no event was in flight twice at once');
    const missing = ordered.filter(({ eventId }) => !answered.has(eventId));
    t.equal(missing.length, 0, `every one of ${ordered.length} events answered 200 at least once`);
    t.equal(ordered.length, acknowledged.length * 4, 'four events for each referral (sent, accepted, two messages)');
    // At least once: a delivery its worker had sent, but not yet recorded, when the worker died
    // or the database went away is sent again; nothing else is.
    t.ok(
      duplicates <= claimedAtKill.length + claimedAtDatabaseStop,
      `${duplicates} duplicates, no more than were claimed when the worker was killed (${claimedAtKill.length}) or the database stopped (${claimedAtDatabaseStop})`,
    );
    const position = new Map(firstAnswered.map((id, index) => [id, index]));
    const outOfOrder = new Set<string>();
    const lastByReferral = new Map<string, number>();
    for (const { eventId, referralId } of ordered) {
      const index = position.get(eventId) ?? -1;
      if (index < (lastByReferral.get(referralId) ?? -1)) outOfOrder.add(referralId);
      lastByReferral.set(referralId, index);
    }
    t.equal(outOfOrder.size, 0, 'per referral, each event was first answered after the one before it');
    t.ok(recoveryMs <= (leaseSeconds + 5) * 1000, `the ${claimedAtKill.length} deliveries claimed at the kill were all sent ${recoveryMs} ms after it (lease ${leaseSeconds} s)`);
    t.ok(recoveryMs >= 1_000, 'among them the killed worker\'s, which waited for their lease (none was in flight otherwise)');
  });

  t.test('the therapist\'s sync feed and events feed, followed through both APIs, hold everything', async (t) => {
    const latest = await side<{ id: string; version: number }[]>`select id, version from referrals`;
    const stale = latest.filter((row) => syncSeen.get(row.id)?.version !== row.version);
    t.equal(syncSeen.size, latest.length, `the sync feed showed every referral (${syncSeen.size} of ${latest.length})`);
    t.same(stale.map((row) => row.id), [], 'each at its latest version');
    const ids = feedEvents.map((event) => event.id as string);
    t.equal(new Set(ids).size, ids.length, 'the events feed showed no event twice');
    t.same([...new Set(ids)].sort(), ordered.map(({ eventId }) => eventId).sort(), 'and exactly the events the partner received');
  });

  t.test('the audit log verifies', async (t) => {
    let verification: Json = {};
    await waitFor(
      'the audit sequencer to catch up',
      async () => {
        const response = await fetch(`${rotation[0]!.baseUrl}/v1/audit-events/verify`, { headers: { authorization: `Bearer ${networkAdmin}` } });
        verification = (await response.json()) as Json;
        return verification.valid === true && verification.unsequenced === 0;
      },
      30_000,
      250,
    );
    t.match(verification, { valid: true, unsequenced: 0 }, `valid, ${verification.treeSize} events`);
  });

  // ---- limits: two more APIs with small limits; counts start fresh under a key prefix of their own ----
  t.test('rate limits are counted once for all processes', async (t) => {
    const limited = { ...common, ROLE: 'api', REDIS_KEY_PREFIX: isolatedPrefix(), TOKEN_RATE_LIMIT_PER_MINUTE: String(tokenLimit), RATE_LIMIT_PER_MINUTE: String(perCallerLimit) };
    const [apiC, apiD] = await Promise.all(
      ['api C', 'api D'].map((name) => startServiceProcess(serviceBuild.folder, name, serviceEnv(bouncer.url, limited), { waitUntil: 'listening' })),
    );
    const both = [apiC!, apiD!];
    const tokenStatuses: number[] = [];
    for (let i = 0; i < 80; i++) {
      const response = await fetch(`${both[i % 2]!.baseUrl}/v1/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ grant_type: 'password', username: `nobody-${i}@example.test`, password: 'wrong-password-1' }),
      });
      tokenStatuses.push(response.status);
    }
    const tokenPassed = tokenStatuses.filter((status) => status !== 429).length;
    t.equal(tokenPassed, tokenLimit, `of 80 token requests through two processes, ${tokenPassed} passed a limit of ${tokenLimit}`);
    const callerStatuses: number[] = [];
    for (let i = 0; i < 80; i++) {
      const response = await fetch(`${both[i % 2]!.baseUrl}/v1/me`, { headers: { authorization: `Bearer ${office.staff.token}` } });
      callerStatuses.push(response.status);
    }
    const callerPassed = callerStatuses.filter((status) => status === 200).length;
    t.equal(callerPassed, perCallerLimit, `of 80 requests of one caller through two processes, ${callerPassed} passed a limit of ${perCallerLimit}`);
    t.same(callerStatuses.slice(perCallerLimit), Array(80 - perCallerLimit).fill(429), 'the rest were refused, whichever process took them');
    for (const api of both) {
      const ready = await fetch(`${api.baseUrl}/health/ready`).then((response) => response.json() as Promise<Json>);
      t.equal(ready.details?.rateLimits, 'shared', `${api.name} says its limits are shared`);
    }
    t.comment(
      `figures: ${acknowledged.length} referrals (${outcomes.length} requests in ${driveMs} ms: ${[...servedBy].map(([name, n]) => `${name} ${n}`).join(', ')}); ` +
        `${outcomes.filter((outcome) => outcome.status === 503).length} × 503 during the database restart (down ${databaseBackAt - databaseDownAt} ms); ` +
        `rolling deploy ${deployMs} ms (${deploySteps.join('; ')}), 0 requests failed; ${ordered.length} deliveries, ${duplicates} duplicates, ${overlaps} overlapping; ` +
        `worker SIGKILL with ${claimedAtKill.length} claimed: all sent ${recoveryMs} ms later (lease ${leaseSeconds} s); ` +
        `limits: ${tokenPassed} of 80 token requests (limit ${tokenLimit}), ${callerPassed} of 80 per caller (limit ${perCallerLimit})`,
    );
  });
}
