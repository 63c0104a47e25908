// The one place that reads the environment: every setting, its default and its validation.
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

const booleanFlag = (options: { default?: 'true' | 'false'; description: string }) => Type.Enum(['true', 'false'], options);

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'HTTP port' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface to listen on' }),
  DATABASE_URL: Type.Optional(
    Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL URL; without it the embedded PGlite database is used' }),
  ),
  DATABASE_DIRECT_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description:
        'A direct connection to the same database when DATABASE_URL goes through a transaction pooler (PgBouncer, pool_mode = transaction): LISTEN and migrations use it, and nothing session-scoped is sent through DATABASE_URL',
    }),
  ),
  DATABASE_PREPARED_STATEMENTS: Type.Enum(['auto', 'true', 'false'], {
    default: 'auto',
    description:
      'Named prepared statements through DATABASE_URL. auto: on, unless DATABASE_DIRECT_URL is set (a pooler before PgBouncer 1.21, or without max_prepared_statements, mixes them up between clients)',
  }),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 500, default: 10, description: 'PostgreSQL connections per process' }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 60_000,
    default: 2000,
    description: 'How long opening a PostgreSQL connection may take before the request fails with 503',
  }),
  DATABASE_POOL_WAIT_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 2000,
    description: 'How long a request may wait for a free PostgreSQL connection (all busy, or reconnecting) before it fails with 503',
  }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 600_000,
    default: 10_000,
    description: 'PostgreSQL cancels a statement (a lock wait included) running longer; the request fails with 503',
  }),
  DATABASE_PROBE_INTERVAL_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 1000,
    description:
      'How often a trivial query checks that PostgreSQL answers through the pool within this time; while it does not, requests get 503 at once. 0 turns it off',
  }),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'Folder of the embedded database and its generated JWT secret' }),
  JWT_SECRET: Type.Optional(
    Type.String({ minLength: 32, description: 'HMAC key for access tokens; required with DATABASE_URL' }),
  ),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'massage-referral-network' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'massage-referral-api' }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 3600, default: 900 }),
  REFRESH_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 300, default: 30 * 24 * 3600 }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  LOG_FORMAT: Type.Enum(['auto', 'json', 'pretty'], { default: 'auto' }),
  BOOTSTRAP_ADMIN_EMAIL: Type.Optional(Type.String({ format: 'email' })),
  BOOTSTRAP_ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 12 })),
  NODE_ENV: Type.Optional(Type.String({ description: 'production turns off the demo network unless DEMO_SEED=true' })),
  DEMO_SEED: Type.Optional(
    booleanFlag({
      description:
        'Seed the demo network (accounts with a published password) on an empty database. Default: on only for the embedded database, outside production, listening on a loopback address',
    }),
  ),
  DATA_ENCRYPTION_KEY: Type.Optional(
    Type.String({
      description:
        'Key (32 random bytes in base64) that encrypts stored secrets such as webhook signing secrets (AES-256-GCM); required with DATABASE_URL, generated and kept in DATA_DIR otherwise',
    }),
  ),
  DATA_ENCRYPTION_PREVIOUS_KEYS: Type.Optional(
    Type.String({
      description: 'Earlier DATA_ENCRYPTION_KEY values, comma-separated: still read, and re-encrypted under the current key at start (key rotation)',
    }),
  ),
  PUBLIC_BASE_URL: Type.Optional(
    Type.String({
      description:
        'The URL partners reach this service at (scheme, host, port if not the default, and any path prefix a proxy adds; no trailing slash), e.g. https://api.example.com. Absolute URLs the service gives out are made from it, and API clients sign their SMART client assertions for its /v1/auth/token. Default: http://localhost:$PORT',
    }),
  ),
  WEBHOOK_ALLOW_PRIVATE_TARGETS: booleanFlag({ default: 'false', description: 'Allow webhook URLs on private, loopback or link-local addresses' }),
  JWKS_ALLOW_PRIVATE_URLS: booleanFlag({
    default: 'false',
    description:
      "Allow API clients' JWKS URLs over http and on private, loopback or link-local addresses (development and tests only: whoever can answer for the URL can sign in as the client)",
  }),
  WEBHOOK_RETRY_SCHEDULE: Type.String({
    pattern: '^\\d+(,\\d+)*$',
    default: '0,5,300,1800,7200,18000,36000,36000',
  }),
  ROLE: Type.Enum(['all', 'api', 'worker'], { default: 'all', description: 'all: API and worker; api: HTTP only; worker: background jobs only' }),
  LOGIN_MAX_FAILURES: Type.Integer({
    minimum: 1,
    default: 5,
    description: 'Failed sign-ins to one account from one client address within LOGIN_LOCKOUT_SECONDS before that address is refused for the account',
  }),
  LOGIN_ACCOUNT_MAX_FAILURES: Type.Integer({
    minimum: 1,
    default: 100,
    description: 'Failed sign-ins to one account from all addresses together within LOGIN_LOCKOUT_SECONDS before the account is refused everywhere',
  }),
  LOGIN_LOCKOUT_SECONDS: Type.Integer({ minimum: 1, default: 900, description: 'The window in which sign-in failures are counted, and how long a refusal lasts' }),
  LOGIN_FAILURE_DELAY_MS: Type.Integer({ minimum: 0, default: 250 }),
  PASSWORD_HASH_COST: Type.Integer({
    minimum: 10,
    maximum: 20,
    default: 15,
    description: 'scrypt work factor (log2 N) of new password and client-secret hashes; lower it only for tests',
  }),
  TOKEN_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 30 }),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 3000 }),
  METRICS_PORT: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 65535, description: 'Port of the Prometheus metrics (GET /metrics), apart from the API; without it no metrics are served' }),
  ),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
    Type.String({ pattern: '^https?://', description: 'OTLP/HTTP collector: with it, requests and database work are traced (OpenTelemetry); without it nothing is traced' }),
  ),
  OTEL_SERVICE_NAME: Type.String({ minLength: 1, default: 'massage-referral-network', description: 'service.name of the spans' }),
  METRICS_HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface the metrics port listens on' }),
  REDIS_URL: Type.Optional(
    Type.String({
      pattern: '^rediss?://',
      description: 'Redis URL: rate-limit counts are shared by every process through it; without it (or while it is unreachable) each process counts on its own',
    }),
  ),
  REDIS_KEY_PREFIX: Type.String({
    minLength: 1,
    maxLength: 100,
    default: 'massage-referral-network:',
    description: 'Prefix of every Redis key the service writes: lets several deployments share one Redis',
  }),
  REFERRAL_EXPIRY_SWEEP_SECONDS: Type.Integer({
    minimum: 0,
    default: 300,
    description: 'How often the worker expires referrals past expiresOn (it also runs at start); 0 turns the timer off',
  }),
  LICENSE_NOTICE_SWEEP_SECONDS: Type.Integer({
    minimum: 0,
    default: 3600,
    description: 'How often the worker sends license.expiring for licenses that run out within 30 days (it also runs at start); 0 turns the timer off',
  }),
  SCHEDULE_ALERT_DAYS: Type.Integer({
    minimum: 1,
    maximum: 365,
    default: 7,
    description: 'A referral accepted this many days ago with no appointment and no visit sends referral.not_scheduled (once)',
  }),
  SCHEDULE_ALERT_SWEEP_SECONDS: Type.Integer({
    minimum: 0,
    default: 300,
    description: 'How often the worker looks for referrals to send referral.not_scheduled about (it also runs at start); 0 turns the timer off',
  }),
  URGENT_ESCALATION_MINUTES: Type.Integer({
    minimum: 1,
    maximum: 7 * 24 * 60,
    default: 120,
    description: 'An urgent message or adverse event not acknowledged within this many minutes sends urgent.unacknowledged (once)',
  }),
  URGENT_ESCALATION_SWEEP_SECONDS: Type.Integer({
    minimum: 0,
    default: 60,
    description: 'How often the worker looks for unacknowledged urgent messages and adverse events to escalate (it also runs at start); 0 turns the timer off',
  }),
  DOCUMENT_MAX_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 100 * 1024 * 1024,
    default: 10 * 1024 * 1024,
    description: 'Largest document accepted; a larger upload is refused with 413 while it streams in',
  }),
  DOCUMENT_UPLOAD_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 120,
    description: 'Time an upload has to arrive whole; a slower one is refused with 408 and nothing is kept',
  }),
  AUDIT_SIGNING_KEY: Type.Optional(
    Type.String({
      description:
        "Ed25519 key (its 32-byte seed in base64) that signs the audit log's checkpoints; keep it outside the database. Required with DATABASE_URL, generated and kept in DATA_DIR otherwise",
    }),
  ),
  AUDIT_LOG_ORIGIN: Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: '^[^\\s]+$',
    default: 'massage-referral-network/audit-log',
    description: "Names this deployment's audit log in its signed checkpoints (C2SP origin line), e.g. api.example.com/audit-log",
  }),
  AUDIT_SEQUENCER_POLL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 100, description: 'How often the worker moves new audit events into the Merkle tree' }),
  AUDIT_CHECKPOINT_INTERVAL_MS: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    default: 250,
    description: 'The least time between two signed checkpoints while audit events arrive (none is signed while none arrive)',
  }),
  AUDIT_CHECKPOINT_WEBHOOK_SECONDS: Type.Integer({
    minimum: 0,
    maximum: 86_400,
    default: 60,
    description: 'The least time between two checkpoints sent to partners as audit.checkpoint webhooks',
  }),
  EVENT_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 30, description: 'How long the events feed (GET /v1/events) keeps an event' }),
  EVENT_FEED_SWEEP_SECONDS: Type.Integer({
    minimum: 0,
    default: 3600,
    description: 'How often the worker removes feed entries older than EVENT_RETENTION_DAYS and the parts of uploads that never completed; 0 turns the timer off',
  }),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000, description: 'Time a receiver has to answer one attempt' }),
  WEBHOOK_DISABLE_AFTER_SECONDS: Type.Integer({
    minimum: 1,
    default: 5 * 24 * 3600,
    description: 'An endpoint failing with no success for this long is disabled',
  }),
  WEBHOOK_LEASE_SECONDS: Type.Integer({
    minimum: 3,
    maximum: 3600,
    default: 10,
    description:
      "How long a worker's claim on a delivery lasts unless renewed; the worker renews the claims of deliveries in flight every third of it, so a killed worker's deliveries are taken over within about this long",
  }),
  WEBHOOK_POLL_MS: Type.Integer({ minimum: 10, default: 1000, description: 'How often the worker looks for due deliveries besides being woken' }),
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 32, description: 'Deliveries one worker sends at once' }),
  AUDIT_DENIAL_WINDOW_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 60,
    description: 'Repeats of one refusal (same caller, action, record, status) within this window are audited as one counted event, not one each',
  }),
  IDEMPOTENCY_KEY_TTL_HOURS: Type.Integer({ minimum: 1, default: 24, description: 'How long a replayable response is kept' }),
});

type Env = Static<typeof EnvSchema>;

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  databaseDirectUrl: string | undefined;
  metrics: { port: number | undefined; host: string };
  tracing: { endpoint: string | undefined; serviceName: string };
  databasePreparedStatements: boolean;
  databasePoolSize: number;
  databaseTimeouts: { connectMs: number; poolWaitMs: number; statementMs: number; probeIntervalMs: number };
  dataDir: string;
  jwt: { secret: string | undefined; issuer: string; audience: string; accessTokenTtlSeconds: number; refreshTokenTtlSeconds: number };
  logLevel: string;
  /** JSON lines, or pino-pretty's coloured lines for people; auto: pretty on a terminal outside production. */
  logFormat: 'json' | 'pretty';
  bootstrapAdmin: { email: string; password: string } | undefined;
  /** Whether to seed the demo network, and whether an operator asked for it explicitly. */
  demoSeed: boolean;
  demoSeedExplicit: boolean;
  encryption: { key: Buffer | undefined; previousKeys: Buffer[] };
  webhooks: {
    allowPrivateTargets: boolean;
    retryScheduleSeconds: number[];
    timeoutMs: number;
    disableAfterSeconds: number;
    leaseSeconds: number;
    pollMs: number;
    concurrency: number;
  };
  role: 'all' | 'api' | 'worker';
  /** Where partners reach the service, without a trailing slash: the base of the absolute URLs it gives out. */
  publicBaseUrl: string;
  /** Whether API clients' JWKS URLs may be http, or on private addresses (SSRF guard, lib/outbound). */
  jwksAllowPrivateUrls: boolean;
  login: { maxFailures: number; accountMaxFailures: number; lockoutSeconds: number; failureDelayMs: number; passwordHashCostLog2: number };
  rateLimit: { tokenPerMinute: number; perCallerPerMinute: number; redisUrl: string | undefined; redisKeyPrefix: string };
  referralExpirySweepSeconds: number;
  licenseNoticeSweepSeconds: number;
  scheduling: { alertAfterDays: number; sweepSeconds: number };
  documents: { maxBytes: number; uploadSeconds: number };
  urgentEscalation: { afterMinutes: number; sweepSeconds: number };
  eventFeed: { retentionDays: number; sweepSeconds: number };
  audit: { signingKey: Buffer | undefined; origin: string; sequencerPollMs: number; checkpointIntervalMs: number; checkpointWebhookSeconds: number };
  idempotencyKeyTtlHours: number;
  auditDenialWindowSeconds: number;
}

/** A 256-bit key written in base64, or undefined when it is not one. */
function encryptionKeyOf(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$|^[A-Za-z0-9_-]+$/.test(trimmed)) return undefined;
  const key = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
  return key.length === 32 ? key : undefined;
}

/** Why a PUBLIC_BASE_URL is unusable, or undefined when it is fine. */
function publicBaseUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL, e.g. https://api.example.com';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must use https (or http)';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.search || url.hash || text.includes('?') || text.includes('#')) return 'must not have a query or a fragment';
  if (text.endsWith('/')) return 'must not end with a slash';
  return undefined;
}

const previousKeysOf = (list: string) => list.split(',').filter((entry) => entry.trim() !== '').map(encryptionKeyOf);

/** Demo accounts have a published password: by default they are served to this machine only. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === '[::1]';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates the environment once; the message names every variable that is wrong. */
/**
 * The configuration from the environment. `forMigrations`: only the database is needed (a
 * migration job of a deploy pipeline), so the keys the service needs with DATABASE_URL are not
 * asked for.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  { forMigrations = false, stdoutIsTerminal = Boolean(process.stdout.isTTY) } = {},
): Config {
  const known = Object.fromEntries(
    Object.keys(EnvSchema.properties)
      .filter((key) => env[key] !== undefined && env[key] !== '')
      .map((key) => [key, env[key]]),
  );
  // Convert would truncate 3.5 to 3 and read 0x10 as hex; whole numbers must be written as such.
  const notWholeNumbers = Object.entries(EnvSchema.properties)
    .filter(([key, schema]) => (schema as { type?: string }).type === 'integer' && key in known && !/^\d+$/.test(String(known[key])))
    .map(([key]) => key);
  const converted = Value.Convert(EnvSchema, Value.Default(EnvSchema, known));
  const schemaProblems = [...Value.Errors(EnvSchema, converted)].map((error) => {
    const variable = error.instancePath.replace(/^\//, '') || String((error.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '');
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues;
    return `${variable}: ${error.message}${allowed ? ` (${allowed.join(', ')})` : ''}`;
  });
  const problems = [
    ...notWholeNumbers.map((key) => `${key}: must be an integer (digits only)`),
    ...schemaProblems.filter((problem) => !notWholeNumbers.some((key) => problem.startsWith(`${key}:`))),
  ];
  const parsed = converted as Env;
  if (problems.length === 0) {
    if (parsed.DATABASE_DIRECT_URL && !parsed.DATABASE_URL) problems.push('DATABASE_DIRECT_URL: only with DATABASE_URL (the pooled connection it goes with)');
    if (parsed.DATABASE_URL && !forMigrations && !parsed.JWT_SECRET) problems.push('JWT_SECRET: required when DATABASE_URL is set');
    if (parsed.DATABASE_URL && !forMigrations && !parsed.DATA_ENCRYPTION_KEY) problems.push('DATA_ENCRYPTION_KEY: required when DATABASE_URL is set');
    if (parsed.DATA_ENCRYPTION_KEY && !encryptionKeyOf(parsed.DATA_ENCRYPTION_KEY)) {
      problems.push('DATA_ENCRYPTION_KEY: must be 32 random bytes in base64 (e.g. openssl rand -base64 32)');
    }
    if (parsed.DATABASE_URL && !forMigrations && !parsed.AUDIT_SIGNING_KEY) problems.push('AUDIT_SIGNING_KEY: required when DATABASE_URL is set');
    if (parsed.AUDIT_SIGNING_KEY && !encryptionKeyOf(parsed.AUDIT_SIGNING_KEY)) {
      problems.push('AUDIT_SIGNING_KEY: must be a 32-byte Ed25519 seed in base64 (e.g. openssl rand -base64 32)');
    }
    if (parsed.DATA_ENCRYPTION_PREVIOUS_KEYS && !previousKeysOf(parsed.DATA_ENCRYPTION_PREVIOUS_KEYS).every(Boolean)) {
      problems.push('DATA_ENCRYPTION_PREVIOUS_KEYS: each must be 32 bytes in base64, comma-separated');
    }
    const baseUrlProblem = parsed.PUBLIC_BASE_URL === undefined ? undefined : publicBaseUrlProblem(parsed.PUBLIC_BASE_URL);
    if (baseUrlProblem) problems.push(`PUBLIC_BASE_URL: ${baseUrlProblem}`);
    // A live worker must never lose its claim while an attempt can still be running.
    if (Boolean(parsed.BOOTSTRAP_ADMIN_EMAIL) !== Boolean(parsed.BOOTSTRAP_ADMIN_PASSWORD)) {
      problems.push('BOOTSTRAP_ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: set both or neither');
    }
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);

  return {
    port: parsed.PORT,
    host: parsed.HOST,
    databaseUrl: parsed.DATABASE_URL,
    databaseDirectUrl: parsed.DATABASE_DIRECT_URL,
    databasePreparedStatements:
      parsed.DATABASE_PREPARED_STATEMENTS === 'auto' ? parsed.DATABASE_DIRECT_URL === undefined : parsed.DATABASE_PREPARED_STATEMENTS === 'true',
    databasePoolSize: parsed.DATABASE_POOL_SIZE,
    databaseTimeouts: {
      connectMs: parsed.DATABASE_CONNECT_TIMEOUT_MS,
      poolWaitMs: parsed.DATABASE_POOL_WAIT_MS,
      statementMs: parsed.DATABASE_STATEMENT_TIMEOUT_MS,
      probeIntervalMs: parsed.DATABASE_PROBE_INTERVAL_MS,
    },
    dataDir: parsed.DATA_DIR,
    jwt: {
      secret: parsed.JWT_SECRET,
      issuer: parsed.JWT_ISSUER,
      audience: parsed.JWT_AUDIENCE,
      accessTokenTtlSeconds: parsed.ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: parsed.REFRESH_TOKEN_TTL_SECONDS,
    },
    logLevel: parsed.LOG_LEVEL,
    logFormat:
      parsed.LOG_FORMAT === 'auto' ? (stdoutIsTerminal && parsed.NODE_ENV !== 'production' ? 'pretty' : 'json') : parsed.LOG_FORMAT,
    bootstrapAdmin:
      parsed.BOOTSTRAP_ADMIN_EMAIL && parsed.BOOTSTRAP_ADMIN_PASSWORD
        ? { email: parsed.BOOTSTRAP_ADMIN_EMAIL, password: parsed.BOOTSTRAP_ADMIN_PASSWORD }
        : undefined,
    demoSeed:
      parsed.DEMO_SEED === undefined
        ? !parsed.DATABASE_URL && parsed.NODE_ENV !== 'production' && isLoopbackHost(parsed.HOST)
        : parsed.DEMO_SEED === 'true',
    demoSeedExplicit: parsed.DEMO_SEED === 'true',
    encryption: {
      key: parsed.DATA_ENCRYPTION_KEY ? encryptionKeyOf(parsed.DATA_ENCRYPTION_KEY) : undefined,
      previousKeys: parsed.DATA_ENCRYPTION_PREVIOUS_KEYS ? (previousKeysOf(parsed.DATA_ENCRYPTION_PREVIOUS_KEYS) as Buffer[]) : [],
    },
    webhooks: {
      allowPrivateTargets: parsed.WEBHOOK_ALLOW_PRIVATE_TARGETS === 'true',
      retryScheduleSeconds: parsed.WEBHOOK_RETRY_SCHEDULE.split(',').map(Number),
      timeoutMs: parsed.WEBHOOK_TIMEOUT_MS,
      disableAfterSeconds: parsed.WEBHOOK_DISABLE_AFTER_SECONDS,
      leaseSeconds: parsed.WEBHOOK_LEASE_SECONDS,
      pollMs: parsed.WEBHOOK_POLL_MS,
      concurrency: parsed.WEBHOOK_CONCURRENCY,
    },
    role: parsed.ROLE,
    publicBaseUrl: parsed.PUBLIC_BASE_URL ?? `http://localhost:${parsed.PORT}`,
    jwksAllowPrivateUrls: parsed.JWKS_ALLOW_PRIVATE_URLS === 'true',
    login: {
      maxFailures: parsed.LOGIN_MAX_FAILURES,
      accountMaxFailures: parsed.LOGIN_ACCOUNT_MAX_FAILURES,
      lockoutSeconds: parsed.LOGIN_LOCKOUT_SECONDS,
      failureDelayMs: parsed.LOGIN_FAILURE_DELAY_MS,
      passwordHashCostLog2: parsed.PASSWORD_HASH_COST,
    },
    rateLimit: { tokenPerMinute: parsed.TOKEN_RATE_LIMIT_PER_MINUTE, perCallerPerMinute: parsed.RATE_LIMIT_PER_MINUTE, redisUrl: parsed.REDIS_URL, redisKeyPrefix: parsed.REDIS_KEY_PREFIX },
    referralExpirySweepSeconds: parsed.REFERRAL_EXPIRY_SWEEP_SECONDS,
    licenseNoticeSweepSeconds: parsed.LICENSE_NOTICE_SWEEP_SECONDS,
    scheduling: { alertAfterDays: parsed.SCHEDULE_ALERT_DAYS, sweepSeconds: parsed.SCHEDULE_ALERT_SWEEP_SECONDS },
    documents: { maxBytes: parsed.DOCUMENT_MAX_BYTES, uploadSeconds: parsed.DOCUMENT_UPLOAD_SECONDS },
    urgentEscalation: { afterMinutes: parsed.URGENT_ESCALATION_MINUTES, sweepSeconds: parsed.URGENT_ESCALATION_SWEEP_SECONDS },
    eventFeed: { retentionDays: parsed.EVENT_RETENTION_DAYS, sweepSeconds: parsed.EVENT_FEED_SWEEP_SECONDS },
    audit: {
      signingKey: parsed.AUDIT_SIGNING_KEY ? encryptionKeyOf(parsed.AUDIT_SIGNING_KEY) : undefined,
      origin: parsed.AUDIT_LOG_ORIGIN,
      sequencerPollMs: parsed.AUDIT_SEQUENCER_POLL_MS,
      checkpointIntervalMs: parsed.AUDIT_CHECKPOINT_INTERVAL_MS,
      checkpointWebhookSeconds: parsed.AUDIT_CHECKPOINT_WEBHOOK_SECONDS,
    },
    idempotencyKeyTtlHours: parsed.IDEMPOTENCY_KEY_TTL_HOURS,
    metrics: { port: parsed.METRICS_PORT, host: parsed.METRICS_HOST },
    tracing: { endpoint: parsed.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: parsed.OTEL_SERVICE_NAME },
    auditDenialWindowSeconds: parsed.AUDIT_DENIAL_WINDOW_SECONDS,
  };
}
