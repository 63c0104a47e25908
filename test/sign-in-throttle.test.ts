// The sign-in throttle through the HTTP API (issue 12, item 2): known and unknown emails answer
// alike, attempts are counted before the password is checked, and throttling is per email from one
// client address under a much higher per-email ceiling, so nobody elsewhere can lock a user out.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { signInThrottle } from '../src/db/schema.js';
import { auditEvents, buildTestApp, createOffice, defaultPassword, TestApp, type Json } from './helper.js';

type Response = Awaited<ReturnType<TestApp['request']>>;

const wrongPassword = 'not-the-password-at-all';
const incorrect = 'The email or password is incorrect';

const passwordGrant = (app: TestApp, username: string, password: string, remoteAddress = '127.0.0.1', headers: Record<string, string> = {}) =>
  app.request({ method: 'POST', url: '/v1/auth/token', remoteAddress, headers, payload: { grant_type: 'password', username, password } });

/** A fresh account, so each test's counts start at zero. */
async function newAccount(app: TestApp): Promise<{ id: string; email: string }> {
  const adminToken = await app.loginAsAdmin();
  const office = await createOffice(app, adminToken);
  const email = `throttle.${randomUUID().slice(0, 8)}@office.example`;
  const user = await app.create(`/v1/organizations/${office.id}/users`, office.admin.token, { role: 'office_staff', email, password: defaultPassword, name: 'Throttle test user' });
  return { id: user.id, email };
}

/** A refusal's body, for the failure message; a success's carries tokens, which stay out of the test log. */
const bodyIfRefused = (response: Response) => (response.statusCode === 200 ? '' : `: ${response.body}`);

const unknownEmail = () => `nobody.${randomUUID().slice(0, 8)}@nowhere.example`;

/** Refused by the throttle (the password was not checked), as opposed to a checked wrong password. */
const isThrottled = (response: Response) =>
  response.statusCode === 400 && response.json().error === 'invalid_grant' && response.headers['retry-after'] !== undefined && response.json().detail !== incorrect;

const isCheckedFailure = (response: Response) =>
  response.statusCode === 400 && response.json().detail === incorrect && response.headers['retry-after'] === undefined;

/** What a response tells a caller, minus what differs on every request. */
function observable(response: Response) {
  const { requestId: _requestId, instance: _instance, ...body } = response.json();
  return { status: response.statusCode, body, headerNames: Object.keys(response.headers).sort() };
}

function assertAlike(t: Test, known: Response, unknown: Response, label: string) {
  t.same(observable(unknown), observable(known), `${label}: same status, body and header names`);
  const [a, b] = [known.headers['retry-after'], unknown.headers['retry-after']];
  if (a === undefined || b === undefined) t.equal(b, a, `${label}: Retry-After on both or neither`);
  // Seconds left in a window, rounded up: two windows opened a few milliseconds apart may straddle a second.
  else t.ok(Math.abs(Number(a) - Number(b)) <= 1, `${label}: Retry-After ${a} and ${b} agree`);
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

// ---------------------------------------------------------------------------------------------
// Three attempts per email from one address, eight per email from all addresses together.

const maxFailures = 3;
const accountMaxFailures = 8;
const app = await buildTestApp(t, { env: { LOGIN_MAX_FAILURES: String(maxFailures), LOGIN_ACCOUNT_MAX_FAILURES: String(accountMaxFailures) } });

t.test('POST /v1/auth/token › known and unknown emails answer alike, before and after the limit', async (t) => {
  const known = await newAccount(app);
  const unknown = unknownEmail();
  const address = '203.0.113.10';
  const requestIds: { known: string[]; unknown: string[] } = { known: [], unknown: [] };
  const attempt = async (kind: 'known' | 'unknown', password: string) => {
    const requestId = randomUUID();
    requestIds[kind].push(requestId);
    return passwordGrant(app, kind === 'known' ? known.email : unknown, password, address, { 'x-request-id': requestId });
  };

  for (let n = 1; n <= maxFailures + 2; n++) {
    const fromKnown = await attempt('known', wrongPassword);
    const fromUnknown = await attempt('unknown', wrongPassword);
    assertAlike(t, fromKnown, fromUnknown, `wrong password ${n}`);
    if (n <= maxFailures) t.ok(isCheckedFailure(fromKnown), `attempt ${n}: checked and refused as incorrect`);
    else t.ok(isThrottled(fromKnown), `attempt ${n}: refused without a check, with Retry-After ${fromKnown.headers['retry-after']}`);
  }
  const rightForKnown = await attempt('known', defaultPassword);
  const sameForUnknown = await attempt('unknown', defaultPassword);
  assertAlike(t, rightForKnown, sameForUnknown, 'the right password once over the limit');
  t.ok(isThrottled(rightForKnown), 'the right password is refused while the address is over the limit');
  t.equal(rightForKnown.json().error, 'invalid_grant', 'keeps the OAuth error shape');

  const failed = await auditEvents(app, { action: 'auth.login_failed' });
  for (const kind of ['known', 'unknown'] as const) {
    const audited = requestIds[kind].map((id) => failed.filter((row) => row.requestId === id));
    t.ok(audited.every((rows) => rows.length === 1), `every ${kind}-email attempt is audited once as auth.login_failed`);
    if (kind === 'known') t.ok(audited.every((rows) => rows[0]?.resourceId === known.id), 'against the account, refused or not');
  }
});

t.test('POST /v1/auth/token › 20 concurrent wrong passwords: only the limit is checked, then the right password is refused', async (t) => {
  const account = await newAccount(app);
  const address = '203.0.113.20';
  const responses = await Promise.all(Array.from({ length: 20 }, () => passwordGrant(app, account.email, wrongPassword, address)));
  const checked = responses.filter(isCheckedFailure).length;
  const throttled = responses.filter(isThrottled).length;
  t.equal(checked, maxFailures, `${checked} of 20 were checked: exactly LOGIN_MAX_FAILURES`);
  t.equal(throttled, 20 - maxFailures, `the other ${throttled} were refused as throttled`);

  const right = await passwordGrant(app, account.email, defaultPassword, address);
  t.ok(isThrottled(right), `the right password afterwards is refused: ${right.body}`);
  t.equal((await auditEvents(app, { action: 'auth.login_failed', resourceId: account.id })).length, 21, 'all 21 failures are audited');
});

t.test('POST /v1/auth/token › a user throttled from one address signs in from another', async (t) => {
  t.test('IPv4', async (t) => {
    const account = await newAccount(app);
    for (let n = 0; n < maxFailures + 2; n++) await passwordGrant(app, account.email, wrongPassword, '203.0.113.30');
    t.ok(isThrottled(await passwordGrant(app, account.email, defaultPassword, '203.0.113.30')), "the attacker's address is refused");
    t.ok(isThrottled(await passwordGrant(app, account.email, defaultPassword, '::ffff:203.0.113.30')), 'also written as IPv4-mapped IPv6');
    const elsewhere = await passwordGrant(app, account.email, defaultPassword, '198.51.100.30');
    t.equal(elsewhere.statusCode, 200, `the user's own address signs in${bodyIfRefused(elsewhere)}`);
  });

  t.test('IPv6 clients are counted by their /64', async (t) => {
    const account = await newAccount(app);
    for (let n = 0; n < maxFailures; n++) await passwordGrant(app, account.email, wrongPassword, `2001:db8:30:1::${n + 1}`);
    t.ok(isThrottled(await passwordGrant(app, account.email, defaultPassword, '2001:db8:30:1::ffff')), 'another address in the same /64 is refused');
    t.equal((await passwordGrant(app, account.email, defaultPassword, '2001:db8:30:2::1')).statusCode, 200, 'another /64 signs in');
  });
});

t.test('POST /v1/auth/token › the per-email ceiling', async (t) => {
  t.test('once reached, every address is refused, for known and unknown emails alike', async (t) => {
    const known = await newAccount(app);
    const unknown = unknownEmail();
    const outcomes = (response: Response) => (isCheckedFailure(response) ? 'checked' : isThrottled(response) ? 'throttled' : `other ${response.statusCode}`);
    const seen: string[] = [];
    // Three addresses, three attempts each: the ninth attempt overall is one past the ceiling of eight.
    for (const address of ['192.0.2.41', '192.0.2.42', '192.0.2.43']) {
      for (let n = 0; n < maxFailures; n++) {
        const fromKnown = await passwordGrant(app, known.email, wrongPassword, address);
        assertAlike(t, fromKnown, await passwordGrant(app, unknown, wrongPassword, address), `${address} attempt ${n + 1}`);
        seen.push(outcomes(fromKnown));
      }
    }
    t.same(seen, [...Array(accountMaxFailures).fill('checked'), 'throttled'], 'eight checked, the ninth refused');

    const fresh = await passwordGrant(app, known.email, defaultPassword, '192.0.2.99');
    t.ok(isThrottled(fresh), `the right password from a new address is refused: ${fresh.body}`);
    assertAlike(t, fresh, await passwordGrant(app, unknown, defaultPassword, '192.0.2.99'), 'a new address');
  });

  t.test('attempts refused for one address do not count toward it: one address alone cannot lock a user out', async (t) => {
    const account = await newAccount(app);
    const responses: Response[] = [];
    for (let n = 0; n < 3 * accountMaxFailures; n++) responses.push(await passwordGrant(app, account.email, wrongPassword, '192.0.2.50'));
    t.equal(responses.filter(isCheckedFailure).length, maxFailures, 'the attacking address has its few checks');
    const user = await passwordGrant(app, account.email, defaultPassword, '198.51.100.50');
    t.equal(user.statusCode, 200, `the user signs in from their own address${bodyIfRefused(user)}`);
  });

  t.test('successful sign-ins do not count toward it', async (t) => {
    const account = await newAccount(app);
    // Seven failures from three addresses: one short of the ceiling.
    for (const [address, failures] of [['192.0.2.61', 3], ['192.0.2.62', 3], ['192.0.2.63', 1]] as const) {
      for (let n = 0; n < failures; n++) t.ok(isCheckedFailure(await passwordGrant(app, account.email, wrongPassword, address)), `${address} failure`);
    }
    for (let n = 0; n < 3; n++) t.equal((await passwordGrant(app, account.email, defaultPassword, '198.51.100.60')).statusCode, 200, `sign-in ${n + 1}`);
    t.ok(isCheckedFailure(await passwordGrant(app, account.email, wrongPassword, '192.0.2.64')), 'the eighth failure is still checked');
    t.ok(isThrottled(await passwordGrant(app, account.email, wrongPassword, '192.0.2.65')), 'the ninth is refused');
  });
});

// ---------------------------------------------------------------------------------------------
// A slow-down that can be measured: each failure from an address waits twice as long as the last.

t.test('POST /v1/auth/token › the slow-down is the same for unknown emails as for known ones', async (t) => {
  const failureDelayMs = 100;
  const slow = await buildTestApp(t, { env: { LOGIN_MAX_FAILURES: '3', LOGIN_FAILURE_DELAY_MS: String(failureDelayMs) } });
  const known = await newAccount(slow);
  const unknown = unknownEmail();
  // Lower bounds only: a loaded machine can make an answer slower, never faster.
  for (let n = 1; n <= 3; n++) {
    const floor = failureDelayMs * 2 ** (n - 1);
    for (const [label, email] of [['known', known.email], ['unknown', unknown]] as const) {
      const { result, ms } = await timed(() => passwordGrant(slow, email, wrongPassword, '203.0.113.70'));
      t.ok(isCheckedFailure(result), `${label} failure ${n} refused as incorrect`);
      t.ok(ms >= floor, `${label} failure ${n} took ${ms.toFixed(0)} ms ≥ ${floor} ms`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// A short window, and the production hash cost's neighbourhood so that hash work is visible in timings.

t.test('POST /v1/auth/token › with a short window', async (t) => {
  const lockoutSeconds = 2;
  const short = await buildTestApp(t, { env: { LOGIN_MAX_FAILURES: '2', LOGIN_LOCKOUT_SECONDS: String(lockoutSeconds), PASSWORD_HASH_COST: '14' } });
  const account = await newAccount(short);

  t.test('once the window has passed, the user signs in again', async (t) => {
    for (let n = 0; n < 2; n++) t.ok(isCheckedFailure(await passwordGrant(short, account.email, wrongPassword, '203.0.113.80')), `failure ${n + 1}`);
    const refused = await passwordGrant(short, account.email, defaultPassword, '203.0.113.80');
    t.ok(isThrottled(refused), 'refused within the window');
    const retryAfter = Number(refused.headers['retry-after']);
    t.ok(retryAfter >= 1 && retryAfter <= lockoutSeconds, `Retry-After ${retryAfter} within the window of ${lockoutSeconds} s`);
    await sleep(retryAfter * 1000 + 100);
    const after = await passwordGrant(short, account.email, defaultPassword, '203.0.113.80');
    t.equal(after.statusCode, 200, `signs in once Retry-After has passed${bodyIfRefused(after)}`);
  });

  t.test('a wrong password takes as long for an unknown email as for a known one (medians, generous bound)', async (t) => {
    const unknown = unknownEmail();
    const times: { known: number[]; unknown: number[] } = { known: [], unknown: [] };
    for (let round = 0; round < 7; round++) {
      // A fresh address each round: every attempt is a first failure, without slow-down; the order alternates.
      const address = `198.51.100.${100 + round}`;
      const order = round % 2 === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
      for (const kind of order) {
        const { result, ms } = await timed(() => passwordGrant(short, kind === 'known' ? account.email : unknown, wrongPassword, address));
        t.ok(isCheckedFailure(result), `${kind}, round ${round + 1}`);
        times[kind].push(ms);
      }
    }
    const [known, unknownMedian] = [median(times.known), median(times.unknown)];
    t.comment(`median known ${known.toFixed(1)} ms, unknown ${unknownMedian.toFixed(1)} ms`);
    // An unknown email skipping the hash would take a fraction of the time; noise on a busy machine stays well inside 2×.
    t.ok(unknownMedian <= 2 * known + 20 && known <= 2 * unknownMedian + 20, 'each median within twice the other (+20 ms)');
  });

  t.test('rows whose window has passed are purged, and no row holds the email typed', async (t) => {
    const email = unknownEmail();
    await passwordGrant(short, email, wrongPassword, '203.0.113.90');
    const keys = (await short.app.db.select({ key: signInThrottle.key }).from(signInThrottle)).map((row) => row.key as string);
    t.ok(keys.length >= 2, `${keys.length} rows before the purge`);
    t.notOk(keys.some((key) => key.includes('@') || key.includes('203.0.113')), 'keys are hashes, never the email or address');

    // Past every window and the purge interval (the window, when shorter than a minute).
    await sleep(lockoutSeconds * 1000 + 500);
    await passwordGrant(short, unknownEmail(), wrongPassword, '203.0.113.91');
    const left = await short.app.db.select({ key: signInThrottle.key, failures: signInThrottle.failures }).from(signInThrottle);
    t.same(left.map((row: Json) => row.failures), [1, 1], 'only the two counts of the last attempt are left');
  });
});
