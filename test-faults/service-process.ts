// The service as an operator runs it, for the process-level fault tests: the esbuild output of src
// (as `npm start` builds it, into a temp folder, so it starts in a fraction of tsx's time), started
// as child processes that the test can SIGTERM or SIGKILL, and reached over real HTTP. A crash of a
// service process is then a finding of the test rather than the end of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InjectOptions } from 'fastify';
import { buildService as buildInto } from '../tools/build.js';
import { adminEmail, adminPassword, TestApp, testAuditSigningKey, testEncryptionKey, testJwtSecret } from '../test/helper.js';
import { freePort } from './private-postgres.js';

export const root = fileURLToPath(new URL('..', import.meta.url));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds; throws naming `what` after `timeoutMs`. Returns the time it took. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The helper's fixtures (createOffice, …) over real HTTP to a service process. */
export class HttpApp extends TestApp {
  constructor(readonly baseUrl: string) {
    super(undefined as never, undefined as never);
  }

  override async request(options: InjectOptions & { token?: string | undefined }): Promise<never> {
    const payload = options.payload === undefined ? undefined : JSON.stringify(options.payload);
    const response = await fetch(`${this.baseUrl}${String(options.url)}`, {
      method: String(options.method ?? 'GET'),
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(payload ? { 'content-type': 'application/json' } : {}),
        ...(options.headers as Record<string, string> | undefined),
      },
      body: payload,
    });
    const body = await response.text();
    return { statusCode: response.status, headers: Object.fromEntries(response.headers), body, json: () => JSON.parse(body) } as never;
  }
}

export interface Build {
  folder: string;
  remove: () => void;
}

/** The same build as `npm run build`, into a folder of this run; node_modules resolve through a link. */
export async function buildService(name: string): Promise<Build> {
  const folder = mkdtempSync(join(tmpdir(), `${name}-service-`));
  await buildInto(join(folder, 'src'));
  symlinkSync(join(root, 'node_modules'), join(folder, 'node_modules'));
  return { folder, remove: () => rmSync(folder, { recursive: true, force: true }) };
}

/** What every service process of these tests needs: the test keys, the bootstrap admin, no demo data. */
export function serviceEnv(databaseUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: testJwtSecret,
    DATA_ENCRYPTION_KEY: testEncryptionKey,
    AUDIT_SIGNING_KEY: testAuditSigningKey,
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DEMO_SEED: 'false',
    REFERRAL_EXPIRY_SWEEP_SECONDS: '0',
    RATE_LIMIT_PER_MINUTE: '1000000',
    TOKEN_RATE_LIMIT_PER_MINUTE: '10000',
    ...env,
  };
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  at: number;
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  port: number;
  baseUrl: string;
  /** The process's stdout and stderr so far (the last `keepOutput` characters). */
  output: () => string;
  exit: Promise<ExitStatus>;
  /** Set once the process has exited. */
  exited: () => ExitStatus | undefined;
  /** Sends `signal` (SIGKILL by default) and waits for the exit; nothing if it has exited already. */
  stop: (signal?: NodeJS.Signals) => Promise<ExitStatus>;
}

const running = new Set<ServiceProcess>();
// A failed setup ends the test process without tap's teardown: no service may outlive the run.
process.once('exit', () => {
  for (const service of running) if (!service.exited()) service.child.kill('SIGKILL');
});

/** Kills every service process still running (for a teardown). */
export async function stopAllServices(): Promise<void> {
  await Promise.all([...running].map((service) => service.stop('SIGKILL')));
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts the built service with `env` (from serviceEnv) on a free port and waits until
 * /health/ready answers 200, or with `waitUntil: 'listening'` until it accepts connections (the
 * service listens once it is built and migrated; that wait sends no request a rate limit would
 * count). The process's output is kept, to show when something fails.
 */
export async function startServiceProcess(
  buildFolder: string,
  name: string,
  env: Record<string, string>,
  options: { readyWithinMs?: number; keepOutput?: number; waitUntil?: 'ready' | 'listening' } = {},
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(buildFolder, 'src/server.js')], { cwd: root, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keepOutput = options.keepOutput ?? 100_000;
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-keepOutput));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exitStatus: ExitStatus | undefined;
  const exit = new Promise<ExitStatus>((resolve) =>
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal, at: Date.now() };
      running.delete(service);
      resolve(exitStatus);
    }),
  );
  const service: ServiceProcess = {
    name,
    child,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => output,
    exit,
    exited: () => exitStatus,
    stop: async (signal = 'SIGKILL') => {
      if (!exitStatus) child.kill(signal);
      return exit;
    },
  };
  running.add(service);
  await waitFor(
    `service ${name} to be ready`,
    async () => {
      if (exitStatus) throw new Error(`service ${name} exited at start (${JSON.stringify(exitStatus)}):\n${output}`);
      if (options.waitUntil === 'listening') return listening(port);
      return (await fetch(`${service.baseUrl}/health/ready`).then((response) => response.status, () => 0)) === 200;
    },
    options.readyWithinMs ?? 60_000,
    100,
  );
  return service;
}
