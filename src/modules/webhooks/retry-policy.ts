// What becomes of a delivery after an attempt (SPEC §8): delivered, tried again later, or given up;
// and when its endpoint is disabled. Pure rules over the receiver's answer and the clock, so they
// are tested without a database or a receiver.

/** A receiver's Retry-After is honoured up to a day: a longer one must not park a delivery for good. */
export const maxRetryAfterSeconds = 24 * 3600;

export const goneError = 'the receiver answered 410 Gone';

/** The receiver's answer to one attempt, as far as the policy needs it. */
export interface Answer {
  statusCode: number | null;
  headers: Record<string, string | string[] | undefined>;
  /** Why no answer came (refused, timed out, reset); null when the receiver answered. */
  error: string | null;
}

/** The delivery's state after an attempt, or after being refused without one. */
export interface Verdict {
  status: 'succeeded' | 'pending' | 'dead';
  error: string | null;
  nextAttemptAt?: Date;
  /** Set when the endpoint is to be disabled at once, with the reason its owners are told. */
  disableEndpoint?: string;
}

/** Seconds to wait before the next try: the schedule's step with ±10% jitter, or the receiver's Retry-After. */
export function nextDelaySeconds(schedule: number[], attemptsMade: number, retryAfter: number | undefined, random: () => number = Math.random): number | undefined {
  if (attemptsMade >= schedule.length) return undefined;
  const step = schedule[attemptsMade]!;
  // Jitter spreads the retries of many deliveries that failed together (a receiver back from an outage).
  const jittered = step * (0.9 + random() * 0.2);
  return retryAfter !== undefined ? Math.min(Math.max(retryAfter, jittered), maxRetryAfterSeconds) : jittered;
}

/** Retry-After as seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/**
 * The verdict on an answer: any 2xx delivers; 410 Gone gives up and disables the endpoint; anything
 * else is tried again on the schedule (`attemptsMade` counts this attempt), later if a 429 or 503
 * asks for it, and given up once the schedule has run out.
 */
export function judgeAnswer(
  answer: Answer,
  { schedule, attemptsMade, now = Date.now(), random = Math.random }: { schedule: number[]; attemptsMade: number; now?: number; random?: () => number },
): Verdict {
  const { statusCode } = answer;
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { status: 'succeeded', error: null };
  if (statusCode === 410) return { status: 'dead', error: goneError, disableEndpoint: goneError };
  const retryAfter = statusCode === 429 || statusCode === 503 ? parseRetryAfter(answer.headers['retry-after'], now) : undefined;
  const delay = nextDelaySeconds(schedule, attemptsMade, retryAfter, random);
  const error = answer.error ?? `the receiver answered ${statusCode}`;
  if (delay === undefined) return { status: 'dead', error };
  return { status: 'pending', error, nextAttemptAt: new Date(now + delay * 1000) };
}

/**
 * Why an endpoint that has just failed is disabled now, or undefined while it may go on failing:
 * a reason given with the failure (410 Gone), or failures without a success for too long.
 */
export function disableReason({ failingSince, now, disableAfterSeconds, disableNow }: { failingSince: Date; now: number; disableAfterSeconds: number; disableNow?: string | undefined }): string | undefined {
  if (disableNow !== undefined) return disableNow;
  const failingForSeconds = (now - failingSince.getTime()) / 1000;
  return failingForSeconds >= disableAfterSeconds ? `no successful delivery for ${Math.round(failingForSeconds)} s` : undefined;
}
