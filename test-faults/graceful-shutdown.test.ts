// Hardening item 13, graceful shutdown: SIGTERM with requests in flight. Every request in flight
// completes with its normal answer, new ones are refused cleanly (connection refused or 503, never
// a reset), the webhook worker stops claiming and leaves no lease behind, the process exits 0, and
// a new process delivers everything still pending (none stuck behind a lease).
// The service is a child process (ROLE=all) running the esbuild output of src as `npm start`
// does, built into a temp folder; its database is one of its own on the shared server; webhooks go
// to a slow receiver on loopback so that deliveries are in flight when the signal comes.
// Run: npx tap test-faults/graceful-shutdown.test.ts --disable-coverage --timeout 600
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import t from 'tap';

process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
// helper.ts reads TEST_DATABASE_URL when it is loaded, so it is imported after the line above.
const { createOffice, createPractice, createTestDatabase } = await import('../test/helper.js');
const { recordFigure } = await import('../test/hardening/figures.js');
const { buildService, HttpApp, serviceEnv, sleep, startServiceProcess, stopAllServices, waitFor } = await import('./service-process.js');
type Json = Record<string, any>;

const receiverDelayMs = 1000; // each delivery is in flight this long
const pings = 80; // deliveries queued before the signal, more than one worker round
const lockedRequests = 3;
const createsInFlight = 8;
const releaseAfterMs = 2000; // the row locks holding requests in flight go this long after SIGTERM
const leaseSeconds = 120; // far beyond the test: a lease left behind would show as a stuck delivery
const claimSlackMs = 250; // a claim already under way when the signal came may still start sending

interface Outcome {
  kind: 'answered' | 'refused' | 'reset';
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
  error?: string;
  answeredAt: number;
}

/** One request on a connection of its own (no keep-alive pool), so each shows what the server did to it. */
function freshRequest(port: number, method: string, path: string, token?: string, payload?: Json, agent: Agent | false = false): Promise<Outcome> {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  return new Promise((resolve) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ kind: 'answered', status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString(), answeredAt: Date.now() }),
        );
        response.on('error', (error) => resolve({ kind: 'reset', error: error.message, answeredAt: Date.now() }));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ kind: error.code === 'ECONNREFUSED' ? 'refused' : 'reset', error: `${error.code ?? ''} ${error.message}`, answeredAt: Date.now() }),
    );
    request.end(body);
  });
}

// ---- database, build, receiver ----
const database = await createTestDatabase();
const side = postgres(database.url, { max: 3, onnotice: () => {} });
const serviceBuild = await buildService('graceful-shutdown');
t.teardown(async () => {
  await stopAllServices();
  await receiver.close();
  await side.end({ timeout: 1 }).catch(() => {});
  await database.drop();
  serviceBuild.remove();
});

class Receiver {
  server: Server | undefined;
  port = 0;
  /** Per webhook-id: when each request for it arrived, and how many were answered 200. */
  readonly started = new Map<string, number[]>();
  readonly answered = new Map<string, number>();
  inProgress = 0;

  async listen(): Promise<void> {
    const server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
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

  startsAfter(at: number): number {
    let n = 0;
    for (const times of this.started.values()) n += times.filter((time) => time > at).length;
    return n;
  }

  get duplicates(): number {
    let n = 0;
    for (const count of this.answered.values()) n += Math.max(0, count - 1);
    return n;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    for await (const _chunk of request) {
      // drained; the content is not what is tested here
    }
    const id = String(request.headers['webhook-id']);
    this.started.set(id, [...(this.started.get(id) ?? []), Date.now()]);
    this.inProgress++;
    try {
      await sleep(receiverDelayMs);
      if (request.socket.destroyed) return;
      this.answered.set(id, (this.answered.get(id) ?? 0) + 1);
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } finally {
      this.inProgress--;
    }
  }
}
const receiver = new Receiver();
await receiver.listen();

// ---- the service ----
function startService(name: string) {
  return startServiceProcess(
    serviceBuild.folder,
    name,
    serviceEnv(database.url, {
      ROLE: 'all',
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WEBHOOK_RETRY_SCHEDULE: '0,1,1,1,1,1,1,1,1,1',
      WEBHOOK_POLL_MS: '100',
      WEBHOOK_TIMEOUT_MS: '5000',
      WEBHOOK_LEASE_SECONDS: String(leaseSeconds),
      // Room for the requests held in flight besides the worker and the probe.
      DATABASE_POOL_SIZE: '20',
    }),
  );
}

const setupStarted = Date.now();
const first = await startService('A');
const api = new HttpApp(`http://127.0.0.1:${first.port}`);
const networkAdmin = await api.loginAsAdmin();
const office = await createOffice(api, networkAdmin);
const practice = await createPractice(api, networkAdmin);
const endpoint = await api.create('/v1/webhook-endpoints', office.admin.token, {
  url: `http://127.0.0.1:${receiver.port}/hooks`,
  eventTypes: ['referral.sent', 'referral.amended'],
  description: 'graceful shutdown receiver',
});
const referralBody: Json = {
  patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' },
  diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
  reason: 'Chronic low back pain',
  techniques: ['trigger_point'],
  bodyRegions: ['lower_back'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  therapistId: practice.therapist.id,
  send: true,
};
const locked: Json[] = [];
for (let i = 0; i < lockedRequests; i++) locked.push(await api.create('/v1/referrals', office.physician.token, referralBody));
t.comment(`set up in ${Date.now() - setupStarted} ms (build, service start, fixtures)`);

async function deliveryStatuses(): Promise<Record<string, number>> {
  const rows = await side<{ status: string; n: number }[]>`select status, count(*)::int as n from webhook_deliveries group by status`;
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

t.test('SIGTERM with requests and deliveries in flight', async (t) => {
  // A backlog of deliveries: more than the worker sends in one round, each held a second.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < pings) {
        next++;
        const response = await api.request({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/test`, token: office.admin.token });
        if ((response as unknown as { statusCode: number }).statusCode !== 202) throw new Error(`ping failed: ${JSON.stringify(response)}`);
      }
    }),
  );
  await waitFor('deliveries in flight at the receiver', () => receiver.inProgress > 0, 20_000);

  // Requests in flight, each held inside the database until after the signal: amendments on row
  // locks, and creates on a lock of the patients table (they register their patient first).
  const holder = await side.reserve();
  await holder`begin`;
  await holder`select id from referrals where id = any(${locked.map((referral) => referral.id)}::uuid[]) for update`;
  await holder`lock table patients in exclusive mode`;
  // The first on a keep-alive connection, as real clients send them: the answer must close it,
  // or the open connection holds the shutdown until the grace period kills the process.
  const keepAlive = new Agent({ keepAlive: true });
  const amendments = locked.map((referral, index) =>
    freshRequest(first.port, 'PATCH', `/v1/referrals/${referral.id}`, office.physician.token, { visitsAuthorized: referral.visitsAuthorized + 1 }, index === 0 ? keepAlive : false),
  );
  const creates = Array.from({ length: createsInFlight }, () => freshRequest(first.port, 'POST', '/v1/referrals', office.physician.token, referralBody));
  await waitFor(
    'the requests to wait on the locks',
    async () => {
      const [row] = await side<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name = 'massage-referral-network' and wait_event_type = 'Lock'`;
      return row!.n >= lockedRequests + createsInFlight;
    },
    15_000,
    20,
  );

  const pendingAtSignal = (await deliveryStatuses()).pending ?? 0;
  const inFlightAtSignal = receiver.inProgress;
  // A client's keep-alive connection, idle at the signal: its next request must be refused in the
  // API's shape, not reset.
  const idleKeepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  await freshRequest(first.port, 'GET', '/v1/me', office.physician.token, undefined, idleKeepAlive);
  const signalledAt = Date.now();
  first.child.kill('SIGTERM');
  // Sent once the service has stopped listening, which it does as it starts closing.
  const onIdleConnection = (async () => {
    while ((await freshRequest(first.port, 'GET', '/health/live')).kind !== 'refused') await sleep(5);
    return freshRequest(first.port, 'GET', '/v1/me', office.physician.token, undefined, idleKeepAlive);
  })();

  // New requests after the signal, each on a connection of its own, until the process is gone.
  const probes: Outcome[] = [];
  let exited = false;
  const exit = first.exit.then((exit) => ((exited = true), exit));
  const probing = (async () => {
    await sleep(200);
    while (!exited) {
      probes.push(await freshRequest(first.port, 'GET', '/v1/me', office.physician.token));
      await sleep(100);
    }
  })();

  await sleep(releaseAfterMs);
  await holder`rollback`;
  holder.release();

  const amended = await Promise.all(amendments);
  const created = await Promise.all(creates);
  const { code, signal, at: exitedAt } = await exit;
  await probing;
  const claimedAfter = receiver.startsAfter(signalledAt + claimSlackMs);
  const statusesAfterExit = await deliveryStatuses();
  const [leases] = await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where status = 'delivering' or lease_expires_at is not null`;
  const output = first.output();
  t.comment(
    `SIGTERM with ${lockedRequests} amendments and ${createsInFlight} creates held on locks, ` +
      `${inFlightAtSignal} deliveries at the receiver and ${pendingAtSignal} pending; exited ${exitedAt - signalledAt} ms after the signal ` +
      `(locks released after ${releaseAfterMs} ms); deliveries after exit: ${JSON.stringify(statusesAfterExit)}`,
  );

  const completed = [...amended, ...created];
  const normal = (outcome: Outcome, status: number) => outcome.kind === 'answered' && outcome.status === status && (() => {
    try {
      return typeof JSON.parse(outcome.body!).id === 'string';
    } catch {
      return false;
    }
  })();
  t.ok(
    amended.every((outcome) => normal(outcome, 200)),
    `every amendment in flight completed with 200 and the referral${amended.every((o) => normal(o, 200)) ? '' : `: ${amended.map((o) => `${o.kind} ${o.status ?? o.error} ${o.body?.slice(0, 160) ?? ''}`).join(' | ')}`}`,
  );
  t.ok(completed.every((outcome) => outcome.answeredAt >= signalledAt + releaseAfterMs), 'answered after their locks went, so they were in flight through the signal');
  t.ok(
    created.every((outcome) => normal(outcome, 201)),
    `every create in flight completed with 201 and the referral${created.every((o) => normal(o, 201)) ? '' : `: ${created.map((o) => `${o.kind} ${o.status ?? o.error}`).join(', ')}`}`,
  );
  const [versions] = await side<{ n: number }[]>`
    select count(*)::int as n from referrals where id = any(${locked.map((referral) => referral.id)}::uuid[]) and version = 2`;
  t.equal(versions!.n, lockedRequests, 'the amendments are in the database');

  const byKind = (kind: Outcome['kind']) => probes.filter((probe) => probe.kind === kind).length;
  const refusedCleanly = probes.filter((probe) => probe.kind === 'refused' || (probe.kind === 'answered' && probe.status === 503));
  t.ok(probes.length > 0, `new requests were tried while the service shut down (${probes.length})`);
  const idleRefusal = await onIdleConnection;
  idleKeepAlive.destroy();
  t.ok(
    idleRefusal.kind === 'answered' && idleRefusal.status === 503 && idleRefusal.headers!.connection === 'close',
    `a request on a keep-alive connection open at the signal is answered 503 with Connection: close (${idleRefusal.kind} ${idleRefusal.status ?? idleRefusal.error})`,
  );
  const closing503 = [...probes, idleRefusal].filter((probe) => probe.kind === 'answered' && probe.status === 503);
  t.ok(
    closing503.length > 0 &&
    closing503.every((probe) => /^application\/problem\+json/.test(String(probe.headers!['content-type'])) && probe.headers!['retry-after']),
    `each 503 is problem+json with Retry-After, as every error of the API${closing503.length ? ` (got ${closing503[0]!.headers!['content-type']}: ${closing503[0]!.body})` : ''}`,
  );
  t.equal(
    refusedCleanly.length,
    probes.length,
    `each refused cleanly: ${byKind('refused')} × connection refused, ${probes.filter((p) => p.kind === 'answered' && p.status === 503).length} × 503, ` +
      `${probes.filter((p) => p.kind === 'answered' && p.status !== 503).length} × served, ${byKind('reset')} × reset` +
      `${probes.some((p) => p.kind === 'reset') ? ` (${probes.find((p) => p.kind === 'reset')!.error})` : ''}`,
  );

  t.equal(amended[0]!.headers?.connection, 'close', 'the answer on a keep-alive connection in flight closes it (Connection: close)');
  keepAlive.destroy();
  t.equal(code, 0, `exit code 0 (got ${code}, signal ${signal})${code === 0 ? '' : `:\n${output.slice(-3000)}`}`);
  t.equal(claimedAfter, 0, `the worker claimed nothing after the signal (${claimedAfter} deliveries started at the receiver more than ${claimSlackMs} ms after it)`);
  t.equal(leases!.n, 0, 'no delivery left claimed (no lease held by the stopped process)');
  t.notMatch(output, /"level":50/, 'no error logged while shutting down');

  // Whatever was delivered before the exit is recorded as such: a new process sends only the rest.
  const answeredBeforeExit = receiver.answered.size;
  const [succeededBefore] = await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where status = 'succeeded'`;
  t.equal(succeededBefore!.n, answeredBeforeExit, `every delivery answered before the exit is recorded as succeeded (${succeededBefore!.n} of ${answeredBeforeExit})`);

  const restartedAt = Date.now();
  const second = await startService('B');
  const [total] = await side<{ n: number }[]>`select count(*)::int as n from webhook_deliveries`;
  const drainMs = await waitFor(
    'every delivery to succeed',
    async () => {
      const statuses = await deliveryStatuses();
      return statuses.succeeded === total!.n;
    },
    30_000,
    200,
  );
  const restartToDoneMs = Date.now() - restartedAt;
  t.comment(`a new process delivered the remaining ${total!.n - succeededBefore!.n} of ${total!.n} in ${drainMs} ms after it was ready (${restartToDoneMs} ms after the restart began)`);
  t.same(await deliveryStatuses(), { succeeded: total!.n }, `none stuck: all ${total!.n} deliveries succeeded, well within the ${leaseSeconds} s lease`);
  t.equal(receiver.answered.size, total!.n, 'every event arrived');
  t.equal(receiver.duplicates, 0, 'none twice');

  // The second process shuts down as cleanly when idle.
  second.child.kill('SIGTERM');
  const secondExit = await second.exit;
  t.equal(secondExit.code, 0, 'the new process exits 0 on SIGTERM too');

  const pass =
    amended.every((outcome) => normal(outcome, 200)) &&
    created.every((outcome) => normal(outcome, 201)) &&
    probes.length > 0 &&
    refusedCleanly.length === probes.length &&
    code === 0 &&
    claimedAfter === 0 &&
    leases!.n === 0 &&
    succeededBefore!.n === answeredBeforeExit &&
    receiver.answered.size === total!.n &&
    receiver.duplicates === 0;
  recordFigure({
    item: 13,
    check: 'Graceful shutdown',
    figure:
      `SIGTERM with ${completed.filter((outcome) => outcome.answeredAt > signalledAt).length} requests and ${inFlightAtSignal} webhook deliveries in flight: ` +
      `${completed.filter((outcome) => normal(outcome, outcome.status === 201 ? 201 : 200)).length} of ${completed.length} requests completed normally; ` +
      `${refusedCleanly.length} of ${probes.length} new requests refused cleanly (${byKind('refused')} connection refused, ${byKind('reset')} reset); ` +
      `exit code ${code} after ${exitedAt - signalledAt} ms; ${leases!.n} leases left; ` +
      `${claimedAfter} deliveries started after the signal; ` +
      `a new process delivered the remaining ${total!.n - succeededBefore!.n} in ${drainMs} ms, ${receiver.duplicates} duplicates, 0 stuck`,
    pass,
  });
});
