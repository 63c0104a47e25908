// Child processes of the bench: started with tsx, told apart by name, and all stopped on exit.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const running = new Set<ChildProcess>();

export const projectRoot = fileURLToPath(new URL('..', import.meta.url));

function stopAll() {
  for (const child of running) child.kill('SIGKILL');
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAll();
    process.exit(130);
  });
}

export interface Started {
  child: ChildProcess;
  /** What the child sent first over IPC, e.g. the port it listens on. */
  ready: Record<string, unknown>;
  stop(): Promise<number | null>;
}

/** Forks a module with its output dropped (errors shown, and its output too with `showOutput`), and stops it with the bench. */
function forkTracked(modulePath: string, env: Record<string, string>, execArgv: string[], showOutput = false): ChildProcess {
  const child = fork(modulePath, [], { cwd: projectRoot, env: { ...process.env, ...env }, execArgv, stdio: ['ignore', showOutput ? 'inherit' : 'ignore', 'inherit', 'ipc'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Forks a TypeScript module and waits for its first IPC message. */
export async function startChild(modulePath: string, { env = {} }: { env?: Record<string, string> } = {}): Promise<Started> {
  const child = forkTracked(modulePath, env, ['--import', 'tsx']);
  const [ready] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`${modulePath} exited with ${code} before it was ready`);
    }),
  ])) as [Record<string, unknown>];
  return { child, ready, stop: () => stopChild(child) };
}

/** The node flags of `npm start`, which the bench starts the service with. */
export const serviceNodeFlags = ['--enable-source-maps', '--max-semi-space-size=4'];

/** Compiles the service as `npm start` does (esbuild, src → dist/src), once per bench run. */
export async function buildService(): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  execFileSync('npm', ['run', '-s', 'build'], { cwd: projectRoot, stdio: 'inherit' });
}

/** Spawns the compiled service as `npm start` does, and waits until /health/ready answers 200. */
export async function startService(env: Record<string, string>, timeoutMs = 60_000): Promise<Started & { url: string; startedInMs: number }> {
  const begin = performance.now();
  // BENCH_CPU_PROFILE=<folder> writes the service's CPU profile there when it stops.
  const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : [];
  // BENCH_SERVICE_NODE_FLAGS='--trace-gc' adds node flags (and shows the service's output), to
  // compare settings or look into memory.
  const extraFlags = (process.env.BENCH_SERVICE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = forkTracked(
    new URL('../dist/src/server.js', import.meta.url).pathname,
    { LOG_LEVEL: 'warn', ...env },
    [...serviceNodeFlags, ...profile, ...extraFlags],
    extraFlags.length > 0,
  );
  const url = `http://127.0.0.1:${env.PORT}`;
  while (true) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode} before it was ready`);
    if (performance.now() - begin > timeoutMs) throw new Error('the service did not become ready in time');
    const ok = await fetch(`${url}/health/ready`).then((response) => response.ok, () => false);
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { child, ready: {}, url, startedInMs: performance.now() - begin, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  return code;
}

/** Sends a request to a child over IPC and waits for the answer carrying the same id. */
let nextMessageId = 1;
export async function ask<T>(child: ChildProcess, message: Record<string, unknown>): Promise<T> {
  const id = nextMessageId++;
  return new Promise<T>((resolve, reject) => {
    const onMessage = (reply: { id?: number; result?: T; error?: string }) => {
      if (reply.id !== id) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (reply.error) reject(new Error(reply.error));
      else resolve(reply.result as T);
    };
    const onExit = (code: number | null) => reject(new Error(`child exited with ${code}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ ...message, id });
  });
}

/** A free loopback port, from the kernel. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** CPU seconds used so far by a process (utime + stime), or by every PostgreSQL process together; 0 where /proc is missing. */
async function cpuSeconds(of: number | 'postgres'): Promise<number> {
  const { readFile, readdir } = await import('node:fs/promises');
  const ticksPerSecond = 100; // USER_HZ on Linux
  const ofPid = async (pid: number | string) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat; after "pid (comm) " the state (field 3) is at 0.
    return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: (Number(afterName[11] ?? 0) + Number(afterName[12] ?? 0)) / ticksPerSecond };
  };
  if (of !== 'postgres') return (await ofPid(of)).seconds;
  const pids = (await readdir('/proc').catch(() => [])).filter((entry) => /^\d+$/.test(entry));
  const all = await Promise.all(pids.map(ofPid));
  return all.filter((process) => process.name === 'postgres').reduce((sum, process) => sum + process.seconds, 0);
}

/** CPU used by a process and by PostgreSQL from now on, per item of work done meanwhile (in ms); undefined without a process. */
export async function startCpuMeter(pid: number | undefined): Promise<{ perItem(items: number): Promise<{ service: number; postgres: number } | undefined> }> {
  const before = pid ? { service: await cpuSeconds(pid), postgres: await cpuSeconds('postgres') } : undefined;
  return {
    async perItem(items) {
      if (!before || !pid || items === 0) return undefined;
      return {
        service: ((await cpuSeconds(pid)) - before.service) * 1000 / items,
        postgres: ((await cpuSeconds('postgres')) - before.postgres) * 1000 / items,
      };
    },
  };
}
