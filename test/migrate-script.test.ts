// `npm run migrate` as a deploy pipeline's migration job runs it: with nothing but the database's
// URL (none of the service's keys), on an empty database, twice (the second run finds nothing to do).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import t from 'tap';
import { migrationsFolder, openDatabase } from '../src/db/database.js';
import { createTestDatabase, testDatabaseServer } from './helper.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function migrate(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/scripts/migrate.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

const migrationCount = (await readdir(migrationsFolder)).filter((name) => name.endsWith('.sql')).length;

t.test('migrates an empty database with only its URL, and again finds nothing to do', async (t) => {
  if (testDatabaseServer) {
    const database = await createTestDatabase();
    t.teardown(database.drop);
    for (const run of ['first', 'second']) {
      const { code, output } = await migrate({ DATABASE_URL: database.url });
      t.equal(code, 0, `${run} run exits 0: ${output}`);
      t.match(output, /migrations applied \(postgres\)/);
    }
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end({ timeout: 1 }));
    const [applied] = await sql<{ count: number }[]>`select count(*)::int as count from drizzle.__drizzle_migrations`;
    t.equal(applied!.count, migrationCount, 'each migration recorded once');
  } else {
    const dataDir = await mkdtemp(join(tmpdir(), 'migrate-script-'));
    t.teardown(() => rm(dataDir, { recursive: true, force: true }));
    for (const run of ['first', 'second']) {
      const { code, output } = await migrate({ DATA_DIR: dataDir });
      t.equal(code, 0, `${run} run exits 0: ${output}`);
      t.match(output, /migrations applied \(pglite\)/);
    }
    const database = await openDatabase({ dataDir });
    t.teardown(() => database.close());
    t.ok(await database.migrationsApplied(), 'every migration applied');
  }
});

t.test('a bad setting is named, without a stack trace', async (t) => {
  const { code, output } = await migrate({ DATABASE_URL: 'mysql://db.example/referrals' });
  t.equal(code, 1);
  t.match(output, /DATABASE_URL: /);
  t.notMatch(output, /\n\s+at /, 'no stack trace');
});
