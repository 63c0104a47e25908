// Secrets shown once stay shown once (issue 12 item 4): a replay of an Idempotency-Key never shows
// an API client's or a webhook endpoint's secret again and carries no-store; no secret is kept in
// clear, neither in idempotency_records nor in webhook_endpoints (sealed with AES-256-GCM under
// DATA_ENCRYPTION_KEY); deliveries still verify with the secret shown at creation; secrets left in
// clear by an older version are sealed at start, and a key rotation re-seals them.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildApp } from '../src/app.js';
import { webhookEndpoints } from '../src/db/schema.js';
import { keyIdOf } from '../src/lib/secret-box.js';
import { addOffice } from './fixtures/network.js';
import { startReceiver as receiver, verifies, type Delivered } from './fixtures/partner-ehr.js';
import { ping } from './fixtures/webhooks.js';
import { buildTestApp, createTestDatabase, pgliteTemplate, testConfig, testDatabaseServer, testEncryptionKey, TestApp, type Json, type TestResponse as Response } from './helper.js';

const appEnv = { ROLE: 'api', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' };
const newKey = () => `key-${randomBytes(8).toString('hex')}`;
const sealedUnder = (key: Buffer | string) => new RegExp(`^v1\\.${keyIdOf(typeof key === 'string' ? Buffer.from(key, 'base64') : key)}\\.[A-Za-z0-9_-]+$`);
const secretBody = (secret: string) => secret.slice('whsec_'.length);

/** An office made by the network admin, for whom the admin registers endpoints. */
const organization = async (test: TestApp, token: string): Promise<string> => (await addOffice(test, token)).id;

/** Pings the endpoint and runs the worker once; returns what the receiver got. */
async function delivered(test: TestApp, token: string, endpointId: string, inbox: Delivered[]): Promise<Delivered> {
  const before = inbox.length;
  await ping(test, token, endpointId);
  await test.app.webhookWorker.runOnce();
  if (inbox.length !== before + 1) throw new Error(`expected one delivery, the receiver got ${inbox.length - before}`);
  return inbox[inbox.length - 1]!;
}

async function storedEndpoint(test: TestApp, id: string) {
  const [row] = await test.app.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
  return row!;
}

async function keptResponse(test: TestApp, key: string): Promise<string> {
  const rows = await test.app.database.rows<{ body: string }>(sql`select response_body as body from idempotency_records where key = ${key}`);
  if (rows.length !== 1) throw new Error(`expected one idempotency record for ${key}, found ${rows.length}`);
  return rows[0]!.body;
}

function assertReplayWithoutSecret(t: Test, first: Response, replay: Response, field: string) {
  t.equal(replay.statusCode, first.statusCode, `the same status ${first.statusCode}`);
  t.equal(replay.headers['idempotent-replayed'], 'true', 'a replay');
  const { [field]: secret, ...rest } = first.json();
  t.type(secret, 'string', `the first answer shows ${field}`);
  t.equal(first.headers['cache-control'], 'no-store', 'the first answer is no-store');
  t.notOk(field in replay.json(), `the replay has no ${field}`);
  t.notOk(replay.body.includes(secret.replace(/^whsec_/, '')), 'nor the secret anywhere in it');
  t.same(replay.json(), rest, 'otherwise the first answer');
  t.equal(replay.headers['cache-control'], 'no-store', 'the replay is no-store too');
}

t.test('on one running service', async (t) => {
  const test = await buildTestApp(t, { env: appEnv });
  const admin = await test.loginAsAdmin();
  const organizationId = await organization(test, admin);
  const inbox = await receiver(t);
  const post = (url: string, key: string, payload?: Json) =>
    test.request({ method: 'POST', url, token: admin, ...(payload ? { payload } : {}), headers: { 'idempotency-key': key } });

  t.test('POST /v1/organizations/{id}/api-clients › a replay shows no clientSecret, is no-store, and no secret is kept', async (t) => {
    const key = newKey();
    const payload = { name: 'Partner EHR', scopes: ['referrals:read'] };
    const first = await post(`/v1/organizations/${organizationId}/api-clients`, key, payload);
    t.equal(first.statusCode, 201);
    assertReplayWithoutSecret(t, first, await post(`/v1/organizations/${organizationId}/api-clients`, key, payload), 'clientSecret');
    t.notOk((await keptResponse(test, key)).includes(first.json().clientSecret), 'idempotency_records holds no clientSecret');
    const signIn = await test.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'client_credentials', client_id: first.json().clientId, client_secret: first.json().clientSecret },
    });
    t.equal(signIn.statusCode, 200, 'the secret of the first answer works');
  });

  t.test('POST /v1/webhook-endpoints › a replay shows no secret and is no-store; the secret is sealed at rest; deliveries verify with it', async (t) => {
    const key = newKey();
    const payload = { organizationId, url: inbox.url, eventTypes: ['referral.sent'], description: 'sealed' };
    const first = await post('/v1/webhook-endpoints', key, payload);
    t.equal(first.statusCode, 201);
    const { id, secret } = first.json() as { id: string; secret: string };
    assertReplayWithoutSecret(t, first, await post('/v1/webhook-endpoints', key, payload), 'secret');
    t.notOk((await keptResponse(test, key)).includes(secretBody(secret)), 'idempotency_records holds no secret');

    const row = await storedEndpoint(test, id);
    t.notOk(row.secret.includes(secretBody(secret)), 'webhook_endpoints holds no secret in clear');
    t.match(row.secret, sealedUnder(testEncryptionKey), 'but a v1 value sealed under DATA_ENCRYPTION_KEY');

    const delivery = await delivered(test, admin, id, inbox.requests);
    t.ok(verifies(delivery, secret), 'a delivery verifies with the secret shown at creation (standardwebhooks)');
    t.notOk(verifies(delivery, `whsec_${randomBytes(32).toString('base64')}`), 'and with no other');
  });

  t.test('POST /v1/webhook-endpoints/{id}/rotate-secret › a replay shows no secret; both secrets sealed; both verify', async (t) => {
    const created = await test.create('/v1/webhook-endpoints', admin, { organizationId, url: inbox.url, eventTypes: ['referral.sent'] });
    const key = newKey();
    const first = await post(`/v1/webhook-endpoints/${created.id}/rotate-secret`, key);
    t.equal(first.statusCode, 200);
    const rotated: string = first.json().secret;
    assertReplayWithoutSecret(t, first, await post(`/v1/webhook-endpoints/${created.id}/rotate-secret`, key), 'secret');
    t.notOk((await keptResponse(test, key)).includes(secretBody(rotated)), 'idempotency_records holds no secret');

    const row = await storedEndpoint(test, created.id);
    for (const [column, value] of [['secret', row.secret], ['previous_secret', row.previousSecret ?? '']] as const) {
      t.match(value, sealedUnder(testEncryptionKey), `${column} is sealed`);
      t.notOk(value.includes(secretBody(rotated)) || value.includes(secretBody(created.secret)), `${column} holds neither secret in clear`);
    }
    const delivery = await delivered(test, admin, created.id, inbox.requests);
    t.ok(verifies(delivery, rotated), 'verifies with the new secret');
    t.ok(verifies(delivery, created.secret), 'and, during the overlap, with the one shown at creation');
  });
});

/** A database that outlives the service: started, stopped and started again like a deployment. */
async function lastingStore(t: Test): Promise<{ env: Record<string, string>; template: Blob | undefined; fresh: boolean }> {
  if (testDatabaseServer) {
    const database = await createTestDatabase();
    t.teardown(database.drop);
    return { env: { DATABASE_URL: database.url }, template: undefined, fresh: true };
  }
  const folder = await mkdtemp(join(tmpdir(), 'secret-storage-'));
  t.teardown(() => rm(folder, { recursive: true, force: true }));
  return { env: { DATA_DIR: join(folder, 'data') }, template: await pgliteTemplate(), fresh: true };
}
type Store = Awaited<ReturnType<typeof lastingStore>>;

async function start(store: Store, env: Record<string, string> = {}): Promise<TestApp> {
  const config = testConfig({ ...appEnv, ...store.env, ...env });
  const template = store.fresh ? store.template : undefined;
  store.fresh = false;
  return new TestApp(await buildApp({ config, pgliteTemplate: template }), config);
}

/** Starts, registers an endpoint (rotated once when asked, so both columns hold a secret), stops. */
async function endpointOn(store: Store, inboxUrl: string, env: Record<string, string> = {}, rotate = false) {
  const test = await start(store, env);
  try {
    const admin = await test.loginAsAdmin();
    const endpoint = await test.create('/v1/webhook-endpoints', admin, { organizationId: await organization(test, admin), url: inboxUrl, eventTypes: ['referral.sent'] });
    const secrets: string[] = [endpoint.secret];
    if (rotate) {
      const rotated = await test.request({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, token: admin });
      secrets.unshift(rotated.json().secret);
    }
    return { id: endpoint.id as string, secrets };
  } finally {
    await test.app.close();
  }
}

t.test('secrets left in clear by an older version are sealed (signing secrets) or taken out (kept responses) at start', async (t) => {
  const store = await lastingStore(t);
  const inbox = await receiver(t);
  const { id, secrets } = await endpointOn(store, inbox.url, {}, true);
  const [current, previous] = secrets as [string, string];

  // What a version before sealing left behind.
  const old = await start(store);
  await old.app.db.update(webhookEndpoints).set({ secret: current, previousSecret: previous }).where(eq(webhookEndpoints.id, id));
  const clientSecret = `cs_${randomBytes(32).toString('base64url')}`;
  const keptClient = { id: randomUUID(), name: 'Partner EHR', clientId: 'cli_old', clientSecret };
  const keptEndpoint = { id, secret: current };
  for (const [key, body] of [['old-client', keptClient], ['old-endpoint', keptEndpoint]] as const) {
    await old.app.database.rows(sql`insert into idempotency_records (caller_key, key, request_hash, state, status_code, response_headers, response_body)
      values ('user:old', ${key}, 'hash', 'completed', 201, '{}'::jsonb, ${JSON.stringify(body)})`);
  }
  await old.app.close();

  // On PostgreSQL two processes start at once, as a rolling deploy or a scaled service does.
  const started = await Promise.all(testDatabaseServer ? [start(store), start(store)] : [start(store)]);
  const test = started[0]!;
  t.teardown(() => Promise.all(started.map((app) => app.app.close())));
  const row = await storedEndpoint(test, id);
  t.match(row.secret, sealedUnder(testEncryptionKey), 'secret is sealed');
  t.match(row.previousSecret, sealedUnder(testEncryptionKey), 'previous_secret is sealed');
  t.notOk(row.secret.includes(secretBody(current)) || row.previousSecret!.includes(secretBody(previous)), 'neither is in clear any more');
  const delivery = await delivered(test, await test.loginAsAdmin(), id, inbox.requests);
  t.ok(verifies(delivery, current) && verifies(delivery, previous), 'deliveries still verify with both secrets shown');
  const { clientSecret: _secret, ...clientWithout } = keptClient;
  t.same(JSON.parse(await keptResponse(test, 'old-client')), clientWithout, 'a kept API client answer lost its clientSecret, nothing else');
  t.same(JSON.parse(await keptResponse(test, 'old-endpoint')), { id }, 'a kept endpoint answer lost its secret');
});

t.test('key rotation: a new DATA_ENCRYPTION_KEY with the old one in DATA_ENCRYPTION_PREVIOUS_KEYS re-seals at start; then the old key can go', async (t) => {
  const store = await lastingStore(t);
  const inbox = await receiver(t);
  const { id, secrets } = await endpointOn(store, inbox.url, {}, true);
  const newKey = randomBytes(32).toString('base64');

  const rotating = await start(store, { DATA_ENCRYPTION_KEY: newKey, DATA_ENCRYPTION_PREVIOUS_KEYS: testEncryptionKey });
  let row = await storedEndpoint(rotating, id);
  t.match(row.secret, sealedUnder(newKey), 'secret re-sealed under the new key');
  t.match(row.previousSecret, sealedUnder(newKey), 'previous_secret too');
  await rotating.app.close();

  const rotated = await start(store, { DATA_ENCRYPTION_KEY: newKey });
  row = await storedEndpoint(rotated, id);
  t.match(row.secret, sealedUnder(newKey), 'unchanged by a start with the new key alone');
  const delivery = await delivered(rotated, await rotated.loginAsAdmin(), id, inbox.requests);
  t.ok(verifies(delivery, secrets[0]!) && verifies(delivery, secrets[1]!), 'deliveries verify with the secrets shown, the old key gone');
  await rotated.app.close();

  // Last on this store: a refused start leaves its connections to the teardown.
  await t.rejects(
    buildApp({ config: testConfig({ ...appEnv, ...store.env }) }),
    new RegExp(`sealed under key ${keyIdOf(Buffer.from(newKey, 'base64'))}, which is neither DATA_ENCRYPTION_KEY nor one of DATA_ENCRYPTION_PREVIOUS_KEYS`),
    'a start with only the old key is refused, naming the key it lacks',
  );
});

t.test('on the embedded database without DATA_ENCRYPTION_KEY, a key is generated into DATA_DIR once (0600) and kept', { skip: testDatabaseServer ? 'embedded database only' : false }, async (t) => {
  const store = await lastingStore(t);
  const inbox = await receiver(t);
  const noKey = { DATA_ENCRYPTION_KEY: '' };
  const { id, secrets } = await endpointOn(store, inbox.url, noKey);
  const file = join(store.env.DATA_DIR!, 'data-encryption-key');
  const generated = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  t.equal(generated.length, 32, '32 random bytes');
  t.equal((await stat(file)).mode & 0o777, 0o600, 'readable by the owner only');

  const test = await start(store, noKey);
  t.teardown(() => test.app.close());
  t.same(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'), generated, 'the same key after a restart');
  t.match((await storedEndpoint(test, id)).secret, sealedUnder(generated), 'the secret is sealed under it');
  t.ok(verifies(await delivered(test, await test.loginAsAdmin(), id, inbox.requests), secrets[0]!), 'and deliveries verify after the restart');
});
