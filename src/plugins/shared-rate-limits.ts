// Rate-limit counts shared by every process through Redis (@fastify/rate-limit's own Redis store
// and Lua script), falling back to this process's own counts while Redis cannot be reached: limits
// then hold per process (each allows the limit), but the service keeps serving.
import { createRequire } from 'node:module';
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyRateLimitOptions, FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Redis } from 'ioredis';

// The plugin's two stores are not in its exports map's types; both take (continueExceeding, exponentialBackoff, …).
const require = createRequire(import.meta.url);
type StoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, ...rest: unknown[]) => FastifyRateLimitStore;
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as StoreCtor;
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as StoreCtor;

export type RateLimitScope = 'shared' | 'per-process';

const restAfterFailureMs = 1_000;

/** Where the counts are kept right now, and a log line each time that changes. */
export class RateLimitScopeWatch {
  private current: RateLimitScope;

  constructor(
    private readonly redis: Redis,
    private readonly log: FastifyBaseLogger,
  ) {
    // What REDIS_URL asks for; the first failure to connect logs the fallback.
    this.current = 'shared';
    redis.on('ready', () => this.become('shared'));
    redis.on('end', () => this.become('per-process'));
    redis.on('close', () => this.become('per-process'));
    // ioredis emits every failed (re)connection; the change of scope is what an operator needs to see.
    redis.on('error', () => this.become('per-process'));
  }

  get scope(): RateLimitScope {
    return this.redis.status === 'ready' && !this.resting() ? this.current : 'per-process';
  }

  /**
   * A command failed (or timed out) while the connection looked up: a Redis that hangs would
   * otherwise cost every request the command timeout. Counts stay in this process for a second.
   */
  failed(error: unknown): void {
    const wasShared = this.scope === 'shared';
    this.restUntil = Date.now() + restAfterFailureMs;
    if (wasShared) this.log.warn({ err: error }, 'a rate-limit count in Redis failed: rate limits fall back to per-process counts for a while');
  }

  /** Whether Redis is being left alone after a failed command. */
  resting(): boolean {
    return Date.now() < this.restUntil;
  }

  private restUntil = 0;

  private become(scope: RateLimitScope): void {
    if (scope === this.current) return;
    this.current = scope;
    if (scope === 'shared') this.log.info('Redis reachable: rate limits are shared by every process again');
    else this.log.warn('Redis unreachable: rate limits fall back to per-process counts until it is back');
  }
}

/** A store for @fastify/rate-limit: Redis while it answers, this process's memory otherwise. */
export function sharedOrLocalStore(redis: Redis, watch: RateLimitScopeWatch, keyPrefix: string): FastifyRateLimitStoreCtor {
  class SharedOrLocalStore implements FastifyRateLimitStore {
    constructor(
      private readonly shared: FastifyRateLimitStore,
      private readonly local: FastifyRateLimitStore,
    ) {}

    static fromOptions(options: FastifyRateLimitOptions & { continueExceeding?: boolean; exponentialBackoff?: boolean; cache?: number }) {
      const continueExceeding = options.continueExceeding ?? false;
      const exponentialBackoff = options.exponentialBackoff ?? false;
      return new SharedOrLocalStore(
        new RedisStore(continueExceeding, exponentialBackoff, redis, `${keyPrefix}rate-limit:`),
        new LocalStore(continueExceeding, exponentialBackoff, options.cache),
      );
    }

    incr(key: string, callback: Parameters<FastifyRateLimitStore['incr']>[1], timeWindow: number, max: number): void {
      if (redis.status !== 'ready' || watch.resting()) {
        this.local.incr(key, callback, timeWindow, max);
        return;
      }
      this.shared.incr(
        key,
        (error, result) => {
          if (!error) return callback(null, result);
          watch.failed(error);
          this.local.incr(key, callback, timeWindow, max);
        },
        timeWindow,
        max,
      );
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      return new SharedOrLocalStore(this.shared.child(routeOptions), this.local.child(routeOptions));
    }
  }
  // @fastify/rate-limit constructs the store with its global options.
  return function SharedOrLocal(options: FastifyRateLimitOptions) {
    return SharedOrLocalStore.fromOptions(options);
  } as unknown as FastifyRateLimitStoreCtor;
}
