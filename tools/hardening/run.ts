// `npm run test:hardening`: the security suite (test/hardening) and the fault tests (test-faults)
// on the local PostgreSQL server, then the table of their figures into the README.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const figures = mkdtempSync(join(tmpdir(), 'hardening-figures-'));
const env = {
  ...process.env,
  TEST_DATABASE_URL: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  HARDENING_FIGURES_DIR: figures,
};
const run = (command: string, args: string[]) => spawnSync(command, args, { cwd: root, env, stdio: 'inherit' }).status ?? 1;

const testFiles = (folder: string) =>
  readdirSync(join(root, folder))
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => `${folder}/${name}`);

try {
  const security = run('npx', ['tap', ...testFiles('test/hardening'), 'test/audit-fails-closed.test.ts', '--disable-coverage', '--timeout', '600']);
  // The fault tests time outages and queues, so they run one at a time.
  const faults = run('npx', ['tap', ...testFiles('test-faults'), '--disable-coverage', '--timeout', '600', '--jobs', '1']);
  const report = run('npx', ['tsx', 'tools/hardening/report.ts', figures, '--check', '--write-readme']);
  process.exitCode = security || faults || report;
} finally {
  rmSync(figures, { recursive: true, force: true });
}
