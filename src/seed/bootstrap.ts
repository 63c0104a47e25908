// First start: the configured network admin, and on an empty embedded database the demo network.
import type { FastifyInstance } from 'fastify';
import { count, sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import { organizations } from '../db/schema.js';
import { hashSecret } from '../modules/auth/passwords.js';
import { UsersRepository } from '../modules/network/users-repository.js';
import { demoCredentialsMessage, seedDemoNetwork } from './demo-network.js';

// Serialises first-start seeding when several processes start on one PostgreSQL.
const seedLockKey = 7_341_227_002;

export async function bootstrap(app: FastifyInstance, config: Config): Promise<void> {
  if (config.bootstrapAdmin) await ensureBootstrapAdmin(app, config.bootstrapAdmin);
  if (config.demoSeed && config.role !== 'worker') await seedDemoIfEmpty(app);
}

async function ensureBootstrapAdmin(app: FastifyInstance, admin: { email: string; password: string }) {
  const users = new UsersRepository(app.db);
  if (await users.emailTaken({ email: admin.email })) return;
  const passwordHash = await hashSecret(admin.password);
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
    await seedDemoNetwork(tx);
    return true;
  });
  if (seeded) {
    // Printed once, on the start that seeds: these are demo accounts of a local embedded database.
    app.log.info(demoCredentialsMessage());
  }
}
