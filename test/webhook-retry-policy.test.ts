// The webhook retry and disable policy (SPEC §8) as pure rules: no app, no database, no receiver.
import t from 'tap';
import { disableReason, goneError, judgeAnswer, maxRetryAfterSeconds, nextDelaySeconds, parseRetryAfter } from '../src/modules/webhooks/retry-policy.js';

const schedule = [0, 60, 120];
const now = Date.parse('2026-03-01T12:00:00Z');
const answer = (statusCode: number | null, headers: Record<string, string> = {}, error: string | null = null) => ({ statusCode, headers, error });

t.test('nextDelaySeconds › the schedule step after the attempts made, with ±10% jitter', async (t) => {
  t.equal(nextDelaySeconds(schedule, 1, undefined, () => 0.5), 60, 'the middle of the jitter is the step itself');
  t.equal(nextDelaySeconds(schedule, 1, undefined, () => 0), 54, 'at least 90% of the step');
  t.ok(Math.abs(nextDelaySeconds(schedule, 2, undefined, () => 1)! - 132) < 1e-9, 'at most 110% of the step');
  for (let i = 0; i < 200; i++) {
    const delay = nextDelaySeconds(schedule, 1, undefined)!;
    if (delay < 54 || delay > 66) return t.fail(`a delay of ${delay} s is outside 60 s ± 10%`);
  }
  t.pass('random jitter stays within ±10%');
  t.equal(nextDelaySeconds(schedule, 3, undefined), undefined, 'none once the schedule has run out');
  t.equal(nextDelaySeconds(schedule, 4, 30), undefined, 'a Retry-After does not extend the schedule');
});

t.test('nextDelaySeconds › a Retry-After longer than the step wins, capped at a day; a shorter one does not shorten it', async (t) => {
  t.equal(nextDelaySeconds(schedule, 1, 120, () => 0.5), 120);
  t.equal(nextDelaySeconds(schedule, 1, 10, () => 0.5), 60);
  t.equal(nextDelaySeconds(schedule, 1, 10 * maxRetryAfterSeconds, () => 0.5), maxRetryAfterSeconds);
  t.equal(maxRetryAfterSeconds, 86_400);
});

t.test('parseRetryAfter › seconds or an HTTP date, anything else ignored', async (t) => {
  t.equal(parseRetryAfter('120'), 120);
  t.equal(parseRetryAfter(' 7 '), 7, 'surrounding spaces are tolerated');
  t.equal(parseRetryAfter(['30', '90']), 30, 'the first of repeated headers');
  t.equal(parseRetryAfter(new Date(now + 200_000).toUTCString(), now), 200, 'a date: the seconds until it');
  t.equal(parseRetryAfter(new Date(now - 60_000).toUTCString(), now), 0, 'a date in the past: at once');
  t.equal(parseRetryAfter(undefined), undefined);
  t.equal(parseRetryAfter(''), undefined);
  t.equal(parseRetryAfter('soon'), undefined);
});

t.test('judgeAnswer › any 2xx delivers', async (t) => {
  for (const status of [200, 201, 202, 204, 299]) {
    t.same(judgeAnswer(answer(status), { schedule, attemptsMade: 1, now }), { status: 'succeeded', error: null }, `${status}`);
  }
  t.same(judgeAnswer(answer(200), { schedule, attemptsMade: 3, now }), { status: 'succeeded', error: null }, 'also on the last attempt');
});

t.test('judgeAnswer › 410 Gone gives up at once and disables the endpoint, whatever the schedule', async (t) => {
  t.same(judgeAnswer(answer(410), { schedule, attemptsMade: 1, now }), { status: 'dead', error: goneError, disableEndpoint: goneError });
  t.match(goneError, /410/);
});

t.test('judgeAnswer › another answer, or none, is tried again on the schedule, then given up', async (t) => {
  const random = () => 0.5;
  t.same(judgeAnswer(answer(500), { schedule, attemptsMade: 1, now, random }), { status: 'pending', error: 'the receiver answered 500', nextAttemptAt: new Date(now + 60_000) });
  t.same(judgeAnswer(answer(302), { schedule, attemptsMade: 2, now, random }), { status: 'pending', error: 'the receiver answered 302', nextAttemptAt: new Date(now + 120_000) }, 'a redirect is a failure');
  t.same(judgeAnswer(answer(500), { schedule, attemptsMade: 3, now, random }), { status: 'dead', error: 'the receiver answered 500' }, 'dead after the last step');
  t.same(
    judgeAnswer(answer(null, {}, 'timed out after 300 ms'), { schedule, attemptsMade: 1, now, random }),
    { status: 'pending', error: 'timed out after 300 ms', nextAttemptAt: new Date(now + 60_000) },
    'no answer: its error is kept',
  );
  t.same(judgeAnswer(answer(null, {}, 'EBLOCKEDTARGET: x'), { schedule, attemptsMade: 3, now, random }), { status: 'dead', error: 'EBLOCKEDTARGET: x' });
  t.same(judgeAnswer(answer(500), { schedule: [0], attemptsMade: 1, now }), { status: 'dead', error: 'the receiver answered 500' }, 'a schedule of one attempt');
});

t.test('judgeAnswer › Retry-After counts on 429 and 503 only', async (t) => {
  const random = () => 0.5;
  t.same(judgeAnswer(answer(429, { 'retry-after': '120' }), { schedule, attemptsMade: 1, now, random }).nextAttemptAt, new Date(now + 120_000), '429');
  t.same(judgeAnswer(answer(503, { 'retry-after': new Date(now + 200_000).toUTCString() }), { schedule, attemptsMade: 1, now, random }).nextAttemptAt, new Date(now + 200_000), '503 with a date');
  t.same(judgeAnswer(answer(500, { 'retry-after': '120' }), { schedule, attemptsMade: 1, now, random }).nextAttemptAt, new Date(now + 60_000), 'ignored on a 500');
  t.same(judgeAnswer(answer(429, { 'retry-after': '120' }), { schedule, attemptsMade: 3, now, random }), { status: 'dead', error: 'the receiver answered 429' }, 'no retry past the schedule');
});

t.test('disableReason › a failing endpoint is disabled once it has failed for the period, or at once when told', async (t) => {
  const disableAfterSeconds = 3600;
  const since = (seconds: number) => new Date(now - seconds * 1000);
  t.equal(disableReason({ failingSince: since(0), now, disableAfterSeconds }), undefined, 'the first failure');
  t.equal(disableReason({ failingSince: since(3599), now, disableAfterSeconds }), undefined, 'not yet');
  t.equal(disableReason({ failingSince: since(3600), now, disableAfterSeconds }), 'no successful delivery for 3600 s', 'at the period');
  t.equal(disableReason({ failingSince: since(7200.4), now, disableAfterSeconds }), 'no successful delivery for 7200 s', 'seconds rounded');
  t.equal(disableReason({ failingSince: since(0), now, disableAfterSeconds, disableNow: goneError }), goneError, 'a reason given with the failure wins');
  t.equal(disableReason({ failingSince: since(7200), now, disableAfterSeconds, disableNow: goneError }), goneError);
});
