// Issue 17: with REDIS_URL, rate-limit counts are shared by every process; while Redis cannot be
// reached the service keeps serving, counts per process, and says so in its logs and readiness.
import { createServer } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

import t from 'tap';
import { captureLog } from './fixtures/captured-log.js';
import { isolatedPrefix, redisAnswers, redisHost, redisPort, redisUrl } from './fixtures/redis.js';
import { startTcpRelay } from './fixtures/tcp-relay.js';
import { buildTestApp, type TestApp } from './helper.js';

const tokenRequest = (test: TestApp) =>
  test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: 'nobody@example.test', password: 'wrong-password-1' } });

const anonymousRequest = (test: TestApp, remoteAddress: string) =>
  test.request({ method: 'GET', url: '/v1/referrals', headers: { authorization: 'Bearer not-a-token' }, remoteAddress });

async function readiness(test: TestApp): Promise<string | undefined> {
  const response = await test.request({ method: 'GET', url: '/health/ready' });
  return response.json().details?.rateLimits;
}

async function waitFor(condition: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A relay in front of Redis that the test can cut, restore or freeze. */
async function redisRelay(t: { teardown: (fn: () => unknown) => void }) {
  const relay = await startTcpRelay(t, redisHost, redisPort);
  return { ...relay, url: () => `redis://127.0.0.1:${relay.port()}` };
}

function defineTests() {
  t.test('two processes share the token limit and the per-caller limit through Redis', async (t) => {
    const env = { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: isolatedPrefix(), TOKEN_RATE_LIMIT_PER_MINUTE: '30', RATE_LIMIT_PER_MINUTE: '20' };
    const first = await buildTestApp(t, { env });
    const second = await buildTestApp(t, { env });
    await waitFor(async () => (await readiness(first)) === 'shared' && (await readiness(second)) === 'shared', 'both to reach Redis');

    const tokenStatuses: number[] = [];
    for (let i = 0; i < 80; i++) tokenStatuses.push((await tokenRequest(i % 2 === 0 ? first : second)).statusCode);
    t.equal(tokenStatuses.filter((status) => status !== 429).length, 30, 'of 80 token requests through two processes, 30 pass a limit of 30');
    t.same(tokenStatuses.slice(30), Array(50).fill(429), 'every one after the 30th is refused, whichever process takes it');

    const callerStatuses: number[] = [];
    for (let i = 0; i < 80; i++) callerStatuses.push((await anonymousRequest(i % 2 === 0 ? first : second, '198.51.100.7')).statusCode);
    t.equal(callerStatuses.filter((status) => status !== 429).length, 20, 'of 80 requests of one caller through two processes, 20 pass a limit of 20');
    const refused = await anonymousRequest(second, '198.51.100.7');
    t.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8', 'the refusal is a problem document');
    t.match(refused.headers['retry-after'], /^\d+$/, 'with Retry-After');
    t.equal(refused.headers['x-ratelimit-remaining'], '0');
  });

  t.test('Redis unreachable from the start: the service serves, counts per process, and says so', async (t) => {
    const log = captureLog();
    // A port nothing listens on.
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));

    const test = await buildTestApp(t, {
      env: { REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: isolatedPrefix(), RATE_LIMIT_PER_MINUTE: '20', LOG_LEVEL: 'info' },
      logger: log.logger,
    });
    const began = performance.now();
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await anonymousRequest(test, '198.51.100.8')).statusCode);
    t.same(statuses, [...Array(20).fill(401), ...Array(5).fill(429)], 'the limit still holds, counted in this process');
    t.ok(performance.now() - began < 5_000, 'no request waits for Redis');
    t.equal(await readiness(test), 'per-process', 'readiness details say the limits are per process');
    t.equal((await test.request({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'and the service is ready: Redis is not needed to serve');
    await waitFor(async () => log.entries().some((line) => String(line.msg).includes('rate limits fall back to per-process')), 'the fallback to be logged');
    t.pass('the fallback is logged');
  });

  t.test('Redis hung (connected, never answering): one request waits the command timeout, the rest do not', async (t) => {
    const log = captureLog();
    const relay = await redisRelay(t);
    const test = await buildTestApp(t, { env: { REDIS_URL: relay.url(), REDIS_KEY_PREFIX: isolatedPrefix(), RATE_LIMIT_PER_MINUTE: '1000', LOG_LEVEL: 'info' }, logger: log.logger });
    await waitFor(async () => (await readiness(test)) === 'shared', 'Redis to be reached');
    relay.freeze(true);
    const began = performance.now();
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await anonymousRequest(test, '198.51.100.10')).statusCode);
    const elapsed = performance.now() - began;
    t.same(statuses, Array(20).fill(401), 'all answered');
    t.ok(elapsed < 2_000, `20 requests in ${Math.round(elapsed)} ms: not 20 command timeouts of 250 ms`);
    t.equal(await readiness(test), 'per-process', 'readiness says the counts are per process meanwhile');
    t.ok(log.entries().some((line) => line.level === 40 && String(line.msg).includes('rate limits fall back to per-process')), 'a warning says so');
    relay.freeze(false);
  });

  t.test('Redis lost and back: limits fall back to the process, then are shared again', async (t) => {
    const log = captureLog();
    const relay = await redisRelay(t);
    const env = { REDIS_URL: relay.url(), REDIS_KEY_PREFIX: isolatedPrefix(), RATE_LIMIT_PER_MINUTE: '1000', LOG_LEVEL: 'info' };
    const test = await buildTestApp(t, { env, logger: log.logger });
    await waitFor(async () => (await readiness(test)) === 'shared', 'Redis to be reached');

    await relay.cut();
    const during: number[] = [];
    for (let i = 0; i < 20; i++) during.push((await anonymousRequest(test, '198.51.100.9')).statusCode);
    t.same(during, Array(20).fill(401), 'every request is still answered (401: no valid token), none with 500 or 503');
    await waitFor(async () => (await readiness(test)) === 'per-process', 'readiness to report per-process counts');
    t.ok(log.entries().some((line) => line.level === 40 && String(line.msg).includes('rate limits fall back to per-process')), 'a warning says the limits fell back');

    await relay.restore();
    await waitFor(async () => (await readiness(test)) === 'shared', 'the limits to be shared again', 10_000);
    t.ok(log.entries().some((line) => String(line.msg).includes('rate limits are shared by every process again')), 'and the recovery is logged');
  });
}

if (!(await redisAnswers()) && !process.env.CI) {
  t.plan(0, `no Redis server at ${redisUrl} (TEST_REDIS_URL): the shared rate-limit tests need one`);
} else {
  defineTests();
}
