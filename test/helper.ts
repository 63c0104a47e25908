// Builds the app for a test on a database of its own (in-memory PGlite, or a fresh PostgreSQL
// database when TEST_DATABASE_URL names a server), and tears both down after.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import { buildApp, type BuildAppOptions } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { migrationsFolder, openDatabase } from '../src/db/database.js';
import { adminEmail, adminPassword, defaultPassword, testAuditSigningKey, testEncryptionKey, testJwtSecret } from './fixtures/credentials.js';
import { recordExchange } from './fixtures/example-recorder.js';
import { responseViolations } from './fixtures/response-contract.js';

// What tests built on this helper use besides the app; the fixtures themselves live in test/fixtures/.
export { adminEmail, adminPassword, defaultPassword, testAuditSigningKey, testEncryptionKey, testJwtSecret } from './fixtures/credentials.js';
export { auditEvents } from './fixtures/database.js';
export { createOffice, createPractice, nextNpi, type OfficeFixture, type PracticeFixture } from './fixtures/network.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** PostgreSQL server to test against; unset means the embedded database. */
export const testDatabaseServer = process.env.TEST_DATABASE_URL;

/** Creates an empty PostgreSQL database for one test file and returns its URL and a dropper. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = new URL(testDatabaseServer!);
  const name = `test_${Date.now()}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(server.toString(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(server.toString());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/**
 * A database that outlives one app, for tests that stop and start the service on it: a fresh
 * PostgreSQL database, or an embedded data folder on disk. `env` points a configuration at it.
 */
export async function persistentTestDatabase(t: Teardown): Promise<{ env: Record<string, string>; template: Blob | undefined; url: string | undefined; dataDir: string | undefined }> {
  const server = testDatabaseServer ? await createTestDatabase() : undefined;
  const dataDir = server ? undefined : await mkdtemp(join(tmpdir(), 'massage-persistent-'));
  t.teardown(async () => {
    await server?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  return {
    env: server ? { DATABASE_URL: server.url } : { DATA_DIR: dataDir! },
    template: server ? undefined : await pgliteTemplate(),
    url: server?.url,
    dataDir,
  };
}

export interface TestAppOptions {
  env?: Record<string, string>;
  logger?: FastifyBaseLogger;
  /** Answers the webhook worker's DNS lookups (see test/fixtures/fake-dns.ts). */
  webhookResolver?: BuildAppOptions['webhookResolver'];
  /** Answers the DNS lookups of API clients' JWKS URLs (see test/fixtures/smart.ts). */
  jwksResolver?: BuildAppOptions['jwksResolver'];
}

/** The configuration tests run with: fast failure delays and generous rate limits, unless a test overrides them. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    JWT_SECRET: testJwtSecret,
    DATA_ENCRYPTION_KEY: testEncryptionKey,
    AUDIT_SIGNING_KEY: testAuditSigningKey,
    // Every sequencing run signs a checkpoint, so a test sees its events provable at once; tests
    // that need their events sequenced run the sequencer themselves (sequenceAuditLog), so the
    // worker's own runs, which share the embedded database with the test, are kept rare.
    AUDIT_CHECKPOINT_INTERVAL_MS: '0',
    AUDIT_CHECKPOINT_WEBHOOK_SECONDS: '0',
    AUDIT_SEQUENCER_POLL_MS: '1000',
    DEMO_SEED: 'false',
    LOG_LEVEL: 'silent',
    LOGIN_FAILURE_DELAY_MS: '1',
    // A test makes hundreds of accounts; at the production work factor each costs ~50 ms of CPU.
    PASSWORD_HASH_COST: '10',
    TOKEN_RATE_LIMIT_PER_MINUTE: '10000',
    RATE_LIMIT_PER_MINUTE: '100000',
    // The load-shedding probe would turn a CPU-starved moment of a parallel test run into 503s;
    // the fault tests switch it on where it is what they test.
    DATABASE_PROBE_INTERVAL_MS: '0',
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
    ...env,
  });
}

/**
 * A migrated embedded data folder, made once per set of migrations and shared by test files:
 * loading it takes well under a second, where initdb in WebAssembly takes several.
 */
export async function pgliteTemplate(): Promise<Blob> {
  const files = (await readdir(migrationsFolder)).filter((name) => name.endsWith('.sql')).sort();
  const hash = createHash('sha256');
  for (const name of files) hash.update(name).update(await readFile(join(migrationsFolder, name)));
  const path = join(tmpdir(), `massage-referral-pglite-${hash.digest('hex').slice(0, 16)}.tar`);
  try {
    return new Blob([await readFile(path)]);
  } catch {
    const database = await openDatabase({ dataDir: 'memory://' });
    await database.migrate();
    const dump = await database.dumpDataDir!();
    await database.close();
    // Write then rename, so a test file running alongside never reads half a template.
    const partial = `${path}.${process.pid}.partial`;
    await writeFile(partial, Buffer.from(await dump.arrayBuffer()));
    await rename(partial, path);
    return dump;
  }
}

export async function buildTestApp(t: Teardown, options: TestAppOptions = {}): Promise<TestApp> {
  const database = testDatabaseServer ? await createTestDatabase() : undefined;
  const template = database ? undefined : await pgliteTemplate();
  const config = testConfig({
    ...(database ? { DATABASE_URL: database.url } : { DATA_DIR: 'memory://' }),
    ...options.env,
  });
  const app = await buildApp({
    config,
    pgliteTemplate: template,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.webhookResolver ? { webhookResolver: options.webhookResolver } : {}),
    ...(options.jwksResolver ? { jwksResolver: options.jwksResolver } : {}),
  });
  t.teardown(async () => {
    await app.close();
    await database?.drop();
  });
  return new TestApp(app, config);
}

export type Json = Record<string, any>;

/** What TestApp.request answers: the injected response, with its JSON parsed on demand. */
export type TestResponse = LightMyRequestResponse & { body: string; json<T = Json>(): T };

/** A thin client over app.inject that remembers tokens and parses JSON. */
export class TestApp {
  constructor(
    readonly app: FastifyInstance,
    readonly config: Config,
  ) {}

  /** The OpenAPI document every response is held to, read once per app. */
  private document: object | undefined;

  /** Calls the app; every response must keep the OpenAPI contract (test/fixtures/response-contract.ts), else the calling test fails. */
  async request(options: InjectOptions & { token?: string | undefined }): Promise<TestResponse> {
    const { token, ...rest } = options;
    const response = await this.app.inject({
      ...rest,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers },
    });
    const method = String(rest.method ?? 'GET').toUpperCase();
    const url = typeof rest.url === 'string' ? rest.url : (rest.url?.pathname ?? rest.path ?? '/');
    this.document ??= this.app.swagger();
    const violations = responseViolations(this.document, method, String(url), response.statusCode, response.headers, response.body);
    if (violations.length > 0) {
      throw new Error(
        `${method} ${url} answered ${response.statusCode}, breaking the OpenAPI contract:\n  ${violations.join('\n  ')}\nbody: ${response.body.slice(0, 2000)}`,
      );
    }
    recordExchange(this.document, { method, url: String(url), payload: rest.payload, headers: (rest.headers ?? {}) as Record<string, unknown> }, response);
    return response as never;
  }

  async login(email: string, password = defaultPassword): Promise<string> {
    const response = await this.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', username: email, password },
    });
    if (response.statusCode !== 200) throw new Error(`login ${email} failed: ${response.statusCode} ${response.body}`);
    return response.json().access_token;
  }

  async loginAsAdmin(): Promise<string> {
    return this.login(adminEmail, adminPassword);
  }

  /** POSTs and expects 201, returning the created resource. */
  async create(url: string, token: string, payload: Json): Promise<Json> {
    const response = await this.request({ method: 'POST', url, token, payload });
    if (response.statusCode !== 201) throw new Error(`POST ${url} failed: ${response.statusCode} ${response.body}`);
    return response.json();
  }
}
