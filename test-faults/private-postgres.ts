// A throw-away PostgreSQL cluster of one test file, for tests that stop and restart the database
// (the shared server at 127.0.0.1:5432 serves other tests and is never touched). It lives in a
// fresh temp folder, listens on 127.0.0.1 only, on a free port, with its unix socket in that folder,
// and trusts every local connection. A watchdog outside the test process removes it should that
// process die without running its teardown (SIGKILL, a tap timeout), so no cluster outlives a run.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binaries = process.env.POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';
const runningAsRoot = process.getuid?.() === 0;

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly folder: string;
  /** Whether the server is up, as far as this helper knows. */
  readonly running: boolean;
  /** Starts the server and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (pg_ctl stop; fast by default: open sessions are terminated with 57P01). */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** Stops (fast) and starts again, after `downMs` with the server down. */
  restart(downMs?: number): Promise<void>;
  /** The server log so far, to show when a test fails. */
  log(): string;
  /** Stops the server, whatever its state, and removes the folder. Safe to call more than once. */
  destroy(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** Extra postgresql.conf lines, e.g. { max_connections: '50' }. */
  settings?: Record<string, string>;
}

/** A TCP port on 127.0.0.1 with nothing listening on it just now. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** initdb and pg_ctl refuse to run as root: as root they run as the postgres user. */
function command(binary: string, args: string[]): [string, string[]] {
  const path = join(binaries, binary);
  return runningAsRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
}

function run(binary: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [file, argv] = command(binary, args);
  return new Promise((resolve, reject) => {
    // pg_ctl hands the server a log file of its own (-l), so these pipes carry only pg_ctl's lines
    // and close when it exits, not when the server does.
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${binary} ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${output}`));
    });
  });
}

function runSync(binary: string, args: string[]): void {
  const [file, argv] = command(binary, args);
  spawnSync(file, argv, { stdio: 'ignore', timeout: 30_000 });
}

const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * initdb's a cluster into a fresh temp folder and starts it. With `t`, the cluster is destroyed in
 * t's teardown; in any case also when the process exits or is killed.
 */
export async function startPrivatePostgres(t?: Teardown, options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const folder = mkdtempSync(join(tmpdir(), 'private-postgres-'));
  const dataDir = join(folder, 'data');
  const logFile = join(folder, 'server.log');
  // initdb, running as postgres, creates the data folder inside this one.
  if (runningAsRoot) spawnSync('chown', ['postgres:postgres', folder]);

  let destroyed = false;
  let running = false;
  let watchdogPid: number | undefined;

  const destroySync = () => {
    if (destroyed) return;
    destroyed = true;
    if (existsSync(join(dataDir, 'postmaster.pid'))) runSync('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '20']);
    running = false;
    rmSync(folder, { recursive: true, force: true });
    if (watchdogPid !== undefined) {
      try {
        process.kill(watchdogPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  // A signal that ends the process skips 'exit' handlers; stop the cluster first, then let the
  // signal do what it would have done.
  const onSignal = (signal: NodeJS.Signals) => {
    destroySync();
    removeHooks();
    process.kill(process.pid, signal);
  };
  const onExit = () => destroySync();
  process.once('exit', onExit);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const removeHooks = () => {
    process.off('exit', onExit);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };

  try {
    await run('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
  } catch (error) {
    destroySync();
    removeHooks();
    throw error;
  }
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: quote('127.0.0.1'),
    port: String(port),
    unix_socket_directories: quote(folder),
    max_connections: '100',
    shared_buffers: quote('32MB'),
    logging_collector: 'off',
    log_min_messages: 'warning',
    ...options.settings,
  };
  appendFileSync(join(dataDir, 'postgresql.conf'), `\n# private-postgres.ts\n${Object.entries(settings).map(([key, value]) => `${key} = ${value}`).join('\n')}\n`);
  // Local connections only, each trusted: the socket in the folder and loopback TCP.
  writeFileSync(join(dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');

  // Outlives this process only to clean up after it: polls its pid, and when it is gone stops
  // the cluster and removes the folder. Started before the server, so no moment goes unwatched.
  const [ctl, ctlArgs] = command('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '20']);
  const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  const watchdog = spawn(
    'sh',
    ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${[ctl, ...ctlArgs].map(shellQuote).join(' ')} >/dev/null 2>&1; rm -rf ${shellQuote(folder)}`],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  watchdogPid = watchdog.pid;

  const start = async () => {
    if (destroyed) throw new Error('the private PostgreSQL cluster was destroyed');
    await run('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60']);
    running = true;
  };
  const stop = async (mode: 'smart' | 'fast' | 'immediate' = 'fast') => {
    await run('pg_ctl', ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '60']);
    running = false;
  };

  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    folder,
    get running() {
      return running;
    },
    start,
    stop,
    restart: async (downMs = 0) => {
      await stop('fast');
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    destroy: async () => {
      if (destroyed) return;
      if (running) await stop('immediate').catch(() => {});
      destroySync();
      removeHooks();
    },
  };

  t?.teardown(() => cluster.destroy());
  try {
    await start();
  } catch (error) {
    const log = cluster.log();
    await cluster.destroy();
    throw new Error(`${(error as Error).message}\n${log}`);
  }
  return cluster;
}
