// First start: the configured network admin, and on an empty embedded database the demo network.
import type { FastifyInstance } from 'fastify';
import { and, count, eq, inArray, sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import { organizations, users as userAccounts } from '../db/schema.js';
import { UsersRepository } from '../modules/network/users-repository.js';
import { seedDemoLoop } from './demo-loop.js';
import { demoCredentials, demoCredentialsMessage, seedDemoNetwork } from './demo-network.js';

// Serialises first-start seeding when several processes start on one PostgreSQL.
const seedLockKey = 7_341_227_002;

export class DemoAccountsRefusedError extends Error {
  override name = 'DemoAccountsRefusedError';
}

export async function bootstrap(app: FastifyInstance, config: Config): Promise<void> {
  if (config.bootstrapAdmin) await ensureBootstrapAdmin(app, config.bootstrapAdmin);
  if (config.role === 'worker') return;
  if (config.demoSeed) {
    await seedDemoIfEmpty(app);
    if (await demoAccountsActive(app)) warnLoudly(app, config);
  } else if (await demoAccountsActive(app)) {
    // Their password is published in the README: a database holding them is served only when asked.
    throw new DemoAccountsRefusedError(
      'This database holds the demo network, whose accounts have a published password, but demo accounts are not enabled ' +
        `(NODE_ENV=production, a non-loopback HOST ${config.host}, or DEMO_SEED=false). Start with DEMO_SEED=true to serve them ` +
        'knowingly, or use a database (DATA_DIR) without them.',
    );
  }
}

async function demoAccountsActive(app: FastifyInstance): Promise<boolean> {
  const [row] = await app.db
    .select({ total: count() })
    .from(userAccounts)
    .where(and(inArray(userAccounts.email, Object.values(demoCredentials.users)), eq(userAccounts.active, true)));
  return (row?.total ?? 0) > 0;
}

function warnLoudly(app: FastifyInstance, config: Config) {
  app.log.warn(
    { host: config.host },
    `DEMO ACCOUNTS ARE ENABLED: anyone who can reach ${config.host}:${config.port} can sign in with the demo password published in the README. ` +
      'Never use this database for real patients.',
  );
}

async function ensureBootstrapAdmin(app: FastifyInstance, admin: { email: string; password: string }) {
  const users = new UsersRepository(app.db);
  if (await users.emailTaken({ email: admin.email })) return;
  const passwordHash = await app.passwords.hash(admin.password);
  await app.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${seedLockKey})`);
    if (await users.emailTaken({ email: admin.email }, tx)) return;
    await users.create(
      { organizationId: null, role: 'network_admin', email: admin.email, name: 'Network administrator', passwordHash },
      tx,
    );
    app.log.info('bootstrap network admin created');
  });
}

async function seedDemoIfEmpty(app: FastifyInstance) {
  const seeded = await app.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${seedLockKey})`);
    const [existing] = await tx.select({ total: count() }).from(organizations);
    if ((existing?.total ?? 0) > 0) return false;
    await seedDemoNetwork(app.db, tx, app.passwords);
    return true;
  });
  if (seeded) {
    // After the network is committed: the loop goes through the API, as the demo users. A demo
    // without it is still a demo; the service starts and says what went wrong.
    await seedDemoLoop(app).catch((error: unknown) => app.log.warn({ err: error }, 'the demo clinical loop was not seeded'));
    // Printed once, on the start that seeds: these are demo accounts of a local embedded database.
    app.log.info(demoCredentialsMessage());
  }
}
