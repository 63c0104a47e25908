// Configuration (SPEC §11): one schema validated at start; a bad value stops the process naming the variable.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const validSecret = 'a-jwt-secret-that-is-at-least-32-characters-long';

/** The ConfigError loadConfig throws for env; fails the test if it does not throw one. */
function configError(t: { fail(message: string): void }, env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  t.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
  return '';
}

t.test('an empty environment gives the documented defaults (embedded database, demo seed on)', async (t) => {
  const config = loadConfig({});
  t.match(config, {
    port: 3000,
    host: '127.0.0.1',
    databaseUrl: undefined,
    dataDir: './data',
    jwt: { secret: undefined, issuer: String, audience: String, accessTokenTtlSeconds: 900 },
    logLevel: 'info',
    bootstrapAdmin: undefined,
    demoSeed: true,
    webhooks: { allowPrivateTargets: false, retryScheduleSeconds: [0, 5, 300, 1800, 7200, 18000, 36000, 36000] },
    role: 'all',
  });
});

t.test('values are converted and read: numbers, flags, lists and the bootstrap admin', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    HOST: '0.0.0.0',
    DATABASE_URL: 'postgres://user@db.example:5432/referrals',
    JWT_SECRET: validSecret,
    DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'),
    AUDIT_SIGNING_KEY: Buffer.alloc(32, 3).toString('base64'),
    AUDIT_LOG_ORIGIN: 'api.example.com/audit-log',
    LOG_LEVEL: 'warn',
    BOOTSTRAP_ADMIN_EMAIL: 'admin@network.example',
    BOOTSTRAP_ADMIN_PASSWORD: 'a-long-admin-password',
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    WEBHOOK_RETRY_SCHEDULE: '1,2,3',
    ROLE: 'worker',
  });
  t.match(config, {
    port: 8080,
    host: '0.0.0.0',
    databaseUrl: 'postgres://user@db.example:5432/referrals',
    jwt: { secret: validSecret },
    logLevel: 'warn',
    bootstrapAdmin: { email: 'admin@network.example', password: 'a-long-admin-password' },
    demoSeed: false,
    webhooks: { allowPrivateTargets: true, retryScheduleSeconds: [1, 2, 3] },
    role: 'worker',
    audit: { signingKey: Buffer.alloc(32, 3), origin: 'api.example.com/audit-log', sequencerPollMs: 100, checkpointIntervalMs: 250, checkpointWebhookSeconds: 60 },
  });
});

t.test('DEMO_SEED defaults off with DATABASE_URL and can be turned on', async (t) => {
  const server = {
    DATABASE_URL: 'postgresql://db.example/referrals',
    JWT_SECRET: validSecret,
    DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'),
    AUDIT_SIGNING_KEY: Buffer.alloc(32).toString('base64'),
  };
  t.equal(loadConfig(server).demoSeed, false);
  t.equal(loadConfig({ ...server, DEMO_SEED: 'true' }).demoSeed, true);
  t.equal(loadConfig({ DEMO_SEED: 'false' }).demoSeed, false);
});

t.test('an empty value counts as unset', async (t) => {
  t.equal(loadConfig({ PORT: '', LOG_LEVEL: '' }).port, 3000);
});

t.test('PORT=abc is a ConfigError naming PORT', async (t) => {
  t.throws(() => loadConfig({ PORT: 'abc' }), ConfigError);
  t.match(configError(t, { PORT: 'abc' }), /PORT: .*integer/);
  t.match(configError(t, { PORT: '70000' }), /PORT: /);
});

t.test('a fractional number is refused, not truncated', async (t) => {
  t.match(configError(t, { PORT: '3.5' }), /PORT: /);
  t.match(configError(t, { ACCESS_TOKEN_TTL_SECONDS: '900.9' }), /ACCESS_TOKEN_TTL_SECONDS: /);
});

t.test('DATABASE_URL without JWT_SECRET names JWT_SECRET', async (t) => {
  t.match(configError(t, { DATABASE_URL: 'postgres://db.example/referrals' }), /JWT_SECRET: required when DATABASE_URL is set/);
});

t.test('DATABASE_URL without DATA_ENCRYPTION_KEY names it; a key that is not 32 bytes of base64 is refused, and not echoed', async (t) => {
  t.match(
    configError(t, { DATABASE_URL: 'postgres://db.example/referrals', JWT_SECRET: validSecret }),
    /DATA_ENCRYPTION_KEY: required when DATABASE_URL is set/,
  );
  const short = Buffer.alloc(16, 9).toString('base64');
  const message = configError(t, { DATA_ENCRYPTION_KEY: short });
  t.match(message, /DATA_ENCRYPTION_KEY: must be 32 random bytes in base64/);
  t.notMatch(message, short);
  t.match(configError(t, { DATA_ENCRYPTION_PREVIOUS_KEYS: `${Buffer.alloc(32).toString('base64')},not-a-key` }), /DATA_ENCRYPTION_PREVIOUS_KEYS: /);
  t.same(loadConfig({ DATA_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64') }).encryption.key, Buffer.alloc(32, 1));
});

t.test("DATABASE_URL without AUDIT_SIGNING_KEY names it: the key that signs the audit log's checkpoints is kept outside the database", async (t) => {
  t.match(
    configError(t, { DATABASE_URL: 'postgres://db.example/referrals', JWT_SECRET: validSecret, DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64') }),
    /AUDIT_SIGNING_KEY: required when DATABASE_URL is set/,
  );
  const short = Buffer.alloc(31, 5).toString('base64');
  const message = configError(t, { AUDIT_SIGNING_KEY: short });
  t.match(message, /AUDIT_SIGNING_KEY: must be a 32-byte Ed25519 seed in base64/);
  t.notMatch(message, short, 'the value is not echoed');
  t.match(configError(t, { AUDIT_LOG_ORIGIN: 'has a space' }), /AUDIT_LOG_ORIGIN: /);
  t.match(configError(t, { AUDIT_SEQUENCER_POLL_MS: '0' }), /AUDIT_SEQUENCER_POLL_MS: /);
});

t.test('a transaction pooler: DATABASE_DIRECT_URL goes with DATABASE_URL, and turns named prepared statements off unless asked for', async (t) => {
  t.match(configError(t, { DATABASE_DIRECT_URL: 'postgres://db.example/referrals' }), /DATABASE_DIRECT_URL: only with DATABASE_URL/);
  t.match(configError(t, { DATABASE_DIRECT_URL: 'mysql://db.example/referrals' }), /DATABASE_DIRECT_URL: /);
  t.match(configError(t, { DATABASE_PREPARED_STATEMENTS: 'sometimes' }), /DATABASE_PREPARED_STATEMENTS: /);
  const server = { DATABASE_URL: 'postgres://bouncer.example:6432/referrals', JWT_SECRET: validSecret, DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'), AUDIT_SIGNING_KEY: Buffer.alloc(32, 3).toString('base64') };
  t.equal(loadConfig(server).databasePreparedStatements, true, 'on against PostgreSQL itself');
  const pooled = { ...server, DATABASE_DIRECT_URL: 'postgres://db.example:5432/referrals' };
  t.equal(loadConfig(pooled).databasePreparedStatements, false, 'off behind a pooler');
  t.equal(loadConfig({ ...pooled, DATABASE_PREPARED_STATEMENTS: 'true' }).databasePreparedStatements, true, 'on when asked for (PgBouncer 1.21+)');
});

t.test('REDIS_URL must be a redis URL; WEBHOOK_LEASE_SECONDS at least 3', async (t) => {
  t.match(configError(t, { REDIS_URL: 'http://cache.example' }), /REDIS_URL: /);
  t.equal(loadConfig({ REDIS_URL: 'rediss://cache.example:6380' }).rateLimit.redisUrl, 'rediss://cache.example:6380');
  t.match(configError(t, { WEBHOOK_LEASE_SECONDS: '2' }), /WEBHOOK_LEASE_SECONDS: /);
});

t.test('PUBLIC_BASE_URL defaults to http://localhost:$PORT; a value that is not an absolute http(s) URL without a trailing slash is named', async (t) => {
  t.equal(loadConfig({}).publicBaseUrl, 'http://localhost:3000');
  t.equal(loadConfig({ PORT: '8080' }).publicBaseUrl, 'http://localhost:8080');
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'https://api.example.com/referrals' }).publicBaseUrl, 'https://api.example.com/referrals');
  for (const bad of ['api.example.com', 'ftp://api.example.com', 'https://api.example.com/', 'https://user:pw@api.example.com', 'https://api.example.com?x=1', 'https://api.example.com#top']) {
    t.match(configError(t, { PUBLIC_BASE_URL: bad }), /PUBLIC_BASE_URL: must/, bad);
  }
  t.equal(loadConfig({}).jwksAllowPrivateUrls, false, 'JWKS URLs keep to public https by default');
});

t.test('a migration job needs only the database: no keys are asked for', async (t) => {
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db.example/referrals' }, { forMigrations: true }).databaseUrl, 'postgres://db.example/referrals');
  t.match(configError(t, { DATABASE_URL: 'postgres://db.example/referrals' }), /JWT_SECRET: required/, 'the service itself still needs them');
});

t.test('DATABASE_URL must be a postgres URL', async (t) => {
  t.match(configError(t, { DATABASE_URL: 'mysql://db.example/referrals', JWT_SECRET: validSecret, DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64') }), /DATABASE_URL: /);
});

t.test('a bad LOG_LEVEL or ROLE names the variable and lists the allowed values', async (t) => {
  t.match(configError(t, { LOG_LEVEL: 'loud' }), /LOG_LEVEL: .*\(fatal, error, warn, info, debug, trace, silent\)/);
  t.match(configError(t, { ROLE: 'both' }), /ROLE: .*\(all, api, worker\)/);
  t.match(configError(t, { DEMO_SEED: 'yes' }), /DEMO_SEED: .*\(true, false\)/);
});

t.test('BOOTSTRAP_ADMIN_EMAIL without a password names both variables', async (t) => {
  const message = configError(t, { BOOTSTRAP_ADMIN_EMAIL: 'admin@network.example' });
  t.match(message, /BOOTSTRAP_ADMIN_EMAIL/);
  t.match(message, /BOOTSTRAP_ADMIN_PASSWORD/);
  const reverse = configError(t, { BOOTSTRAP_ADMIN_PASSWORD: 'a-long-admin-password' });
  t.match(reverse, /BOOTSTRAP_ADMIN_EMAIL/);
  t.match(reverse, /BOOTSTRAP_ADMIN_PASSWORD/);
});

t.test('a JWT_SECRET shorter than 32 characters is named, and its value is not echoed', async (t) => {
  const secret = 'short-but-secret-value';
  const message = configError(t, { JWT_SECRET: secret });
  t.match(message, /JWT_SECRET: /);
  t.notMatch(message, secret);
});

t.test('a short BOOTSTRAP_ADMIN_PASSWORD is named, and its value is not echoed', async (t) => {
  const message = configError(t, { BOOTSTRAP_ADMIN_EMAIL: 'admin@network.example', BOOTSTRAP_ADMIN_PASSWORD: 'hunter2' });
  t.match(message, /BOOTSTRAP_ADMIN_PASSWORD: /);
  t.notMatch(message, 'hunter2');
});

t.test("WEBHOOK_RETRY_SCHEDULE='5,x' is named", async (t) => {
  t.match(configError(t, { WEBHOOK_RETRY_SCHEDULE: '5,x' }), /WEBHOOK_RETRY_SCHEDULE: /);
});

t.test('every bad variable is named at once', async (t) => {
  const message = configError(t, { PORT: 'abc', ROLE: 'both', LOG_LEVEL: 'loud' });
  for (const name of ['PORT', 'ROLE', 'LOG_LEVEL']) t.match(message, new RegExp(`^\\s*${name}: `, 'm'));
});

t.test('the server refuses to start with PORT=notaport: non-zero exit, PORT named, no stack trace', async (t) => {
  const child = spawn(process.execPath, ['--import', './tools/typescript-loader/register.mjs', 'src/server.ts'], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: 'notaport' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const startedAt = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    // Generous: compiling the server in a child on a CI machine busy with other test files
    // takes seconds; a hang is forever.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  const elapsed = Date.now() - startedAt;
  t.not(code, 0, 'exits non-zero');
  t.not(code, null, 'exits on its own (not killed)');
  t.ok(elapsed < 45_000, `exits promptly (${elapsed} ms)`);
  t.match(stderr, /PORT: /, 'stderr names PORT');
  t.notMatch(stderr, /^\s+at /m, 'no stack trace');
  t.notMatch(stdout, /listening/i, 'never listened');
});
