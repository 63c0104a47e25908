// postgres.js has no deadline on waiting for a connection: while every pooled connection is held
// (statements waiting on a lock) or reconnecting (the server is down), a query queues — pipelined
// behind a blocked statement, or handed over one per reconnect attempt — for seconds. The gate lets
// at most pool-size statements and transactions into the driver, so none queues there; a caller
// that cannot get in within the deadline fails with POOL_WAIT_TIMEOUT (a busy pool is left to the
// availability probe to shed). And once most recent calls found the database unreachable, further
// calls fail at once (EOPENBREAKER) instead of queueing for a connection that cannot be made,
// until a trial call gets through again. Both are answered 503.
import { Semaphore, withTimeout, type SemaphoreInterface } from 'async-mutex';
import CircuitBreaker from 'opossum';
import type { Sql } from 'postgres';
import { deferredQuery } from './deferred-query.js';

export const poolWaitTimeoutCode = 'POOL_WAIT_TIMEOUT';
export const databaseUnreachableCode = 'EOPENBREAKER';

class PoolWaitTimeout extends Error {
  readonly code = poolWaitTimeoutCode;
  constructor(waitMs: number) {
    super(`no database connection came free within ${waitMs} ms`);
  }
}

class DatabaseUnreachable extends Error {
  readonly code = databaseUnreachableCode;
  constructor() {
    super('the database was found unreachable; not tried');
  }
}

export interface GateOptions {
  /** Calls let into the driver at once: the pool size. */
  slots: number;
  /** How long a call may wait for a slot. */
  waitMs: number;
  /** How long calls fail at once after the database was found unreachable, before a trial call. */
  failFastMs: number;
  /** Whether an error says the database (not the statement, nor a busy pool) is unreachable. */
  isUnreachable: (error: unknown) => boolean;
  /** Told how long each admitted call waited for its slot (metrics). */
  onWait?: (seconds: number) => void;
}

type Admit = <R>(work: () => Promise<R>) => Promise<R>;

function admission(options: GateOptions): Admit {
  const slots = new Semaphore(options.slots, new DatabaseUnreachable());
  const gate: SemaphoreInterface = withTimeout(slots, options.waitMs, new PoolWaitTimeout(options.waitMs));
  const admitted = (work: () => Promise<unknown>) => {
    const queuedAt = performance.now();
    return gate.runExclusive(() => {
      options.onWait?.((performance.now() - queuedAt) / 1000);
      return work();
    });
  };
  const breaker = new CircuitBreaker(admitted, {
    // A call is never abandoned while it runs: a transaction cut off by a timer here could still commit.
    timeout: false,
    resetTimeout: options.failFastMs,
    errorThresholdPercentage: 50,
    // A lone lost connection among many calls does not trip it; an outage fails every call.
    // The window is short, so that the calls that succeeded before an outage soon stop outvoting it.
    volumeThreshold: 5,
    rollingCountTimeout: 500,
    rollingCountBuckets: 5,
    // Only unavailability counts; a constraint violation or a conflict is the statement's own.
    errorFilter: (error: unknown) => !options.isUnreachable(error),
  });
  // Callers already waiting for a slot would only wait for the same unreachable database.
  breaker.on('open', () => slots.cancel());
  return (work) => breaker.fire(work) as Promise<never>;
}

/**
 * The client with its top-level statements and transactions admitted through the gate; the
 * statements inside a transaction run on the connection it already holds and are not gated.
 */
export function gatingConnections<T extends Sql>(client: T, options: GateOptions): T {
  const admit = admission(options);
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'begin') {
        return (...args: unknown[]) => admit(async () => (Reflect.get(target, property, receiver) as (...all: unknown[]) => unknown).apply(target, args));
      }
      if (property === 'unsafe') {
        return (...args: Parameters<Sql['unsafe']>) =>
          deferredQuery((asValues) => admit(async () => (asValues ? await target.unsafe(...args).values() : await target.unsafe(...args))));
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}
