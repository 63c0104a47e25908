// Database failures that say nothing about the request itself: the database is away, busy or lost
// a conflict. The client is told 503 with Retry-After, never 500, since the same request may well
// succeed a moment later.
import { databaseUnreachableCode, poolWaitTimeoutCode } from './connection-gate.js';

interface DriverError {
  code?: unknown;
  routine?: unknown;
  cause?: unknown;
}

/**
 * SQLSTATEs a transaction may simply be run again after (serialization failure, deadlock), and
 * a prepared statement whose result type a migration changed under it (0A000 "cached plan must
 * not change result type", from PostgreSQL's RevalidateCachedQuery, e.g. during a rolling deploy):
 * postgres.js drops that statement from the connection's cache as it fails, so the transaction run
 * again prepares it afresh.
 */
const staleCachedPlan = '0A000:RevalidateCachedQuery';
const retryableConflicts = new Set(['40001', '40P01', staleCachedPlan]);

/** postgres.js and Node socket codes for a connection that could not be made or was lost, or not had in time (connection-gate.ts). */
const connectionFailures = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  poolWaitTimeoutCode,
  databaseUnreachableCode,
]);

/**
 * SQLSTATE classes and codes of a database that refuses sessions: 08 connection exception, 53
 * insufficient resources (too many connections, out of memory), 57P01–57P03 shutting down or
 * starting up.
 */
function isRefusingState(code: string): boolean {
  return code.startsWith('08') || code.startsWith('53') || ['57P01', '57P02', '57P03'].includes(code);
}

/**
 * SQLSTATEs of an unavailable database: one refusing sessions, or a statement that ran out of time
 * (57014 statement timeout, 55P03 lock not available).
 */
function isUnavailableState(code: string): boolean {
  return isRefusingState(code) || ['57014', '55P03'].includes(code);
}

/** The driver codes of an error and its causes (drizzle wraps the driver's error as its cause). */
function codesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let current = error as DriverError | undefined, depth = 0; current && depth < 4; current = current.cause as DriverError, depth++) {
    if (typeof current.code !== 'string') continue;
    // 0A000 is "feature not supported" in general; only the stale-plan case is transient.
    codes.push(current.code === '0A000' && current.routine === 'RevalidateCachedQuery' ? staleCachedPlan : current.code);
  }
  return codes;
}

export function isRetryableConflict(error: unknown): boolean {
  return codesOf(error).some((code) => retryableConflicts.has(code));
}

/**
 * Whether the error says the database cannot be reached or is refusing sessions (not that one
 * statement failed, nor that the pool was busy: a burst waiting for connections is not an outage).
 */
export function isDatabaseUnreachable(error: unknown): boolean {
  return codesOf(error).some(
    (code) => (connectionFailures.has(code) && code !== poolWaitTimeoutCode) || isRefusingState(code),
  );
}

/** The code that makes the error transient, if it is: the request may succeed when retried later. */
export function transientDatabaseCode(error: unknown): string | undefined {
  return codesOf(error).find((code) => connectionFailures.has(code) || isUnavailableState(code) || retryableConflicts.has(code));
}
