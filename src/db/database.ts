// Opens the embedded (PGlite) or server (PostgreSQL) database behind one drizzle type, and migrates it.
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tracer } from '@opentelemetry/api';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { gatingConnections } from './connection-gate.js';
import { preparingAll } from './prepared-statements.js';
import { limitingEachTransaction } from './transaction-settings.js';
import { tracingQueries } from './query-spans.js';
import * as schema from './schema.js';
import { isDatabaseUnreachable } from './transient-errors.js';
import { retryingTransactions } from './transaction-retry.js';
import { WakeUps } from './wake-ups.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction or the database itself: repositories accept either. */
export type Executor = Pick<Database, 'select' | 'selectDistinct' | 'insert' | 'update' | 'delete' | 'execute' | 'transaction'>;

export interface DatabaseHandle {
  db: Database;
  driver: 'pglite' | 'postgres';
  /** Runs a statement and returns its rows, hiding the drivers' different result shapes. */
  rows<T extends Record<string, unknown>>(query: ReturnType<typeof sql>): Promise<T[]>;
  migrationsApplied(): Promise<boolean>;
  /** A trivial query straight to the driver, past the connection gate: the availability probe. */
  ping(): Promise<void>;
  /** Applies pending migrations; safe when several processes start at once on PostgreSQL. */
  migrate(): Promise<void>;
  /** Calls onNotify on every NOTIFY of the channel (delivered at commit); returns the unsubscriber. */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  /** Calls the listener with each wait for a free connection, in seconds (PostgreSQL; the embedded database has no pool). */
  onPoolWait(listener: (seconds: number) => void): void;
  /** NOTIFYs sent once a transaction commits, coalesced (wake-ups.ts). */
  wakeUps: WakeUps;
  /** Embedded only: a snapshot of the data folder, e.g. a migrated template for tests. */
  dumpDataDir?: () => Promise<Blob>;
  close(): Promise<void>;
}

/** The rows of an `execute` result, inside a transaction too: postgres.js gives an array, PGlite `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : (result as { rows: T[] }).rows;
}

export const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url));
const migrationsTable = '__drizzle_migrations';
const migrationsSchema = 'drizzle';
// Any fixed 64-bit number: serialises migrations of API and worker processes starting together.
const migrationLockKey = 7_341_227_001;
const migrationConfig = { migrationsFolder, migrationsTable, migrationsSchema };
// Once the database was found unreachable, calls fail at once this long before one tries again:
// short, so that a false alarm costs little and a database back is noticed at once.
const failFastMs = 250;
// Reconnect soon after PostgreSQL comes back: the default backoff grows to 20 s, and a query
// given to a connection waiting out its backoff waits with it.
const reconnectBackoff = (attempts: number) => Math.min(0.05 * attempts, 0.25);

export interface OpenDatabaseOptions {
  /** postgres:// URL; without it the embedded database is opened in `dataDir` (or in memory with `memory://`). */
  databaseUrl?: string | undefined;
  /**
   * A direct connection to the same database, when `databaseUrl` goes through a transaction pooler
   * (PgBouncer's pool_mode = transaction): LISTEN and migrations use it, and nothing session-scoped
   * goes through the pooler (the statement timeout is set in each transaction instead).
   */
  directUrl?: string | undefined;
  /** Named prepared statements through `databaseUrl`: off behind a pooler that cannot keep them (PgBouncer before 1.21). */
  preparedStatements?: boolean;
  dataDir: string;
  poolSize?: number;
  /** PostgreSQL only: limits on opening a connection, waiting for one, and one statement (lock waits included). */
  timeouts?: { connectMs: number; poolWaitMs: number; statementMs: number };
  /** PostgreSQL only: spans of each statement and transaction (tracing on). */
  tracer?: Tracer | undefined;
  /** Embedded only: start from this dump of a data folder (made by dumpDataDir) instead of an empty one. */
  pgliteTemplate?: Blob | undefined;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const handle = options.databaseUrl
    ? await openPostgres({
        url: options.databaseUrl,
        directUrl: options.directUrl,
        preparedStatements: options.preparedStatements ?? true,
        poolSize: options.poolSize ?? 10,
        timeouts: options.timeouts,
        tracer: options.tracer,
      })
    : await openPglite(options.dataDir, options.pgliteTemplate);
  // A wake-up that fails is not retried: the listeners' own poll finds the work a moment later.
  const wakeUps = new WakeUps(
    async (channel) => {
      await handle.db.execute(sql`select pg_notify(${channel}, '')`);
    },
    () => {},
  );
  retryingTransactions(handle.db, wakeUps);
  return { ...handle, wakeUps };
}

async function openPostgres(options: {
  url: string;
  directUrl: string | undefined;
  preparedStatements: boolean;
  poolSize: number;
  timeouts: OpenDatabaseOptions['timeouts'];
  tracer: Tracer | undefined;
}): Promise<Omit<DatabaseHandle, 'wakeUps'>> {
  const { url, directUrl, preparedStatements, poolSize, timeouts, tracer } = options;
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  // Behind a transaction pooler a server connection is ours only from BEGIN to COMMIT: a setting
  // sent at connect would reach whichever server connection the pooler picked (PgBouncer refuses
  // it outright), so the statement timeout is set in each transaction instead.
  const pooled = directUrl !== undefined;
  const client = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    prepare: preparedStatements,
    // postgres.js sends statements behind one still running on a busy connection. Through
    // PgBouncer 1.18 in transaction mode that wedged connections for good after a PostgreSQL
    // restart: server connections in a transaction nobody continued, answers dropped ("got packet
    // from server when not linked"), every request hung (scale-out test; 2 runs of 4 without this,
    // none of 5 with it), and the bench's reads through the bouncer wedged without any restart.
    // Poolers are known to lose pipelined answers (porsager/postgres#970).
    // 0 sends nothing behind a running statement; the driver patch makes begin() work with it.
    ...(pooled ? { max_pipeline: 0 } : {}),
    ...(timeouts ? { connect_timeout: timeouts.connectMs / 1000 } : {}),
    backoff: reconnectBackoff,
    // Sent at connect, so every pooled connection carries the limit; a statement stuck behind a
    // lock gives its connection back instead of holding it until the lock holder is done.
    connection: pooled
      ? {}
      : {
          application_name: 'massage-referral-network',
          ...(timeouts ? { statement_timeout: timeouts.statementMs } : {}),
        },
  });
  const prepared = preparedStatements ? preparingAll(client) : client;
  const limited = pooled && timeouts ? limitingEachTransaction(prepared, timeouts.statementMs) : prepared;
  const waitListeners: ((seconds: number) => void)[] = [];
  const onWait = (seconds: number) => {
    for (const listener of waitListeners) listener(seconds);
  };
  const gated = timeouts ? gatingConnections(limited, { slots: poolSize, waitMs: timeouts.poolWaitMs, failFastMs, isUnreachable: isDatabaseUnreachable, onWait }) : limited;
  // Outermost, so that a statement's span includes its wait for a connection.
  const traced = tracer ? tracingQueries(gated, tracer) : gated;
  const db = drizzle(traced, { schema }) as unknown as Database;
  const rows = async <T,>(query: ReturnType<typeof sql>) => rowsOf<T>(await db.execute(query));
  // LISTEN holds a session: through a transaction pooler it would listen on a connection that
  // others then use, and hear nothing. One direct connection, opened with the first listener.
  let listenConnection: ReturnType<typeof postgres> | undefined;
  const listening = () => (listenConnection ??= pooled ? postgres(directUrl, { max: 1, onnotice: () => {}, backoff: reconnectBackoff }) : client);
  return {
    db,
    driver: 'postgres',
    rows: rows as DatabaseHandle['rows'],
    onPoolWait: (listener) => {
      waitListeners.push(listener);
    },
    migrationsApplied: () => migrationsApplied(rows),
    ping: async () => {
      await client`select 1`;
    },
    listen: async (channel, onNotify) => {
      const { unlisten } = await listening().listen(channel, () => onNotify());
      return unlisten;
    },
    migrate: async () => {
      const connection = postgres(directUrl ?? url, { max: 1, onnotice: () => {}, prepare: false });
      try {
        await drizzle(connection, { schema }).transaction((tx) => migrateUnderTransactionLock(tx));
      } finally {
        await connection.end({ timeout: 5 });
      }
    },
    close: async () => {
      await Promise.all([client.end({ timeout: 5 }), pooled && listenConnection?.end({ timeout: 5 })]);
    },
  };
}

/**
 * Processes starting together migrate one at a time: the whole of drizzle's migration (its check
 * of what is applied included) runs in one transaction that first takes an advisory lock. The lock
 * is the transaction's, so it cannot outlive the migration on a connection a pooler hands to
 * someone else, as a session's lock would. drizzle's migrator opens a transaction of its own on the
 * session it is given; given this one's, it runs in it.
 */
async function migrateUnderTransactionLock(tx: Executor & { execute: Database['execute'] }): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${migrationLockKey})`);
  const session = {
    execute: (query: ReturnType<typeof sql>) => tx.execute(query),
    all: async (query: ReturnType<typeof sql>) => rowsOf(await tx.execute(query)),
    transaction: (work: (inner: typeof tx) => Promise<unknown>) => work(tx),
  };
  const dialect = (tx as unknown as { dialect: { migrate: (migrations: unknown, session: unknown, config: unknown) => Promise<void> } }).dialect;
  await dialect.migrate(readMigrationFiles(migrationConfig), session, migrationConfig);
}

async function openPglite(dataDir: string, template: Blob | undefined): Promise<Omit<DatabaseHandle, 'wakeUps'>> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const onDisk = !dataDir.startsWith('memory://');
  if (onDisk) await keepPrivate(dataDir);
  const client = handingOverThroughTheEventLoop(await PGlite.create(dataDir, template ? { loadDataDir: template } : {}));
  // initdb and an unpacked template write their files with modes of their own, past the umask.
  if (onDisk) await keepPrivate(dataDir);
  const db = drizzle(client, { schema }) as unknown as Database;
  const rows = async <T,>(query: ReturnType<typeof sql>) => rowsOf<T>(await db.execute(query));
  return {
    db,
    driver: 'pglite',
    rows: rows as DatabaseHandle['rows'],
    onPoolWait: () => {},
    migrationsApplied: () => migrationsApplied(rows),
    ping: async () => {
      await client.query('select 1');
    },
    listen: async (channel, onNotify) => {
      const unsubscribe = await client.listen(channel, () => onNotify());
      return async () => {
        if (!client.closed) await unsubscribe();
      };
    },
    migrate: async () => {
      const { migrate } = await import('drizzle-orm/pglite/migrator');
      await migrate(drizzle(client, { schema }), migrationConfig);
    },
    dumpDataDir: () => client.dumpDataDir('none'),
    close: async () => {
      if (!client.closed) await client.close();
    },
  };
}

/**
 * PGlite runs each statement synchronously on this thread, and its statement lock hands the
 * database from one waiting statement to the next inside a promise callback: under load, one
 * unbroken run of microtasks, all of which Node runs before it accepts a connection or reads a
 * socket. Under 50 connections of creates, connections opened meanwhile were accepted about one per
 * 100 ms (the listen queue held 48 and took 3 s to empty), and their first request waited seconds:
 * p99 3.5 s against a p50 of 0.19 s. Each statement now starts on the next turn of the event loop,
 * once it holds the lock, so connections and requests are taken in between statements.
 */
function handingOverThroughTheEventLoop<T extends object>(client: T): T {
  // Every query and exec, and every statement of a transaction, runs under this lock.
  const statements = client as unknown as { _runExclusiveQuery?: <R>(work: () => Promise<R>) => Promise<R> };
  const hold = statements._runExclusiveQuery?.bind(client);
  if (!hold) throw new Error('PGlite no longer has _runExclusiveQuery: see handingOverThroughTheEventLoop in database.ts');
  statements._runExclusiveQuery = (work) =>
    hold(async () => {
      await nextTurn();
      return work();
    });
  return client;
}

/**
 * The data folder holds every patient's record (in its tables and WAL): only the service's own user
 * may read it, whatever the umask. PGlite creates its files through Node as it runs, so the process
 * keeps a private umask from here on; folders and files of an older, laxer start are tightened.
 */
async function keepPrivate(dataDir: string): Promise<void> {
  process.umask(0o077);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  for (const entry of await readdir(dataDir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) await chmod(path, 0o700);
    else if (entry.isFile()) await chmod(path, 0o600);
  }
}

async function migrationsApplied(
  rows: <T>(query: ReturnType<typeof sql>) => Promise<T[]>,
): Promise<boolean> {
  const expected = readMigrationFiles({ migrationsFolder });
  const [exists] = await rows<{ present: boolean }>(
    sql`select to_regclass(${`${migrationsSchema}.${migrationsTable}`}) is not null as present`,
  );
  if (!exists?.present) return false;
  const applied = await rows<{ hash: string }>(sql.raw(`select hash from ${migrationsSchema}.${migrationsTable}`));
  const appliedHashes = new Set(applied.map((row) => row.hash));
  return expected.every((migration) => appliedHashes.has(migration.hash));
}

