// Webhooks for partner EHRs (SPEC §8, issue 4): endpoint management by organization admins, the
// signing secret and its rotation, the ping, the outbox of the referral workflow (every event type,
// only to subscribed endpoints of the organizations taking part, thin payloads, in order, nothing
// for a rolled-back change), access checked again at delivery time, the delivery log with resend
// and range recovery, and the SSRF guard at registration and at connect time.
//
// Every delivery is verified with the standardwebhooks package, the specification's reference
// library. Receivers are node:http servers on 127.0.0.1; DNS answers come from an injected
// resolver, and an address the guard must refuse is only ever handed to the worker after the
// guard's own lookup has been seen to refuse it, so no test sends a packet anywhere but loopback.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { eq, sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { referrals as referralsTable } from '../src/db/schema.js';
import { guardedLookup, type Resolver } from '../src/modules/webhooks/target-guard.js';
import {
  auditEvents,
  createOffice,
  createPractice,
  createTestDatabase,
  pgliteTemplate,
  testConfig,
  testDatabaseServer,
  TestApp,
  type Json,
  type OfficeFixture,
  type PracticeFixture,
} from './helper.js';

type Response = Awaited<ReturnType<TestApp['request']>>;
type Person = { id: string; email: string; token: string };

const dayMs = 86_400_000;
const isoTimestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isoDate = (offsetDays: number) => new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);
const today = isoDate(0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => randomBytes(3).toString('hex');

/** The event types of SPEC §8 a partner subscribes to. */
const specEventTypes = [
  'referral.sent',
  'referral.accepted',
  'referral.declined',
  'referral.cancelled',
  'referral.amended',
  'referral.expired',
  'referral.completed',
  'progress_report.created',
  'message.created',
] as const;
const blockedAnswerMessage = 'the organization no longer takes part in this referral';

// ---------------------------------------------------------------------------------------------
// The apps: built like buildTestApp (a database of their own), but with ROLE=api so that the
// worker only runs when a test calls runOnce, and with the injected DNS resolver.

interface FakeDns {
  answers: Map<string, { address: string; family: number }[]>;
  calls: string[];
  resolve: Resolver;
}

/** Answers only the names a test sets; anything else is ENOTFOUND, never a real lookup. */
function fakeDns(): FakeDns {
  const dns: FakeDns = {
    answers: new Map(),
    calls: [],
    resolve: async (hostname) => {
      dns.calls.push(hostname);
      const answer = dns.answers.get(hostname);
      if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      return answer;
    },
  };
  return dns;
}

async function buildWebhookApp(env: Record<string, string>, resolver: Resolver): Promise<TestApp> {
  const database = testDatabaseServer ? await createTestDatabase() : undefined;
  const template = database ? undefined : await pgliteTemplate();
  const config = testConfig({
    ...(database ? { DATABASE_URL: database.url } : { DATA_DIR: 'memory://' }),
    ROLE: 'api',
    ...env,
  });
  const app = await buildApp({ config, pgliteTemplate: template, webhookResolver: resolver });
  t.teardown(async () => {
    await app.close();
    await database?.drop();
  });
  return new TestApp(app, config);
}

// Private targets refused (production rules): management, validation and the SSRF guard.
const guardedDns = fakeDns();
// Loopback receivers allowed: deliveries. A failed attempt is retried once, about 30 s later.
const loopbackDns = fakeDns();
const [guarded, loopback] = await Promise.all([
  buildWebhookApp({ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false', WEBHOOK_RETRY_SCHEDULE: '0,5,60', WEBHOOK_TIMEOUT_MS: '2000' }, guardedDns.resolve),
  buildWebhookApp({ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_RETRY_SCHEDULE: '0,30', WEBHOOK_TIMEOUT_MS: '2000' }, loopbackDns.resolve),
]);

// ---------------------------------------------------------------------------------------------
// Receivers

interface Delivered {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}
interface Answer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}
interface Receiver {
  port: number;
  url: string;
  requests: Delivered[];
  connections: number;
  answer: (delivered: Delivered) => Answer;
}

/** An HTTP receiver on 127.0.0.1 that records every request and answers as told (200 by default). */
async function startReceiver(t: Test, answer: Receiver['answer'] = () => ({ status: 200, body: 'ok' })): Promise<Receiver> {
  const receiver: Receiver = { port: 0, url: '', requests: [], connections: 0, answer };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const delivered = { path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') };
      receiver.requests.push(delivered);
      const { status, body = '', headers = {} } = receiver.answer(delivered);
      response.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
    });
  });
  server.on('connection', () => {
    receiver.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}/hooks`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return receiver;
}

/** A bare TCP listener on 127.0.0.1 that only counts connections: nothing may reach it. */
async function startTcpListener(t: Test): Promise<{ port: number; connections: number }> {
  const listener = { port: 0, connections: 0 };
  const server = createTcpServer((socket) => {
    listener.connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  listener.port = (server.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return listener;
}

/** The payload, if the delivery verifies with this secret under the standardwebhooks library. */
function verify(delivered: Delivered, secret: string): Json {
  return new Webhook(secret).verify(delivered.body, delivered.headers as Record<string, string>) as Json;
}
function verifies(delivered: Delivered, secret: string): boolean {
  try {
    verify(delivered, secret);
    return true;
  } catch {
    return false;
  }
}
/** Asserts the delivery verifies with the secret and returns its payload. */
function verified(t: Test, delivered: Delivered, secret: string, what = 'the delivery'): Json {
  try {
    const payload = verify(delivered, secret);
    t.pass(`${what} verifies with standardwebhooks`);
    return payload;
  } catch (error) {
    t.fail(`${what} verifies with standardwebhooks: ${(error as Error).message}`);
    return JSON.parse(delivered.body);
  }
}
const randomSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** Runs the worker until nothing more is due; returns how many deliveries it claimed. */
async function drain(app: TestApp): Promise<number> {
  let claimed = 0;
  for (let round = 0; round < 100; round++) {
    const count = await app.app.webhookWorker.runOnce();
    if (count === 0) return claimed;
    claimed += count;
  }
  throw new Error('the worker never ran out of due deliveries');
}

// ---------------------------------------------------------------------------------------------
// API helpers

function expectStatus(t: Test, response: Response, status: number, what: string): Json {
  t.equal(response.statusCode, status, `${what}: ${status}${response.statusCode === status ? '' : ` (got ${response.statusCode}: ${response.body.slice(0, 400)})`}`);
  return response.body ? response.json() : {};
}

/** A 400 problem naming each of the fields. */
function assertInvalid(t: Test, response: Response, fields: (string | RegExp)[], what: string) {
  const body = expectStatus(t, response, 400, what);
  t.match(response.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`);
  const named: string[] = (body.errors ?? []).map((problem: Json) => problem.field);
  for (const field of fields) {
    t.ok(
      named.some((name) => (typeof field === 'string' ? name === field : field.test(name))),
      `${what}: errors[] names ${field} (got ${named.join(', ') || 'nothing'})`,
    );
  }
  return body;
}

const endpointsUrl = '/v1/webhook-endpoints';
const endpointUrl = (id: string) => `${endpointsUrl}/${id}`;

/** Registers an endpoint that must be taken; it is deleted when the test ends, so later tests' events skip it. */
async function register(t: Test, app: TestApp, token: string, payload: Json): Promise<Json> {
  const response = await app.request({ method: 'POST', url: endpointsUrl, token, payload });
  if (response.statusCode !== 201) throw new Error(`registering ${payload.url} failed: ${response.statusCode} ${response.body}`);
  const endpoint = response.json();
  t.teardown(async () => {
    await app.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token });
  });
  return endpoint;
}

async function deliveriesOf(app: TestApp, endpointId: string, token: string, query = ''): Promise<Json[]> {
  const response = await app.request({ method: 'GET', url: `${endpointUrl(endpointId)}/deliveries?limit=200${query}`, token });
  if (response.statusCode !== 200) throw new Error(`listing deliveries failed: ${response.statusCode} ${response.body}`);
  return response.json().data;
}

async function post(app: TestApp, url: string, token: string, payload?: Json): Promise<Json> {
  const response = await app.request({ method: 'POST', url, token, ...(payload ? { payload } : {}) });
  if (response.statusCode >= 300) throw new Error(`POST ${url} failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

/** Every clinical string the tests put into referrals, notes and messages: none may reach a receiver. */
const clinicalText: string[] = ['Gomez', '1978-04-02', 'Low back pain, unspecified'];
const remember = (text: string) => {
  clinicalText.push(text);
  return text;
};

async function sentReferral(app: TestApp, office: OfficeFixture, target: Json): Promise<Json> {
  return app.create('/v1/referrals', office.physician.token, {
    patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' },
    diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
    reason: remember(`Chronic lumbar paraspinal trigger points, case ${unique()}`),
    techniques: ['trigger_point'],
    bodyRegions: ['lower_back'],
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    send: true,
    ...target,
  });
}

const amend = (app: TestApp, referralId: string, office: OfficeFixture, visitsAuthorized: number) =>
  app.request({
    method: 'PATCH',
    url: `/v1/referrals/${referralId}`,
    token: office.physician.token,
    payload: { visitsAuthorized, reason: remember(`Extra visits for persistent sciatica ${unique()}`) },
  });

const visitNote = (final: boolean) => ({
  visitDate: today,
  subjective: remember(`Pain 6/10 after shifts ${unique()}`),
  objective: remember(`Taut bands in left quadratus lumborum ${unique()}`),
  assessment: remember(`Improving tolerance to pressure ${unique()}`),
  plan: remember(`Home stretching program ${unique()}`),
  painBefore: 6,
  painAfter: 3,
  techniquesApplied: ['trigger_point'],
  minutes: 60,
  final,
});

/** Audit events matching a filter, oldest first (the helper leaves the order to the database). */
async function auditTrail(app: TestApp, where: Parameters<typeof auditEvents>[1]) {
  return (await auditEvents(app, where)).sort((a, b) => a.id - b.id);
}

/**
 * The retry time was set, by an attempt made between `before` and `after`, to the schedule's step
 * with its ±10% jitter: nextAttemptAt - (time of the attempt) lies in [0.9, 1.1] × step.
 */
function assertRetryIn(t: Test, nextAttemptAt: string, before: number, after: number, stepSeconds: number, what: string) {
  const next = Date.parse(nextAttemptAt);
  const [low, high] = [stepSeconds * 900, stepSeconds * 1100];
  t.ok(next - before >= low - 5 && next - after <= high + 5, `${what} (${((next - after) / 1000).toFixed(2)}–${((next - before) / 1000).toFixed(2)} s after the attempt)`);
}

/** Sets delivery rows due now, as if their retry time had come. */
async function makeDue(app: TestApp, deliveryIds: string[]) {
  await app.app.database.rows(
    sql`update webhook_deliveries set next_attempt_at = now() - interval '1 second' where id in (${sql.join(deliveryIds.map((id) => sql`${id}::uuid`), sql`, `)})`,
  );
}

const countRows = async (app: TestApp, query: ReturnType<typeof sql>) => Number((await app.app.database.rows<{ n: number | string }>(query))[0]!.n);

/** A payload as SPEC §8 shapes it: exactly type, timestamp and a thin data. */
function assertThinPayload(t: Test, payload: Json, expected: { type: string; resource: string; id: string; referralId: string; status: string; organizations: string[]; url: string }) {
  t.same(Object.keys(payload).sort(), ['data', 'timestamp', 'type'], `${expected.type}: the payload is {type, timestamp, data}`);
  t.match(payload.timestamp, isoTimestamp, `${expected.type}: an RFC 3339 UTC timestamp`);
  t.same(
    { ...payload.data, organizations: [...(payload.data?.organizations ?? [])].sort() },
    {
      resource: expected.resource,
      id: expected.id,
      referralId: expected.referralId,
      status: expected.status,
      organizations: [...expected.organizations].sort(),
      url: expected.url,
    },
    `${expected.type}: data names the ${expected.resource}, the referral (${expected.status}) and who takes part, nothing else`,
  );
  t.equal(payload.type, expected.type);
}

// =============================================================================================
// Endpoint management (private targets refused)

// Every organization is made before any test runs: the apps close when the tests end.
const [admin, lAdmin] = await Promise.all([guarded.loginAsAdmin(), loopback.loginAsAdmin()]);
const adminId: string = (await guarded.request({ method: 'GET', url: '/v1/me', token: admin })).json().id;
const [office, practice, otherOffice, lOffice, lPractice, lSecond, lBystander, lOtherOffice] = await Promise.all([
  createOffice(guarded, admin),
  createPractice(guarded, admin),
  createOffice(guarded, admin),
  // The organizations of the delivery tests: an office, the practice its referrals go to, a second
  // practice to reroute to, a practice that takes no part, and an office that takes no part.
  createOffice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createPractice(loopback, lAdmin),
  createOffice(loopback, lAdmin),
]);

const endpointFields = (body: Json) => {
  const { secret: _secret, ...rest } = body;
  return rest;
};

t.test('endpoint management by organization admins', async (t) => {
  const readEndpoint = (id: string, token: string) => guarded.request({ method: 'GET', url: endpointUrl(id), token });
  const listEndpoints = (token: string, query = '') => guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=200${query}`, token });

  await t.test('an office admin registers an endpoint for the office: 201 with a whsec_ secret that only this answer shows', async (t) => {
    const payload = { url: 'https://ehr.riverside.example/hooks/massage', eventTypes: ['referral.accepted', 'progress_report.created'], description: 'Riverside EHR' };
    const before = Date.now();
    const response = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload });
    const body = expectStatus(t, response, 201, 'register');
    t.equal(response.headers.location, endpointUrl(body.id), 'Location names the endpoint');
    t.match(body.id, uuid);
    t.match(body.createdAt, isoTimestamp);
    t.ok(Date.parse(body.createdAt) >= before - 1000 && Date.parse(body.createdAt) <= Date.now() + 1000, 'created now');
    t.same(body, {
      id: body.id,
      organizationId: office.id,
      url: payload.url,
      description: payload.description,
      eventTypes: payload.eventTypes,
      status: 'active',
      disabledReason: null,
      failingSince: null,
      lastSuccessAt: null,
      previousSecretExpiresAt: null,
      createdAt: body.createdAt,
      updatedAt: body.updatedAt,
      secret: body.secret,
    }, 'the endpoint in full, active, of the office');
    t.match(body.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/, 'the secret is whsec_ + base64');
    t.equal(Buffer.from(body.secret.slice('whsec_'.length), 'base64').length, 32, 'a 256-bit key');
    t.doesNotThrow(() => new Webhook(body.secret), 'standardwebhooks takes the secret');

    const read = await readEndpoint(body.id, office.admin.token);
    const shown = expectStatus(t, read, 200, 'read it back');
    t.same(shown, endpointFields(body), 'the same endpoint, without the secret');
    t.notOk(read.body.includes(body.secret.slice(6)), 'the secret appears nowhere in a read');
    const listed = await listEndpoints(office.admin.token);
    t.same(expectStatus(t, listed, 200, 'list').data.find((endpoint: Json) => endpoint.id === body.id), endpointFields(body), 'listed without the secret');
    t.notOk(listed.body.includes(body.secret.slice(6)), 'the secret appears nowhere in a listing');

    const audit = await auditTrail(guarded, { action: 'webhook_endpoint.create', resourceId: body.id });
    t.same(
      audit.map((event) => [event.actorId, event.outcome, event.httpStatus, event.resourceType]),
      [[office.admin.id, 'success', 201, 'webhook_endpoint']],
      'the registration is audited',
    );
    t.notOk(JSON.stringify(audit).includes(body.secret.slice(6)), 'the audit event does not hold the secret');
  });

  await t.test('a practice admin registers one for the practice', async (t) => {
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://ehr.harbor.example/webhooks', eventTypes: ['referral.sent'] },
    });
    const body = expectStatus(t, response, 201, 'register');
    t.match(body, { organizationId: practice.id, url: 'https://ehr.harbor.example/webhooks', eventTypes: ['referral.sent'], description: '', status: 'active' });
    t.match(body.secret, /^whsec_/);
  });

  await t.test('a network admin registers one for the organization it names, and must name one', async (t) => {
    const payload = { url: 'https://ehr.network.example/hooks', eventTypes: ['referral.sent', 'referral.expired'], organizationId: otherOffice.id };
    const body = expectStatus(t, await guarded.request({ method: 'POST', url: endpointsUrl, token: admin, payload }), 201, 'register for another office');
    t.match(body, { organizationId: otherOffice.id, url: payload.url, eventTypes: payload.eventTypes });
    t.match(body.secret, /^whsec_/);
    t.same(expectStatus(t, await readEndpoint(body.id, otherOffice.admin.token), 200, "the office's own admin reads it"), endpointFields(body));

    const unnamed = await guarded.request({ method: 'POST', url: endpointsUrl, token: admin, payload: { url: payload.url, eventTypes: payload.eventTypes } });
    assertInvalid(t, unnamed, ['organizationId'], 'without organizationId');
  });

  await t.test('listings: each admin sees only the own organization\'s endpoints; the network admin any organization\'s', async (t) => {
    const own = async (token: string) => (expectStatus(t, await listEndpoints(token), 200, 'list').data as Json[]).map((endpoint) => endpoint.organizationId);
    const officeSees = await own(office.admin.token);
    t.ok(officeSees.length >= 1 && officeSees.every((id) => id === office.id), 'the office admin: only the office\'s');
    const practiceSees = await own(practice.admin.token);
    t.ok(practiceSees.length >= 1 && practiceSees.every((id) => id === practice.id), 'the practice admin: only the practice\'s');
    const otherSees = await own(otherOffice.admin.token);
    t.ok(otherSees.length >= 1 && otherSees.every((id) => id === otherOffice.id), 'the other office\'s admin: only its own');

    const all = expectStatus(t, await listEndpoints(admin), 200, 'the network admin lists all').data as Json[];
    t.same(new Set(all.map((endpoint) => endpoint.organizationId)), new Set([office.id, practice.id, otherOffice.id]), 'all three organizations');
    t.notOk(all.some((endpoint) => 'secret' in endpoint), 'no secret in the listing');
    const one = expectStatus(t, await listEndpoints(admin, `&organizationId=${practice.id}`), 200, 'one organization').data as Json[];
    t.ok(one.length >= 1 && one.every((endpoint) => endpoint.organizationId === practice.id), 'filtered by organizationId');

    const page = expectStatus(t, await guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=1`, token: admin }), 200, 'a page of one');
    t.equal(page.data.length, 1);
    t.type(page.nextCursor, 'string', 'with a cursor to the next page');
    const next = expectStatus(t, await guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=200&cursor=${encodeURIComponent(page.nextCursor)}`, token: admin }), 200, 'the next page');
    t.same([page.data[0].id, ...next.data.map((endpoint: Json) => endpoint.id)], all.map((endpoint) => endpoint.id), 'the pages together are the whole list, in order');
  });

  await t.test('validation: a URL that is not https, and event types that are empty, unknown or ping, are 400s naming the field', async (t) => {
    const token = office.admin.token;
    const valid = { url: 'https://ehr.riverside.example/hooks', eventTypes: ['referral.sent'] };
    const count = () => countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const before = await count();
    const cases: [string, Json, (string | RegExp)[]][] = [
      ['an http URL', { ...valid, url: 'http://ehr.riverside.example/hooks' }, ['url']],
      ['a relative URL', { ...valid, url: '/hooks' }, ['url']],
      ['a URL with credentials', { ...valid, url: 'https://user:pass@ehr.riverside.example/hooks' }, ['url']],
      ['an ftp URL', { ...valid, url: 'ftp://ehr.riverside.example/hooks' }, ['url']],
      ['no event types', { ...valid, eventTypes: [] }, ['eventTypes']],
      ['an unknown event type', { ...valid, eventTypes: ['referral.exploded'] }, [/^eventTypes/]],
      ['ping, which every endpoint gets on demand', { ...valid, eventTypes: ['ping'] }, [/^eventTypes/]],
      ['the same event type twice', { ...valid, eventTypes: ['referral.sent', 'referral.sent'] }, [/^eventTypes/]],
      ['no URL', { eventTypes: ['referral.sent'] }, ['url']],
      ['a status, which the server owns', { ...valid, status: 'active' }, ['status']],
    ];
    for (const [what, payload, fields] of cases) {
      assertInvalid(t, await guarded.request({ method: 'POST', url: endpointsUrl, token, payload }), fields, what);
    }
    t.equal(await count(), before, 'nothing was registered');
  });

  await t.test('PATCH changes the URL, event types and description; disabling sets status disabled and re-enabling sets it active again', async (t) => {
    const endpoint = await register(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/v1/hooks', eventTypes: ['referral.sent'] });
    const patch = (payload: Json, token = office.admin.token) => guarded.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token, payload });

    const changed = expectStatus(t, await patch({ url: 'https://ehr.riverside.example/v2/hooks', eventTypes: ['referral.accepted', 'message.created'], description: 'v2' }), 200, 'change');
    t.same(changed, {
      ...endpointFields(endpoint),
      url: 'https://ehr.riverside.example/v2/hooks',
      eventTypes: ['referral.accepted', 'message.created'],
      description: 'v2',
      updatedAt: changed.updatedAt,
    }, 'the changes and nothing else');
    t.notOk('secret' in changed, 'no secret in the answer');
    t.ok(Date.parse(changed.updatedAt) >= Date.parse(endpoint.updatedAt), 'updatedAt moves on');
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), changed, 'as read back');

    assertInvalid(t, await patch({ url: 'http://ehr.riverside.example/hooks' }), ['url'], 'an http URL');
    assertInvalid(t, await patch({ eventTypes: [] }), ['eventTypes'], 'no event types');
    assertInvalid(t, await patch({ eventTypes: ['referral.exploded'] }), [/^eventTypes/], 'an unknown event type');
    assertInvalid(t, await patch({ status: 'deleted' }), ['status'], 'an unknown status');
    expectStatus(t, await patch({}), 400, 'an empty change');
    assertInvalid(t, await patch({ secret: randomSecret() }), ['secret'], 'a secret, which the server makes');

    const disabled = expectStatus(t, await patch({ status: 'disabled' }), 200, 'disable');
    t.match(disabled, { status: 'disabled', disabledReason: String }, 'disabled, with a reason');
    const enabled = expectStatus(t, await patch({ status: 'active' }), 200, 're-enable');
    t.match(enabled, { status: 'active', disabledReason: null, failingSince: null }, 'active again, the reason cleared');
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), enabled);

    const byNetworkAdmin = expectStatus(t, await patch({ description: 'set by the network admin' }, admin), 200, 'the network admin changes it');
    t.equal(byNetworkAdmin.description, 'set by the network admin');
    t.same(
      (await auditTrail(guarded, { action: 'webhook_endpoint.update', resourceId: endpoint.id, outcome: 'success' })).map((event) => event.actorId),
      [office.admin.id, office.admin.id, office.admin.id, adminId],
      'every accepted change is audited',
    );
  });

  await t.test('DELETE answers 204; then the endpoint is gone: 404 to read, change, rotate, ping or delete it, and not listed', async (t) => {
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://ehr.harbor.example/old', eventTypes: ['referral.sent'] },
    });
    const endpoint = expectStatus(t, response, 201, 'register');
    const removed = await guarded.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token: practice.admin.token });
    t.equal(removed.statusCode, 204, 'deleted: 204');
    t.equal(removed.body, '', 'with no body');

    for (const [method, url, payload] of [
      ['GET', endpointUrl(endpoint.id), undefined],
      ['PATCH', endpointUrl(endpoint.id), { description: 'back?' }],
      ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined],
      ['POST', `${endpointUrl(endpoint.id)}/test`, undefined],
      ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined],
      ['DELETE', endpointUrl(endpoint.id), undefined],
    ] as const) {
      const answer = await guarded.request({ method, url, token: practice.admin.token, ...(payload ? { payload } : {}) });
      t.equal(answer.statusCode, 404, `${method} ${url.replace(endpoint.id, '{id}')}: 404`);
    }
    const listed = expectStatus(t, await listEndpoints(practice.admin.token), 200, 'list').data as Json[];
    t.notOk(listed.some((row) => row.id === endpoint.id), 'no longer listed');
    t.same(
      (await auditTrail(guarded, { action: 'webhook_endpoint.delete', resourceId: endpoint.id, outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [[practice.admin.id, 200]],
      'the deletion is audited once',
    );
  });

  await t.test('an admin of another organization gets 404 for every operation on the endpoint, each audited as denied', async (t) => {
    const endpoint = await register(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/private', eventTypes: ['referral.sent'] });
    for (const outsider of [practice.admin, otherOffice.admin]) {
      const operations = [
        ['GET', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.read'],
        ['PATCH', endpointUrl(endpoint.id), { description: 'mine now' }, 'webhook_endpoint.update'],
        ['DELETE', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.delete'],
        ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined, 'webhook_endpoint.rotate_secret'],
        ['POST', `${endpointUrl(endpoint.id)}/test`, undefined, 'webhook_endpoint.test'],
        ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined, 'webhook_delivery.list'],
        ['POST', `${endpointUrl(endpoint.id)}/recover`, { from: new Date(Date.now() - dayMs).toISOString() }, 'webhook_endpoint.recover'],
      ] as const;
      for (const [method, url, payload, action] of operations) {
        const response = await guarded.request({ method, url, token: outsider.token, ...(payload ? { payload } : {}) });
        const body = expectStatus(t, response, 404, `${method} ${url.replace(endpoint.id, '{id}')} by an outsider`);
        t.match(body, { status: 404, detail: 'Webhook endpoint not found' }, 'the not-found problem, naming nothing');
        const denied = await auditTrail(guarded, { action, resourceId: endpoint.id, actorId: outsider.id, outcome: 'denied' });
        t.same(denied.map((event) => [event.resourceType, event.httpStatus]), [['webhook_endpoint', 404]], `${action} by the outsider is audited as denied`);
      }
      const listed = expectStatus(t, await listEndpoints(outsider.token), 200, 'the outsider lists').data as Json[];
      t.notOk(listed.some((row) => row.id === endpoint.id), 'not in the outsider\'s listing');
    }
    const unchanged = expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'the owner reads it');
    t.same(unchanged, endpointFields(endpoint), 'unchanged, not deleted, not rotated');
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_events where type = 'ping'`), 0, 'no ping was queued');
  });

  await t.test('an admin of another organization cannot register an endpoint for the organization: refused and audited as denied', async (t) => {
    const before = await countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://attacker.example/hooks', eventTypes: [...specEventTypes], organizationId: office.id },
    });
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_endpoints`), before, 'nothing was registered');
    t.not(response.statusCode, 201, 'refused');
    t.ok([403, 404].includes(response.statusCode), `refused as outside the caller's scope: 403 or 404 (got ${response.statusCode}: ${response.body.slice(0, 200)})`);
    const denied = await auditTrail(guarded, { action: 'webhook_endpoint.create', actorId: practice.admin.id, outcome: 'denied' });
    t.equal(denied.length, 1, 'the denied attempt is audited (SPEC §7: every denied attempt)');
  });

  await t.test('physicians, office staff and therapists are refused by the route policy with 403, each audited as denied', async (t) => {
    const endpoint = await register(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/staff', eventTypes: ['referral.sent'] });
    const people: [string, Person][] = [
      ['a physician', office.physician],
      ['office staff', office.staff],
      ['a therapist', practice.therapist],
    ];
    for (const [who, person] of people) {
      const operations = [
        ['POST', endpointsUrl, { url: 'https://ehr.riverside.example/mine', eventTypes: ['referral.sent'] }, 'webhook_endpoint.create', undefined],
        ['GET', endpointsUrl, undefined, 'webhook_endpoint.list', undefined],
        ['GET', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.read', endpoint.id],
        ['PATCH', endpointUrl(endpoint.id), { description: 'x' }, 'webhook_endpoint.update', endpoint.id],
        ['DELETE', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.delete', endpoint.id],
        ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined, 'webhook_endpoint.rotate_secret', endpoint.id],
        ['POST', `${endpointUrl(endpoint.id)}/test`, undefined, 'webhook_endpoint.test', endpoint.id],
        ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined, 'webhook_delivery.list', endpoint.id],
      ] as const;
      for (const [method, url, payload, action, resourceId] of operations) {
        const response = await guarded.request({ method, url, token: person.token, ...(payload ? { payload } : {}) });
        expectStatus(t, response, 403, `${who}: ${method} ${url.replace(endpoint.id, '{id}')}`);
        const denied = await auditTrail(guarded, { action, actorId: person.id, outcome: 'denied', ...(resourceId ? { resourceId } : {}) });
        t.same(denied.map((event) => event.httpStatus), [403], `${who}: ${action} audited as denied`);
      }
    }
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), endpointFields(endpoint), 'the endpoint is untouched');
  });

  await t.test('SSRF at registration: http, loopback, private, link-local, unique-local, mapped and localhost targets are 400s naming url', async (t) => {
    const endpoint = await register(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/ssrf', eventTypes: ['referral.sent'] });
    const before = await countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const refused = [
      'http://ehr.riverside.example/hooks',
      'https://127.0.0.1/hooks',
      'https://127.1.2.3:8443/hooks',
      'https://10.0.0.5/hooks',
      'https://172.16.0.1/hooks',
      'https://192.168.1.10/hooks',
      'https://169.254.169.254/latest/meta-data',
      'https://0.0.0.0/hooks',
      'https://[::1]/hooks',
      'https://[fd00::1]/hooks',
      'https://[fe80::1]/hooks',
      'https://[::ffff:127.0.0.1]/hooks',
      'https://[::ffff:10.0.0.5]/hooks',
      'https://localhost/hooks',
      'https://api.localhost/hooks',
    ];
    for (const url of refused) {
      const created = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload: { url, eventTypes: ['referral.sent'] } });
      assertInvalid(t, created, ['url'], `register ${url}`);
      const changed = await guarded.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: office.admin.token, payload: { url } });
      assertInvalid(t, changed, ['url'], `change to ${url}`);
    }
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_endpoints`), before, 'nothing was registered');
    t.equal(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read').url, 'https://ehr.riverside.example/ssrf', 'the URL did not change');
    t.same(guardedDns.calls, [], 'registration refused them without resolving anything');
  });
});

// =============================================================================================
// SSRF at connect time (private targets refused): a public-looking name that resolves inside.

t.test('SSRF at connect time: a name that resolves to a non-public address is refused before connecting, and retried on schedule', async (t) => {
  const host = 'hooks.partner.example';
  const listener = await startTcpListener(t);
  const answers: [string, number][] = [
    ['127.0.0.1', 4],
    ['10.0.0.1', 4],
    ['::ffff:192.168.1.1', 6],
    ['fe80::1', 6],
  ];

  for (const [address, family] of answers) {
    await t.test(`${host} resolving to ${address}: the attempt fails naming the blocked target, without a connection`, async (t) => {
      const answer = [{ address, family }];
      // Safety first: the worker's own guard must refuse this answer before the worker is given it.
      const probe = await new Promise<{ error: (Error & { code?: string }) | null; address: unknown }>((resolve) =>
        guardedLookup(async () => answer, false)(host, { all: true }, (error, result) => resolve({ error, address: result })),
      );
      t.ok(probe.error, `the guard's lookup refuses ${address}`);
      t.equal(probe.error?.code, 'EBLOCKEDTARGET');
      if (!probe.error) return t.fail(`not handing ${address} to the worker: it would connect`);

      const url = `https://${host}:${listener.port}/webhooks`;
      const created = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload: { url, eventTypes: ['referral.sent'] } });
      const endpoint = expectStatus(t, created, 201, 'the name is accepted at registration');
      t.teardown(async () => {
        await guarded.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token: office.admin.token });
      });
      guardedDns.answers.set(host, answer);
      guardedDns.calls.length = 0;

      const ping = expectStatus(t, await guarded.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: office.admin.token }), 202, 'ping');
      const firstTry = Date.now();
      t.equal(await drain(guarded), 1, 'the worker tried the one delivery');
      const firstDone = Date.now();
      t.ok(guardedDns.calls.includes(host), 'the name was resolved when the worker connected');
      t.equal(listener.connections, 0, 'nothing connected to the loopback listener');

      const [delivery] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(delivery, { eventId: ping.eventId, eventType: 'ping', status: 'pending', attempts: 1, lastStatusCode: null }, 'pending, for a retry');
      t.match(delivery!.lastError, /EBLOCKEDTARGET/, 'the error says the target was blocked');
      t.ok(delivery!.lastError.includes(host), `the error names ${host} (${delivery!.lastError})`);
      // Issue 12: the owners learn the target was refused, never what their name resolved to inside.
      t.notOk(delivery!.lastError.includes(address), `the error does not echo the blocked address ${address} (${delivery!.lastError})`);
      t.equal(delivery!.attemptLog.length, 1, 'one attempt logged');
      t.match(delivery!.attemptLog[0], { statusCode: null, responseExcerpt: null, error: delivery!.lastError }, 'the attempt: no status, the blocked error');
      t.ok(delivery!.attemptLog[0].latencyMs < 1000, `refused at once, without waiting for a connection (${delivery!.attemptLog[0].latencyMs} ms)`);
      assertRetryIn(t, delivery!.nextAttemptAt, firstTry, firstDone, 5, 'the second attempt per the schedule: 5 s ± 10% later');
      const audited = await auditTrail(guarded, { action: 'webhook.attempt', resourceId: delivery!.id });
      t.same(audited.map((event) => [event.outcome, event.resourceType, event.actorType]), [['error', 'webhook_delivery', 'system']], 'the attempt is audited as an error');

      if (address !== '127.0.0.1') return;
      // The loopback answer goes through the whole schedule: 0, 5 s, 60 s, then dead.
      await makeDue(guarded, [delivery!.id]);
      const secondTry = Date.now();
      await drain(guarded);
      const secondDone = Date.now();
      const [second] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(second, { status: 'pending', attempts: 2 }, 'pending again after the second attempt');
      assertRetryIn(t, second!.nextAttemptAt, secondTry, secondDone, 60, 'the third attempt: 60 s ± 10% later');
      await makeDue(guarded, [delivery!.id]);
      await drain(guarded);
      const [dead] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(dead, { status: 'dead', attempts: 3, lastStatusCode: null }, 'dead after the last attempt of the schedule');
      t.equal(dead!.attemptLog.length, 3, 'three attempts logged');
      t.ok(dead!.attemptLog.every((attempt: Json) => /EBLOCKEDTARGET/.test(attempt.error) && attempt.statusCode === null), 'each refused by the guard');
      t.equal((await auditTrail(guarded, { action: 'webhook.attempt', resourceId: delivery!.id })).length, 3, 'each attempt audited');
      t.equal(listener.connections, 0, 'still no connection to the loopback listener');
      t.equal(await drain(guarded), 0, 'nothing more is tried');
    });
  }
});

// =============================================================================================
// Deliveries (loopback receivers allowed)

const payloadOf = (delivered: Delivered): Json => JSON.parse(delivered.body);

t.test('rotate-secret: a new secret; for 24 hours every delivery carries two v1 signatures, and both the old and the new secret verify it', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent'] });
  const oldSecret: string = endpoint.secret;

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'one delivery before the rotation');
  const before = receiver.requests[0]!;
  t.match(before.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/, 'one v1 signature');
  verified(t, before, oldSecret, 'the delivery before the rotation');
  t.notOk(verifies(before, randomSecret()), 'another secret does not verify it');

  const requestedAt = Date.now();
  const response = await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/rotate-secret`, token: lOffice.admin.token });
  const rotated = expectStatus(t, response, 200, 'rotate');
  const answeredAt = Date.now();
  t.match(rotated.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/, 'a new whsec_ secret');
  t.equal(Buffer.from(rotated.secret.slice(6), 'base64').length, 32);
  t.not(rotated.secret, oldSecret, 'not the old one');
  const overlapEnds = Date.parse(rotated.previousSecretExpiresAt);
  t.ok(
    overlapEnds >= requestedAt + dayMs - 1000 && overlapEnds <= answeredAt + dayMs + 1000,
    `previousSecretExpiresAt is 24 h from now (${rotated.previousSecretExpiresAt})`,
  );
  t.match(rotated.lastSuccessAt, isoTimestamp, 'the delivery before counted as a success');
  t.same(
    endpointFields(rotated),
    { ...endpointFields(endpoint), previousSecretExpiresAt: rotated.previousSecretExpiresAt, lastSuccessAt: rotated.lastSuccessAt, updatedAt: rotated.updatedAt },
    'otherwise the same endpoint',
  );
  const read = await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lOffice.admin.token });
  t.same(expectStatus(t, read, 200, 'read'), endpointFields(rotated), 'a read shows the overlap, and no secret');
  t.notOk(read.body.includes(rotated.secret.slice(6)) || read.body.includes(oldSecret.slice(6)), 'neither secret is in the read');
  t.same(
    (await auditTrail(loopback, { action: 'webhook_endpoint.rotate_secret', resourceId: endpoint.id })).map((event) => [event.actorId, event.outcome]),
    [[lOffice.admin.id, 'success']],
    'the rotation is audited',
  );

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  const ping = await post(loopback, `${endpointUrl(endpoint.id)}/test`, lOffice.admin.token);
  await drain(loopback);
  t.equal(receiver.requests.length, 3, 'a referral event and a ping during the overlap');
  for (const delivered of receiver.requests.slice(1)) {
    const what = payloadOf(delivered).type;
    const signatures = String(delivered.headers['webhook-signature']).split(' ');
    t.equal(signatures.length, 2, `${what}: two space-separated signatures`);
    t.ok(signatures.every((signature) => /^v1,[A-Za-z0-9+/]+={0,2}$/.test(signature)), `${what}: both v1`);
    verified(t, delivered, rotated.secret, `${what} with the new secret`);
    verified(t, delivered, oldSecret, `${what} with the old secret`);
    t.notOk(verifies(delivered, randomSecret()), `${what}: a third secret does not verify it`);
    // Each signature on its own: one is the new secret's, the other the old one's.
    const signers = signatures.map((signature) => {
      const alone = { ...delivered, headers: { ...delivered.headers, 'webhook-signature': signature } };
      return [verifies(alone, rotated.secret) ? 'new' : '', verifies(alone, oldSecret) ? 'old' : ''].filter(Boolean).join('+');
    });
    t.same([...signers].sort(), ['new', 'old'], `${what}: one signature by each secret`);
  }
  t.same(
    receiver.requests.slice(1).map((delivered) => payloadOf(delivered).type).sort(),
    ['ping', 'referral.sent'],
    'the ping too was signed by both',
  );
  t.ok(receiver.requests.some((delivered) => delivered.headers['webhook-id'] === ping.eventId), 'the ping arrived under its event id');

  // When the overlap is over, only the new secret signs.
  await loopback.app.database.rows(sql`update webhook_endpoints set previous_secret_expires_at = now() - interval '1 second' where id = ${endpoint.id}::uuid`);
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  const after = receiver.requests[3]!;
  t.match(after.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+={0,2}$/, 'after the overlap: one signature');
  verified(t, after, rotated.secret, 'the delivery after the overlap, with the new secret');
  t.notOk(verifies(after, oldSecret), 'the old secret no longer verifies');
});

t.test('test (ping): 202 with the event id; the worker delivers a ping signed with the secret, even to an endpoint subscribed to other events', async (t) => {
  const receiver = await startReceiver(t, () => ({ status: 204 }));
  const endpoint = await register(t, loopback, lPractice.admin.token, { url: `${receiver.url}/ping-me`, eventTypes: ['referral.completed'] });

  const response = await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lPractice.admin.token });
  const queued = expectStatus(t, response, 202, 'ping');
  t.same(Object.keys(queued), ['eventId']);
  t.match(queued.eventId, uuid);
  t.same(
    (await auditTrail(loopback, { action: 'webhook_endpoint.test', resourceId: endpoint.id })).map((event) => [event.actorId, event.outcome, event.httpStatus]),
    [[lPractice.admin.id, 'success', 202]],
    'the ping request is audited',
  );
  t.equal(receiver.requests.length, 0, 'nothing is sent until the worker runs');

  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'one delivery');
  const delivered = receiver.requests[0]!;
  t.equal(delivered.path, '/hooks/ping-me', 'to the registered URL');
  t.equal(delivered.headers['webhook-id'], queued.eventId, 'webhook-id is the event id');
  t.match(delivered.headers['content-type'], /^application\/json/);
  const timestamp = Number(delivered.headers['webhook-timestamp']);
  t.ok(Math.abs(timestamp - Date.now() / 1000) < 60, 'webhook-timestamp is now, in seconds');
  const payload = verified(t, delivered, endpoint.secret, 'the ping');
  t.same(payload, {
    type: 'ping',
    timestamp: payload.timestamp,
    data: { resource: 'webhook_endpoint', id: endpoint.id, organizations: [lPractice.id], url: endpointUrl(endpoint.id) },
  }, 'a ping naming the endpoint');
  t.match(payload.timestamp, isoTimestamp);

  const [delivery] = await deliveriesOf(loopback, endpoint.id, lPractice.admin.token);
  t.match(delivery, { eventId: queued.eventId, eventType: 'ping', referralId: null, status: 'succeeded', attempts: 1, lastStatusCode: 204, lastError: null });
  const endpointNow = expectStatus(t, await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lPractice.admin.token }), 200, 'read');
  t.match(endpointNow.lastSuccessAt, isoTimestamp, 'the endpoint records its last success');

  expectStatus(t, await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lPractice.therapist.token }), 403, 'a therapist may not ping');
  expectStatus(t, await loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: lOffice.admin.token }), 404, "another organization's admin may not ping");
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'neither queued anything');
});

t.test('the outbox: the referral workflow produces every event of SPEC §8, each delivered only to subscribed endpoints of the organizations taking part, thin and in order', async (t) => {
  const receivers: Record<string, Receiver> = {};
  const endpoints: Record<string, Json> = {};
  const subscribe = async (name: string, token: string, eventTypes: readonly string[]) => {
    receivers[name] = await startReceiver(t);
    endpoints[name] = await register(t, loopback, token, { url: `${receivers[name]!.url}/${name}`, eventTypes });
  };
  await subscribe('office', lOffice.admin.token, specEventTypes);
  await subscribe('officeMessages', lOffice.admin.token, ['message.created']);
  await subscribe('practice', lPractice.admin.token, specEventTypes);
  await subscribe('practiceAccepted', lPractice.admin.token, ['referral.accepted']);
  await subscribe('bystander', lBystander.admin.token, specEventTypes);
  await subscribe('otherOffice', lOtherOffice.admin.token, specEventTypes);
  const eventsBefore = await countRows(loopback, sql`select count(*) as n from webhook_events`);

  // What each change should announce, in order: the referral, the type, the resource and the referral's status after the change.
  const expected: { referral: string; type: string; resource: string; id: string; status: string; url: string }[] = [];
  const announce = (referral: string, type: string, status: string, resource?: { type: string; id: string; url: string }) =>
    expected.push({ referral, type, status, resource: resource?.type ?? 'referral', id: resource?.id ?? referral, url: resource?.url ?? `/v1/referrals/${referral}` });

  // One referral through its life: sent, accepted, amended, discussed, treated, completed.
  const treated = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(treated.id, 'referral.sent', 'sent');
  await post(loopback, `/v1/referrals/${treated.id}/accept`, lPractice.therapist.token, {});
  announce(treated.id, 'referral.accepted', 'accepted');
  t.equal((await amend(loopback, treated.id, lOffice, 16)).statusCode, 200, 'amended');
  announce(treated.id, 'referral.amended', 'accepted');
  const message = await post(loopback, `/v1/referrals/${treated.id}/messages`, lOffice.physician.token, { body: remember(`Any radicular symptoms after the last session? ${unique()}`) });
  announce(treated.id, 'message.created', 'accepted', { type: 'message', id: message.id, url: `/v1/referrals/${treated.id}/messages` });
  const firstNote = await post(loopback, `/v1/referrals/${treated.id}/progress-reports`, lPractice.therapist.token, visitNote(false));
  announce(treated.id, 'progress_report.created', 'in_progress', { type: 'progress_report', id: firstNote.id, url: `/v1/referrals/${treated.id}/progress-reports` });
  const finalNote = await post(loopback, `/v1/referrals/${treated.id}/progress-reports`, lPractice.therapist.token, visitNote(true));
  announce(treated.id, 'progress_report.created', 'completed', { type: 'progress_report', id: finalNote.id, url: `/v1/referrals/${treated.id}/progress-reports` });
  announce(treated.id, 'referral.completed', 'completed');

  // One declined by the practice, then cancelled by the office.
  const declined = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(declined.id, 'referral.sent', 'sent');
  await post(loopback, `/v1/referrals/${declined.id}/decline`, lPractice.therapist.token, { reason: remember(`Patient needs lymphatic drainage we do not offer ${unique()}`) });
  announce(declined.id, 'referral.declined', 'declined');
  await post(loopback, `/v1/referrals/${declined.id}/cancel`, lOffice.physician.token, { reason: remember(`Patient admitted to hospital ${unique()}`) });
  announce(declined.id, 'referral.cancelled', 'cancelled');

  // One that runs out of time.
  const expiring = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  announce(expiring.id, 'referral.sent', 'sent');
  await loopback.app.db.update(referralsTable).set({ startDate: isoDate(-40), expiresOn: isoDate(-1) }).where(eq(referralsTable.id, expiring.id));
  t.equal(await loopback.app.expireReferrals(), 1, 'the sweep expires it');
  announce(expiring.id, 'referral.expired', 'expired');

  t.equal(
    await countRows(loopback, sql`select count(*) as n from webhook_events`),
    eventsBefore + expected.length,
    `one outbox event per change (${expected.length})`,
  );
  for (const receiver of Object.values(receivers)) t.equal(receiver.requests.length, 0, 'nothing is sent before the worker runs');

  await drain(loopback);

  const participants = [lOffice.id, lPractice.id];
  const checkEndpoint = (t: Test, name: string, types: readonly string[]) => {
    const receiver = receivers[name]!;
    const wanted = expected.filter((event) => types.includes(event.type));
    t.equal(receiver.requests.length, wanted.length, `${name}: ${wanted.length} deliveries`);
    const ids = receiver.requests.map((delivered) => delivered.headers['webhook-id']);
    t.equal(new Set(ids).size, ids.length, `${name}: each event once (unique webhook-id)`);
    const payloads = receiver.requests.map((delivered, index) => verified(t, delivered, endpoints[name]!.secret, `${name} delivery ${index + 1}`));
    for (const referral of [treated.id, declined.id, expiring.id]) {
      const arrived = payloads.filter((payload) => payload.data?.referralId === referral);
      const wantedHere = wanted.filter((event) => event.referral === referral);
      t.same(arrived.map((payload) => payload.type), wantedHere.map((event) => event.type), `${name}: the referral's events arrive in the order they happened`);
      wantedHere.forEach((event, index) => {
        if (arrived[index]) assertThinPayload(t, arrived[index]!, { ...event, referralId: referral, organizations: participants });
      });
    }
    return receiver.requests;
  };

  await t.test('the office and the practice get every event, subscribed to all', async (t) => {
    const office = checkEndpoint(t, 'office', specEventTypes);
    const practice = checkEndpoint(t, 'practice', specEventTypes);
    t.same(
      office.map((delivered) => delivered.headers['webhook-id']).sort(),
      practice.map((delivered) => delivered.headers['webhook-id']).sort(),
      'the same events (same webhook-id) reach both sides',
    );
    t.same(new Set(office.map((delivered) => payloadOf(delivered).type)), new Set(specEventTypes), 'all nine event types of SPEC §8 were produced');
  });
  await t.test('an endpoint subscribed to one event type gets only that type', async (t) => {
    checkEndpoint(t, 'practiceAccepted', ['referral.accepted']);
    checkEndpoint(t, 'officeMessages', ['message.created']);
  });
  await t.test('a practice and an office that take no part in the referrals receive nothing', async (t) => {
    t.equal(receivers.bystander!.connections, 0, 'the uninvolved practice: not even a connection');
    t.equal(receivers.otherOffice!.connections, 0, 'the uninvolved office: not even a connection');
    t.same(await deliveriesOf(loopback, endpoints.bystander!.id, lBystander.admin.token), [], 'no delivery was ever queued for the practice');
    t.same(await deliveriesOf(loopback, endpoints.otherOffice!.id, lOtherOffice.admin.token), [], 'nor for the office');
  });
  await t.test('the payloads carry no clinical text: no reason, note, message or patient detail', async (t) => {
    const bodies = Object.values(receivers).flatMap((receiver) => receiver.requests.map((delivered) => delivered.body));
    t.ok(bodies.length > 0);
    for (const text of clinicalText) t.notOk(bodies.some((body) => body.includes(text)), `"${text}" appears in no delivered body`);
  });
  await t.test('every delivery succeeded, and every attempt is audited as webhook.attempt on the webhook_delivery', async (t) => {
    for (const [name, token] of [
      ['office', lOffice.admin.token],
      ['practice', lPractice.admin.token],
    ] as const) {
      const deliveries = await deliveriesOf(loopback, endpoints[name]!.id, token);
      t.equal(deliveries.length, expected.length, `${name}: ${expected.length} deliveries`);
      t.ok(deliveries.every((delivery) => delivery.status === 'succeeded' && delivery.attempts === 1 && delivery.attemptLog.length === 1), `${name}: all succeeded at the first attempt`);
      for (const delivery of deliveries) {
        const audited = await auditTrail(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
        t.same(audited.map((event) => [event.resourceType, event.outcome, event.httpStatus]), [['webhook_delivery', 'success', 200]], `${name}: ${delivery.eventType} attempt audited`);
      }
    }
  });
});

t.test('a change that rolls back sends nothing', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: specEventTypes });
  const events = () => countRows(loopback, sql`select count(*) as n from webhook_events`);
  const deliveries = () => countRows(loopback, sql`select count(*) as n from webhook_deliveries`);

  await t.test('a referral sent to a network nobody matches: 409, no outbox event, no delivery', async (t) => {
    const [eventsBefore, deliveriesBefore] = [await events(), await deliveries()];
    const referralsBefore = await countRows(loopback, sql`select count(*) as n from referrals`);
    const response = await loopback.request({
      method: 'POST',
      url: '/v1/referrals',
      token: lOffice.physician.token,
      payload: {
        patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' },
        diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
        reason: remember(`Thoracic outlet syndrome, case ${unique()}`),
        techniques: ['trigger_point'],
        bodyRegions: ['lower_back'],
        frequencyPerWeek: 1,
        durationWeeks: 4,
        sessionMinutes: 45,
        send: true,
        network: { near: { lat: -45.0, lng: 170.0 }, radiusKm: 1 },
      },
    });
    t.match(expectStatus(t, response, 409, 'create and send'), { code: 'no-matching-therapist' });
    t.equal(await countRows(loopback, sql`select count(*) as n from referrals`), referralsBefore, 'no referral');
    t.equal(await events(), eventsBefore, 'no webhook_events row');
    t.equal(await deliveries(), deliveriesBefore, 'no webhook_deliveries row');
    await drain(loopback);
    t.equal(receiver.requests.length, 0, 'nothing delivered');
  });

  await t.test('an accept whose transaction fails after the outbox write: 500, the event is gone with it, nothing delivered', async (t) => {
    const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent'], 'the send is delivered');
    // The accept writes its outbox event, then its audit event; make the audit write fail.
    await loopback.app.database.rows(
      sql.raw(`create or replace function webhook_test_fail() returns trigger language plpgsql as $$ begin raise exception 'injected failure after the outbox write'; end $$`),
    );
    await loopback.app.database.rows(
      sql.raw(`create trigger webhook_test_fail before insert on audit_events for each row when (new.action = 'referral.accept' and new.outcome = 'success') execute function webhook_test_fail()`),
    );
    let response: Response;
    try {
      response = await loopback.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: lPractice.therapist.token, payload: {} });
    } finally {
      await loopback.app.database.rows(sql.raw('drop trigger webhook_test_fail on audit_events'));
      await loopback.app.database.rows(sql.raw('drop function webhook_test_fail()'));
    }
    expectStatus(t, response, 500, 'the accept fails');
    const read = await loopback.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: lOffice.physician.token });
    t.match(expectStatus(t, read, 200, 'read'), { status: 'sent', version: 1 }, 'the referral is still sent: the change rolled back');
    t.equal(
      await countRows(loopback, sql`select count(*) as n from webhook_events where referral_id = ${referral.id}::uuid and type = 'referral.accepted'`),
      0,
      'no referral.accepted event survived',
    );
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent'], 'nothing more was delivered');

    // The same accept, now able to commit, is announced.
    await post(loopback, `/v1/referrals/${referral.id}/accept`, lPractice.therapist.token, {});
    await drain(loopback);
    t.same(receiver.requests.map((delivered) => payloadOf(delivered).type), ['referral.sent', 'referral.accepted'], 'the committed accept is delivered');
    for (const delivered of receiver.requests) verified(t, delivered, endpoint.secret);
  });
});

t.test('in order per referral: a later change waits while an earlier delivery to the same endpoint is retried; other referrals do not wait', async (t) => {
  let failing = true;
  const receiver = await startReceiver(t, () => (failing ? { status: 503, body: 'maintenance' } : { status: 200 }));
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent', 'referral.amended', 'referral.cancelled'] });

  const blocked = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'the send was tried once');
  const [firstDelivery] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(firstDelivery, { status: 'pending', attempts: 1, lastStatusCode: 503 }, 'and waits for its retry');

  failing = false;
  t.equal((await amend(loopback, blocked.id, lOffice, 20)).statusCode, 200);
  await post(loopback, `/v1/referrals/${blocked.id}/cancel`, lOffice.physician.token, { reason: remember(`Duplicate order ${unique()}`) });
  const other = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.same(
    receiver.requests.slice(1).map((delivered) => [payloadOf(delivered).type, payloadOf(delivered).data.referralId]),
    [['referral.sent', other.id]],
    "the other referral's event is delivered; the amendment and cancellation wait behind the failed send",
  );
  const waiting = (await deliveriesOf(loopback, endpoint.id, lOffice.admin.token, '&status=pending')).filter((delivery) => delivery.referralId === blocked.id);
  t.same(waiting.map((delivery) => [delivery.eventType, delivery.attempts]).reverse(), [['referral.sent', 1], ['referral.amended', 0], ['referral.cancelled', 0]], 'all three pending; the later two never tried');

  await makeDue(loopback, [firstDelivery!.id]);
  await drain(loopback);
  const arrived = receiver.requests.slice(2).map((delivered) => verified(t, delivered, endpoint.secret));
  t.same(
    arrived.map((payload) => [payload.type, payload.data.referralId, payload.data.status]),
    [
      ['referral.sent', blocked.id, 'sent'],
      ['referral.amended', blocked.id, 'sent'],
      ['referral.cancelled', blocked.id, 'cancelled'],
    ],
    'once the send succeeds, the three arrive in the order they were made',
  );
  t.equal(receiver.requests[2]!.headers['webhook-id'], receiver.requests[0]!.headers['webhook-id'], 'the retry is the same event (same webhook-id)');
});

t.test('a receiver answering 410 Gone disables the endpoint at once; its organization is told; PATCH status active re-enables it', async (t) => {
  let gone = true;
  const receiver = await startReceiver(t, () => (gone ? { status: 410, body: 'gone' } : { status: 200 }));
  const watcher = await startReceiver(t);
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent'] });
  const watching = await register(t, loopback, lOffice.admin.token, { url: watcher.url, eventTypes: ['webhook_endpoint.disabled'] });

  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'tried once');
  const [dead] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(dead, { status: 'dead', attempts: 1, lastStatusCode: 410 }, 'dead at once, no retry');
  const disabled = expectStatus(t, await loopback.request({ method: 'GET', url: endpointUrl(endpoint.id), token: lOffice.admin.token }), 200, 'read');
  t.match(disabled, { status: 'disabled', disabledReason: /410/ }, 'the endpoint is disabled, saying why');
  t.equal(watcher.requests.length, 1, "the organization's other endpoint is told");
  const notice = verified(t, watcher.requests[0]!, watching.secret, 'the notice');
  t.match(notice, { type: 'webhook_endpoint.disabled', data: { resource: 'webhook_endpoint', id: endpoint.id, status: 'disabled' } });

  gone = false;
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 1, 'a disabled endpoint gets no new event');
  t.equal((await deliveriesOf(loopback, endpoint.id, lOffice.admin.token)).length, 1, 'none is even queued');

  const enabled = expectStatus(
    t,
    await loopback.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: lOffice.admin.token, payload: { status: 'active' } }),
    200,
    're-enable',
  );
  t.match(enabled, { status: 'active', disabledReason: null, failingSince: null }, 'active again');
  await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  t.equal(receiver.requests.length, 2, 'the next event is delivered');
  t.equal(payloadOf(receiver.requests[1]!).type, 'referral.sent');
  verified(t, receiver.requests[1]!, endpoint.secret);
});

t.test("access at delivery time: a practice that lost the referral before the worker ran gets none of it; its pending deliveries end dead", async (t) => {
  const office = await startReceiver(t);
  const first = await startReceiver(t);
  const second = await startReceiver(t);
  const officeEndpoint = await register(t, loopback, lOffice.admin.token, { url: office.url, eventTypes: specEventTypes });
  const firstEndpoint = await register(t, loopback, lPractice.admin.token, { url: first.url, eventTypes: specEventTypes });
  const secondEndpoint = await register(t, loopback, lSecond.admin.token, { url: second.url, eventTypes: specEventTypes });

  const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  const declineReason = remember(`We have no therapist trained in oncology massage ${unique()}`);
  await post(loopback, `/v1/referrals/${referral.id}/decline`, lPractice.therapist.token, { reason: declineReason });
  await post(loopback, `/v1/referrals/${referral.id}/reroute`, lOffice.physician.token, { practiceId: lSecond.id, reason: remember(`Rerouted to oncology-trained practice ${unique()}`) });
  expectStatus(t, await loopback.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: lPractice.admin.token }), 404, 'the first practice can no longer see the referral');

  const queued = await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token);
  t.same(queued.map((delivery) => delivery.eventType), ['referral.declined', 'referral.sent'], 'the first practice was queued the send and the decline, made while it took part (not the reroute)');
  await drain(loopback);

  t.equal(first.requests.length, 0, 'the first practice receives nothing');
  t.equal(first.connections, 0, 'not even a connection');
  const deliveries = await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token);
  t.same(
    deliveries.map((delivery) => [delivery.eventType, delivery.status, delivery.attempts, delivery.lastStatusCode, delivery.lastError, delivery.attemptLog]),
    [
      ['referral.declined', 'dead', 1, null, blockedAnswerMessage, []],
      ['referral.sent', 'dead', 1, null, blockedAnswerMessage, []],
    ],
    'both dead, saying the organization no longer takes part, with no HTTP attempt',
  );
  for (const delivery of deliveries) {
    const audited = await auditTrail(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
    t.same(audited.map((event) => [event.resourceType, event.outcome]), [['webhook_delivery', 'error']], `the refused ${delivery.eventType} is audited`);
  }
  t.same(await deliveriesOf(loopback, firstEndpoint.id, lPractice.admin.token, '&status=pending'), [], 'nothing of it is left to send');

  t.same(
    second.requests.map((delivered) => {
      const payload = verified(t, delivered, secondEndpoint.secret, 'the new practice\'s delivery');
      return [payload.type, payload.data.status, [...payload.data.organizations].sort()];
    }),
    [['referral.sent', 'sent', [lOffice.id, lSecond.id].sort()]],
    'the new practice gets the rerouted send, naming the office and itself',
  );
  t.same(
    office.requests.map((delivered) => {
      const payload = verified(t, delivered, officeEndpoint.secret, "the office's delivery");
      return [payload.type, payload.data.status];
    }),
    [
      ['referral.sent', 'sent'],
      ['referral.declined', 'declined'],
      ['referral.sent', 'sent'],
    ],
    'the office, still taking part, gets all three in order',
  );
  t.notOk([...office.requests, ...second.requests].some((delivered) => delivered.body.includes(declineReason)), 'the decline reason is in no payload');
});

t.test('the delivery log: each delivery with its attempts, filtered by status; resend and range recovery; closed to other organizations', async (t) => {
  let failing = false;
  const receiver = await startReceiver(t, () => (failing ? { status: 500, body: 'receiver exploded' } : { status: 200, body: 'thanks' }));
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: receiver.url, eventTypes: ['referral.sent', 'referral.amended'] });
  const token = lOffice.admin.token;
  const startedAt = new Date(Date.now() - 1000).toISOString();
  const ids = (list: Json[]) => list.map((delivery) => delivery.id);

  // A success.
  const referral = await sentReferral(loopback, lOffice, { practiceId: lPractice.id });
  await drain(loopback);
  const [succeeded] = await deliveriesOf(loopback, endpoint.id, token);
  t.same(Object.keys(succeeded!).sort(), ['attemptLog', 'attempts', 'createdAt', 'endpointId', 'eventId', 'eventType', 'id', 'lastError', 'lastStatusCode', 'nextAttemptAt', 'referralId', 'status'], 'a delivery names its event, state and attempts');
  t.match(succeeded, { endpointId: endpoint.id, eventType: 'referral.sent', referralId: referral.id, status: 'succeeded', attempts: 1, lastStatusCode: 200, lastError: null });
  t.equal(succeeded!.attemptLog.length, 1);
  const attempt = succeeded!.attemptLog[0];
  t.same(Object.keys(attempt).sort(), ['attemptedAt', 'error', 'latencyMs', 'responseExcerpt', 'statusCode']);
  t.match(attempt, { statusCode: 200, error: null, responseExcerpt: 'thanks' }, 'the attempt: 200, the response excerpt');
  t.match(attempt.attemptedAt, isoTimestamp);
  t.ok(Number.isInteger(attempt.latencyMs) && attempt.latencyMs >= 0 && attempt.latencyMs < 2000, `latency in ms (${attempt.latencyMs})`);
  t.equal(succeeded!.eventId, receiver.requests[0]!.headers['webhook-id'], 'the event id is the webhook-id the receiver saw');

  // A failure, retried, then dead.
  failing = true;
  t.equal((await amend(loopback, referral.id, lOffice, 13)).statusCode, 200);
  const failedAt = Date.now();
  await drain(loopback);
  const failedDone = Date.now();
  const [retrying] = await deliveriesOf(loopback, endpoint.id, token);
  t.match(retrying, { eventType: 'referral.amended', status: 'pending', attempts: 1, lastStatusCode: 500, lastError: 'the receiver answered 500' }, 'pending after a 500');
  t.match(retrying!.attemptLog, [{ statusCode: 500, error: 'the receiver answered 500', responseExcerpt: 'receiver exploded' }], 'the attempt: 500, the error, the excerpt');
  assertRetryIn(t, retrying!.nextAttemptAt, failedAt, failedDone, 30, 'the retry is scheduled per the schedule: 30 s ± 10% later');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=pending')), [retrying!.id], 'status=pending: the failing one');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=succeeded')), [succeeded!.id], 'status=succeeded: the first');
  t.same(ids(await deliveriesOf(loopback, endpoint.id, token, '&status=dead')), [], 'status=dead: none yet');
  expectStatus(t, await loopback.request({ method: 'GET', url: `${endpointUrl(endpoint.id)}/deliveries?status=lost`, token }), 400, 'an unknown status');

  await makeDue(loopback, [retrying!.id]);
  await drain(loopback);
  const [deadOne] = await deliveriesOf(loopback, endpoint.id, token, '&status=dead');
  t.match(deadOne, { id: retrying!.id, status: 'dead', attempts: 2, lastStatusCode: 500 }, 'dead after the last scheduled attempt');
  t.equal(deadOne!.attemptLog.length, 2, 'both attempts logged, oldest first');
  t.ok(Date.parse(deadOne!.attemptLog[0].attemptedAt) <= Date.parse(deadOne!.attemptLog[1].attemptedAt));

  // Another dead one, later.
  await sleep(20);
  const between = new Date().toISOString();
  await sleep(20);
  t.equal((await amend(loopback, referral.id, lOffice, 14)).statusCode, 200);
  await drain(loopback);
  const [laterFailure] = await deliveriesOf(loopback, endpoint.id, token, '&status=pending');
  await makeDue(loopback, [laterFailure!.id]);
  await drain(loopback);
  const dead = await deliveriesOf(loopback, endpoint.id, token, '&status=dead');
  t.same(ids(dead), [laterFailure!.id, deadOne!.id], 'two dead deliveries, newest first');

  failing = false;
  await t.test('resend: 202, and a new delivery of the same event arrives with the same webhook-id and payload', async (t) => {
    const before = receiver.requests.length;
    const response = await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token });
    t.equal(response.statusCode, 202, `resend the first delivery: 202 (got ${response.statusCode}: ${response.body.slice(0, 200)})`);
    // What follows checks the resent delivery, once there is one.
    if (response.statusCode !== 202) return;
    const resent = response.json();
    t.match(resent, { queued: 1, deliveryIds: [uuid] });
    t.not(resent.deliveryIds[0], succeeded!.id, 'a new delivery');
    t.same(
      (await auditTrail(loopback, { action: 'webhook_delivery.resend', outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [[lOffice.admin.id, 202]],
      'the resend is audited',
    );
    await drain(loopback);
    t.equal(receiver.requests.length, before + 1, 'sent once more');
    const again = receiver.requests.at(-1)!;
    t.equal(again.headers['webhook-id'], receiver.requests[0]!.headers['webhook-id'], 'with the same webhook-id as the original');
    t.equal(again.body, receiver.requests[0]!.body, 'and the same payload');
    verified(t, again, endpoint.secret, 'the resent delivery');
    const all = await deliveriesOf(loopback, endpoint.id, token);
    t.match(all.find((delivery) => delivery.id === resent.deliveryIds[0]), { eventId: succeeded!.eventId, status: 'succeeded', attempts: 1 }, 'the new delivery succeeded');
    t.match(all.find((delivery) => delivery.id === succeeded!.id), { status: 'succeeded', attempts: 1 }, 'the original stays as it was');
  });

  const recover = (payload: Json, by = token) => loopback.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/recover`, token: by, payload });

  await t.test('recover {from, to}: every dead delivery created in the range is queued again and delivered under its webhook-id', async (t) => {
    const before = receiver.requests.length;
    t.same(expectStatus(t, await recover({ from: new Date(Date.now() + 3_600_000).toISOString() }), 202, 'a range in the future'), { queued: 0, deliveryIds: [] }, 'queues nothing');
    const late = expectStatus(t, await recover({ from: between, to: new Date(Date.now() + 60_000).toISOString() }), 202, 'recover the later range');
    t.match(late, { queued: 1, deliveryIds: [uuid] }, 'one dead delivery in the later range');
    const early = expectStatus(t, await recover({ from: startedAt, to: between }), 202, 'recover the earlier range');
    t.match(early, { queued: 1, deliveryIds: [uuid] }, 'one dead delivery in the earlier range');
    await drain(loopback);
    const recovered = receiver.requests.slice(before);
    t.same(
      recovered.map((delivered) => delivered.headers['webhook-id']).sort(),
      [laterFailure!.eventId, deadOne!.eventId].sort(),
      'both dead events are delivered again, under their webhook-ids',
    );
    for (const delivered of recovered) verified(t, delivered, endpoint.secret, 'a recovered delivery');
    const afterRecovery = await deliveriesOf(loopback, endpoint.id, token);
    t.same(
      [...late.deliveryIds, ...early.deliveryIds].map((id: string) => {
        const delivery = afterRecovery.find((row) => row.id === id);
        return [delivery?.eventId, delivery?.status];
      }),
      [
        [laterFailure!.eventId, 'succeeded'],
        [deadOne!.eventId, 'succeeded'],
      ],
      'the new deliveries carry the dead events and succeeded',
    );
    t.same(
      (await auditTrail(loopback, { action: 'webhook_endpoint.recover', resourceId: endpoint.id, outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [
        [lOffice.admin.id, 202],
        [lOffice.admin.id, 202],
        [lOffice.admin.id, 202],
      ],
      'each recovery is audited',
    );
  });

  await t.test('every attempt is audited as webhook.attempt on its webhook_delivery, with its outcome and status', async (t) => {
    const deliveries = await deliveriesOf(loopback, endpoint.id, token);
    t.ok(deliveries.length >= 5, `${deliveries.length} deliveries`);
    for (const delivery of deliveries) {
      const audited = await auditTrail(loopback, { action: 'webhook.attempt', resourceId: delivery.id });
      t.same(
        audited.map((event) => [event.resourceType, event.actorType, event.outcome, event.httpStatus]),
        delivery.attemptLog.map((logged: Json) => ['webhook_delivery', 'system', logged.statusCode === 200 ? 'success' : 'error', logged.statusCode]),
        `${delivery.eventType} (${delivery.status}): one audit event per attempt`,
      );
    }
  });

  await t.test("another organization's admin gets 404 for the log, resend and recovery, each audited as denied", async (t) => {
    for (const outsider of [lOtherOffice.admin, lPractice.admin]) {
      const list = await loopback.request({ method: 'GET', url: `${endpointUrl(endpoint.id)}/deliveries`, token: outsider.token });
      expectStatus(t, list, 404, 'the log');
      const resend = await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: outsider.token });
      t.match(expectStatus(t, resend, 404, 'resend'), { detail: 'Webhook delivery not found' });
      expectStatus(t, await recover({ from: startedAt }, outsider.token), 404, 'recover');
      t.same(
        (await auditTrail(loopback, { actorId: outsider.id, outcome: 'denied' }))
          .filter((event) => event.action.startsWith('webhook'))
          .map((event) => [event.action, event.resourceType, event.resourceId, event.httpStatus]),
        [
          ['webhook_delivery.list', 'webhook_endpoint', endpoint.id, 404],
          ['webhook_delivery.resend', 'webhook_delivery', succeeded!.id, 404],
          ['webhook_endpoint.recover', 'webhook_endpoint', endpoint.id, 404],
        ],
        'each refusal is audited as denied',
      );
    }
    const requestsBefore = receiver.requests.length;
    await drain(loopback);
    t.equal(receiver.requests.length, requestsBefore, 'nothing was queued by the refused calls');
    expectStatus(t, await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: lOffice.physician.token }), 403, 'a physician may not resend');
    t.equal(
      (await loopback.request({ method: 'POST', url: `/v1/webhook-deliveries/${succeeded!.id}/resend`, token: lAdmin })).statusCode,
      202,
      'the network admin may resend',
    );
    await drain(loopback);
  });
});

t.test('with WEBHOOK_ALLOW_PRIVATE_TARGETS=true a name resolving to 127.0.0.1 is delivered to the loopback receiver', async (t) => {
  const receiver = await startReceiver(t);
  const host = 'hooks.partner.example';
  loopbackDns.answers.set(host, [{ address: '127.0.0.1', family: 4 }]);
  loopbackDns.calls.length = 0;
  const endpoint = await register(t, loopback, lOffice.admin.token, { url: `http://${host}:${receiver.port}/partner`, eventTypes: ['referral.sent'] });
  const ping = await post(loopback, `${endpointUrl(endpoint.id)}/test`, lOffice.admin.token);
  await drain(loopback);
  t.ok(loopbackDns.calls.includes(host), 'the name was resolved through the injected resolver');
  t.equal(receiver.requests.length, 1, 'delivered');
  t.equal(receiver.requests[0]!.path, '/partner');
  t.equal(receiver.requests[0]!.headers.host, `${host}:${receiver.port}`, 'addressed by name');
  t.equal(receiver.requests[0]!.headers['webhook-id'], ping.eventId);
  t.match(verified(t, receiver.requests[0]!, endpoint.secret, 'the ping'), { type: 'ping' });
  const [delivery] = await deliveriesOf(loopback, endpoint.id, lOffice.admin.token);
  t.match(delivery, { status: 'succeeded', lastStatusCode: 200 });
});
