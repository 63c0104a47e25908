// Process-level fault tests of the webhook delivery worker on real PostgreSQL (issue 4, "Done when"):
// 1. 500 events; the receiver is down, then answers 503, then 200; the worker process is SIGKILLed
//    mid-way and a new one started: every event arrives, duplicates <= what was in flight at the kill.
// 2. Two worker processes against one database deliver 1,000 events: none sent twice at once, none
//    missing, none sent twice at all.
// Workers are real child processes (`node --import tsx src/server.ts`, ROLE=worker); the API runs
// in-process (ROLE=api) only to create the endpoint and enqueue pings. All traffic is on loopback.
// Run: npx tap test-faults/webhook-faults.test.ts --disable-coverage --timeout 600
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { Webhook } from 'standardwebhooks';
import t from 'tap';

process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
// helper.ts reads TEST_DATABASE_URL when it is loaded, so it is imported after the line above.
const { createTestDatabase, createOffice, testConfig, testJwtSecret, testEncryptionKey, testAuditSigningKey, TestApp } = await import('../test/helper.js');
const { buildApp } = await import('../src/app.js');

const root = fileURLToPath(new URL('..', import.meta.url));
// What one worker keeps in flight: the WEBHOOK_CONCURRENCY default the workers below run with.
const concurrency = testConfig().webhooks.concurrency;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- database and API (in-process, ROLE=api) ----
const database = await createTestDatabase();
const config = testConfig({ DATABASE_URL: database.url, ROLE: 'api', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
const app = await buildApp({ config });
const api = new TestApp(app, config);
const sqlClient = postgres(database.url, { max: 2, onnotice: () => {} });

// ---- worker processes ----
const workers = new Set<ChildProcess>();
const workerOutput = new Map<ChildProcess, string>();
const stopping = new Set<ChildProcess>();

function startWorker(name: string): ChildProcess {
  // node --import tsx (not node_modules/.bin/tsx): the tsx CLI runs the script in a grandchild,
  // so a SIGKILL sent to the CLI would leave the real worker running.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ROLE: 'worker',
      DATABASE_URL: database.url,
      JWT_SECRET: testJwtSecret,
      DATA_ENCRYPTION_KEY: testEncryptionKey,
      AUDIT_SIGNING_KEY: testAuditSigningKey,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
      DEMO_SEED: 'false',
      REFERRAL_EXPIRY_SWEEP_SECONDS: '0',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_RETRY_SCHEDULE: '0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1',
      WEBHOOK_POLL_MS: '100',
      WEBHOOK_TIMEOUT_MS: '2000',
      // A killed worker's claims come back after this; short, so the test need not wait long.
      WEBHOOK_LEASE_SECONDS: '10',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  workers.add(child);
  workerOutput.set(child, '');
  const keep = (chunk: Buffer) => workerOutput.set(child, (workerOutput.get(child)! + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', (code, signal) => {
    workers.delete(child);
    if (!stopping.has(child)) t.comment(`worker ${name} exited (code ${code}, signal ${signal}): ${workerOutput.get(child)}`);
  });
  return child;
}

async function killWorker(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  stopping.add(child);
  child.kill(signal);
  await exited;
}

t.teardown(async () => {
  await Promise.all([...workers].map((child) => killWorker(child)));
  await app.close();
  await sqlClient.end();
  await database.drop();
});

// ---- receiver (node:http on 127.0.0.1) ----
class Receiver {
  server: Server | undefined;
  port = 0;
  mode: 'ok' | 'unavailable' = 'ok';
  delayMs: () => number = () => 0;
  readonly received = new Map<string, number>(); // every verified request, by webhook-id
  readonly answeredOk = new Map<string, number>(); // 2xx written while the sender's socket was open
  readonly inProgress = new Set<string>();
  overlaps = 0; // a request arrived while another with the same webhook-id was in progress
  readonly overlapIds = new Set<string>();
  badSignatures = 0;
  unavailableAnswers = 0;
  maxInProgress = 0;

  constructor(private readonly secret: string) {}

  async listen(port = 0): Promise<void> {
    const server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  get uniqueOk(): number {
    return this.answeredOk.size;
  }

  get duplicatesOk(): number {
    let extra = 0;
    for (const count of this.answeredOk.values()) extra += count - 1;
    return extra;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const id = String(request.headers['webhook-id']);
    try {
      new Webhook(this.secret).verify(body, request.headers as Record<string, string>);
    } catch {
      this.badSignatures++;
      response.writeHead(400).end();
      return;
    }
    this.received.set(id, (this.received.get(id) ?? 0) + 1);
    if (this.inProgress.has(id)) {
      this.overlaps++;
      this.overlapIds.add(id);
    }
    this.inProgress.add(id);
    this.maxInProgress = Math.max(this.maxInProgress, this.inProgress.size);
    try {
      const delay = this.delayMs();
      if (delay > 0) await sleep(delay);
      if (this.mode === 'unavailable') {
        this.unavailableAnswers++;
        response.writeHead(503).end('try later');
        return;
      }
      if (request.socket.destroyed) return; // the sender is gone (killed): it never sees an answer
      this.answeredOk.set(id, (this.answeredOk.get(id) ?? 0) + 1);
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } finally {
      this.inProgress.delete(id);
    }
  }
}

async function createEndpoint(receiverPort: number): Promise<{ id: string; secret: string }> {
  const adminToken = await api.loginAsAdmin();
  const office = await createOffice(api, adminToken);
  const endpoint = await api.create('/v1/webhook-endpoints', office.admin.token, {
    url: `http://127.0.0.1:${receiverPort}/hooks`,
    eventTypes: ['referral.accepted'],
    description: 'fault test receiver',
  });
  return { id: endpoint.id, secret: endpoint.secret, token: office.admin.token } as never;
}

async function enqueuePings(endpointId: string, token: string, count: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      const response = await api.request({ method: 'POST', url: `/v1/webhook-endpoints/${endpointId}/test`, token });
      if (response.statusCode !== 202) throw new Error(`ping failed: ${response.statusCode} ${response.body}`);
    }
  };
  await Promise.all(Array.from({ length: 20 }, lane));
}

async function deliveryStatuses(endpointId: string): Promise<Record<string, number>> {
  const rows = await sqlClient<{ status: string; n: number }[]>`
    select status, count(*)::int as n from webhook_deliveries where endpoint_id = ${endpointId} group by status`;
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

/** How many of the endpoint's deliveries have an attempt with this status code (null: no answer). */
async function attemptedDeliveries(endpointId: string, statusCode: number | 'null'): Promise<number> {
  const [row] = await sqlClient<{ n: number }[]>`
    select count(distinct a.delivery_id)::int as n from webhook_attempts a
    join webhook_deliveries d on d.id = a.delivery_id
    where d.endpoint_id = ${endpointId}
      and ${statusCode === 'null' ? sqlClient`a.status_code is null` : sqlClient`a.status_code = ${statusCode}`}`;
  return row!.n;
}

/** A free loopback port with nothing listening on it (the receiver is "down"). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

t.test('crash and restart: receiver down, then 503, then 200; worker SIGKILLed mid-way', async (t) => {
  const total = 500;
  const port = await freePort();
  const endpoint = (await createEndpoint(port)) as unknown as { id: string; secret: string; token: string };
  const receiver = new Receiver(endpoint.secret);
  t.teardown(() => receiver.close());

  let mark = Date.now();
  await enqueuePings(endpoint.id, endpoint.token, total);
  t.comment(`enqueued ${total} pings in ${Date.now() - mark} ms`);
  t.same(await deliveryStatuses(endpoint.id), { pending: total }, 'all deliveries queued');

  const started = Date.now();
  const first = startWorker('A');
  // Down: nothing listens on the port (connection refused) until every delivery has failed so at least once.
  const downMs = await waitFor('every delivery to fail while the receiver is down', async () => (await attemptedDeliveries(endpoint.id, 'null')) >= total, 60_000, 200);
  t.comment(`down phase: every delivery refused at least once after ${downMs} ms (worker start included)`);
  // 5xx until every delivery has had a 503.
  receiver.mode = 'unavailable';
  await receiver.listen(port);
  const unavailableMs = await waitFor('every delivery to get a 503', async () => (await attemptedDeliveries(endpoint.id, 503)) >= total, 60_000, 200);
  t.comment(`503 phase: every delivery answered 503 at least once after ${unavailableMs} ms (${receiver.unavailableAnswers} answers)`);
  // Then 200, slowly enough that deliveries are in flight when the worker dies.
  receiver.delayMs = () => 30;
  receiver.mode = 'ok';
  await waitFor('150 deliveries answered 200', () => receiver.uniqueOk >= 150, 60_000, 5);
  const inFlightAtKill = receiver.inProgress.size;
  await killWorker(first, 'SIGKILL');
  const killedAt = Date.now();
  // What the dead worker had claimed and never finished: these come back only when their lease ends.
  const orphaned = (await deliveryStatuses(endpoint.id)).delivering ?? 0;
  t.comment(
    `SIGKILL after ${killedAt - started} ms: ${receiver.uniqueOk} answered 200, ${inFlightAtKill} requests in progress at the receiver, ${orphaned} deliveries left claimed (delivering)`,
  );
  t.ok(orphaned > 0, 'the kill left deliveries in flight (the test exercises the lease)');
  t.ok(orphaned <= concurrency, `no more claimed than the concurrency (${orphaned} <= ${concurrency})`);

  startWorker('B');
  const allUniqueMs = await waitFor(`${total} unique webhook-ids answered 200`, () => receiver.uniqueOk >= total, 200_000, 100);
  t.comment(`all ${total} unique ids arrived ${allUniqueMs} ms after the kill (${Date.now() - started} ms in all)`);
  // Deliveries the killed worker had claimed (answered or not) come back only when their lease ends.
  const settledMs = await waitFor(
    'every delivery succeeded',
    async () => {
      const statuses = await deliveryStatuses(endpoint.id);
      return statuses.succeeded === total;
    },
    200_000,
    250,
  );
  t.comment(`every delivery marked succeeded ${Date.now() - killedAt} ms after the kill (${settledMs} ms after all ids arrived)`);
  await sleep(1000); // anything still being sent shows up as a duplicate

  t.equal(receiver.badSignatures, 0, 'every request verifies with the standardwebhooks package');
  t.equal(receiver.uniqueOk, total, 'every event arrived');
  t.ok(
    receiver.duplicatesOk <= orphaned,
    `duplicates (${receiver.duplicatesOk}) no more than were in flight at the kill (${orphaned} claimed; concurrency ${concurrency})`,
  );
  const receivedTwice = [...receiver.received.values()].filter((n) => n > 1).length;
  t.comment(`duplicates answered 200: ${receiver.duplicatesOk}; ids received more than once (any answer): ${receivedTwice}`);
  t.same(await deliveryStatuses(endpoint.id), { succeeded: total }, 'none dead, none left pending');
  await Promise.all([...workers].map((child) => killWorker(child, 'SIGTERM')));
});

t.test('two worker processes against one database: 1,000 events, none twice, none missing', async (t) => {
  const total = 1000;
  const receiverPort = await freePort();
  const endpoint = (await createEndpoint(receiverPort)) as unknown as { id: string; secret: string; token: string };
  const receiver = new Receiver(endpoint.secret);
  receiver.delayMs = () => 100 + Math.floor(Math.random() * 50); // long enough that both workers have many in flight
  await receiver.listen(receiverPort);
  t.teardown(() => receiver.close());

  let mark = Date.now();
  await enqueuePings(endpoint.id, endpoint.token, total);
  t.comment(`enqueued ${total} pings in ${Date.now() - mark} ms`);

  mark = Date.now();
  startWorker('C');
  startWorker('D');
  const ms = await waitFor(`${total} unique webhook-ids`, () => receiver.uniqueOk >= total, 180_000, 100);
  t.comment(`${total} unique ids delivered by two workers in ${ms} ms (max ${receiver.maxInProgress} in progress at once)`);
  await waitFor('every delivery succeeded', async () => (await deliveryStatuses(endpoint.id)).succeeded === total, 30_000, 250);
  await sleep(1000);

  t.equal(receiver.badSignatures, 0, 'every request verifies with the standardwebhooks package');
  t.equal(receiver.overlaps, 0, `no event sent twice at once${receiver.overlaps ? ` (${[...receiver.overlapIds].slice(0, 5).join(', ')})` : ''}`);
  t.equal(receiver.uniqueOk, total, 'none missing');
  const twice = [...receiver.received.entries()].filter(([, n]) => n !== 1);
  t.equal(twice.length, 0, `each id received exactly once${twice.length ? ` (e.g. ${twice.slice(0, 5).map(([id, n]) => `${id}×${n}`).join(', ')})` : ''}`);
  t.ok(receiver.maxInProgress > concurrency, `both workers were sending at once (max ${receiver.maxInProgress} in progress > ${concurrency})`);
  t.same(await deliveryStatuses(endpoint.id), { succeeded: total }, 'every delivery succeeded');
  await Promise.all([...workers].map((child) => killWorker(child, 'SIGTERM')));
});
