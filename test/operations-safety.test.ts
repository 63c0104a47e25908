// Issue 12: what an operator gets by default — a private embedded data folder, no demo accounts
// outside a local development start, a chain check that never cries wolf while writes run, and no
// 500 when a rolling deploy changes a column under prepared statements.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { DemoAccountsRefusedError } from '../src/seed/bootstrap.js';
import { demoCredentials } from '../src/seed/demo-network.js';
import { captureLog } from './fixtures/captured-log.js';
import { buildTestApp, createOffice, persistentTestDatabase, pgliteTemplate, testConfig, testDatabaseServer, TestApp, type Json } from './helper.js';

const patientBody = { givenName: 'Ada', familyName: 'Byron', birthDate: '1980-01-02', sex: 'female' };

function walk(path: string): { path: string; mode: number; directory: boolean }[] {
  return readdirSync(path, { withFileTypes: true }).flatMap((entry) => {
    const child = join(path, entry.name);
    const own = { path: child, mode: statSync(child).mode & 0o777, directory: entry.isDirectory() };
    return entry.isDirectory() ? [own, ...walk(child)] : entry.isFile() ? [own] : [];
  });
}

t.test('embedded database › its folders are 0700 and its files 0600, whatever the umask', { skip: testDatabaseServer ? 'embedded database only' : false }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'massage-private-'));
  const dataDir = join(root, 'data');
  // What an older start under umask 022 left behind.
  mkdirSync(join(dataDir, 'older'), { recursive: true, mode: 0o755 });
  writeFileSync(join(dataDir, 'older', 'leftover'), 'x', { mode: 0o644 });
  const previousUmask = process.umask(0o022);
  t.teardown(() => {
    process.umask(previousUmask);
    rmSync(root, { recursive: true, force: true });
  });
  // No JWT_SECRET or DATA_ENCRYPTION_KEY: both are generated into the folder as well.
  const config = testConfig({ DATA_DIR: dataDir, JWT_SECRET: '', DATA_ENCRYPTION_KEY: '' });
  const app = await buildApp({ config, pgliteTemplate: await pgliteTemplate() });
  const test = new TestApp(app, config);
  const office = await createOffice(test, await test.loginAsAdmin());
  await test.create('/v1/patients', office.staff.token, patientBody);
  await app.close();

  const entries = walk(dataDir);
  t.ok(entries.length > 100, `the folder holds the database (${entries.length} entries)`);
  t.ok(entries.some((entry) => entry.path.endsWith('jwt-secret')), 'and the generated JWT key');
  t.equal(statSync(dataDir).mode & 0o777, 0o700, 'DATA_DIR itself is 0700');
  t.same(
    entries.filter((entry) => entry.directory && entry.mode !== 0o700).map((entry) => `${entry.path} ${entry.mode.toString(8)}`),
    [],
    'every folder is 0700',
  );
  t.same(
    entries.filter((entry) => !entry.directory && (entry.mode & 0o077) !== 0).map((entry) => `${entry.path} ${entry.mode.toString(8)}`),
    [],
    'no file is readable or writable by anyone but its owner',
  );
});

t.test('demo network › off by default in production and on a non-loopback address; on when asked', async (t) => {
  t.equal(loadConfig({}).demoSeed, true, 'a local development start seeds it');
  t.equal(loadConfig({ NODE_ENV: 'production' }).demoSeed, false);
  t.equal(loadConfig({ HOST: '0.0.0.0' }).demoSeed, false);
  t.equal(loadConfig({ HOST: '192.0.2.10' }).demoSeed, false);
  t.equal(loadConfig({ HOST: '::1' }).demoSeed, true);
  t.equal(loadConfig({ HOST: '0.0.0.0', NODE_ENV: 'production', DEMO_SEED: 'true' }).demoSeed, true, 'an explicit DEMO_SEED=true wins');
  t.equal(loadConfig({ DEMO_SEED: 'false' }).demoSeed, false);
});

t.test('demo network › a production start on an empty database has no demo accounts', async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: '', NODE_ENV: 'production' } });
  const response = await test.request({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', username: demoCredentials.users.networkAdmin, password: demoCredentials.password },
  });
  t.equal(response.statusCode, 400, 'the demo network admin does not exist');
});

t.test('demo network › said loudly when on; a database holding it is refused when demo accounts are off', async (t) => {
  const database = await persistentTestDatabase(t);
  const where = database.env;
  const log = captureLog();
  const seeded = await buildApp({ config: testConfig({ ...where, DEMO_SEED: 'true' }), logger: log.logger, pgliteTemplate: database.template });
  await seeded.close();
  const warnings = log.entries().filter((entry) => entry.level === 40 && /DEMO ACCOUNTS ARE ENABLED/.test(entry.msg));
  t.equal(warnings.length, 1, 'a warning names the published password risk');

  await t.rejects(
    buildApp({ config: testConfig({ ...where, DEMO_SEED: '', NODE_ENV: 'production' }) }),
    DemoAccountsRefusedError,
    'production on a database with the demo accounts refuses to start',
  );
  await t.rejects(buildApp({ config: testConfig({ ...where, DEMO_SEED: 'false' }) }), /DEMO_SEED=true/);
  const knowingly = await buildApp({ config: testConfig({ ...where, DEMO_SEED: 'true', NODE_ENV: 'production' }) });
  await knowingly.close();
  t.pass('DEMO_SEED=true serves it knowingly');
});

t.test('audit › verify reads one snapshot: it never reports tampering while writes run', async (t) => {
  const test = await buildTestApp(t);
  const admin = await test.loginAsAdmin();
  const office = await createOffice(test, admin);
  let writing = true;
  const writers = Array.from({ length: 6 }, async () => {
    let written = 0;
    while (writing) {
      await test.create('/v1/patients', office.staff.token, patientBody);
      written++;
    }
    return written;
  });
  const answers: Json[] = [];
  for (let i = 0; i < 12; i++) {
    answers.push((await test.request({ method: 'GET', url: '/v1/audit-events/verify', token: admin })).json());
  }
  writing = false;
  const written = (await Promise.all(writers)).reduce((sum, count) => sum + count, 0);
  t.ok(written > 0, `${written} audited changes were made meanwhile`);
  t.same(
    answers.filter((answer) => answer.valid !== true),
    [],
    'every verification is valid',
  );
});

t.test(
  'rolling deploy › a column type changed under prepared statements is retried, never a 500',
  { skip: testDatabaseServer ? false : 'PostgreSQL only: the embedded database keeps no prepared plans between statements' },
  async (t) => {
    // One connection, so the statement prepared before the change is the one met after it.
    const test = await buildTestApp(t, { env: { DATABASE_POOL_SIZE: '1' } });
    const admin = await test.loginAsAdmin();
    const office = await createOffice(test, admin);
    await test.create('/v1/patients', office.staff.token, patientBody);

    // What a migration of a newer version, deployed beside this one, does.
    const direct = postgres(test.config.databaseUrl!, { max: 1, onnotice: () => {} });
    await direct.unsafe('alter table patients alter column phone type varchar(64)');
    await direct.end();

    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      statuses.push((await test.request({ method: 'POST', url: '/v1/patients', token: office.staff.token, payload: patientBody })).statusCode);
    }
    t.same(statuses, [201, 201, 201, 201, 201], 'each create succeeds (the stale statement is prepared again)');
  },
);
