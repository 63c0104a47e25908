// npm run migrate — applies pending migrations to DATABASE_URL (through DATABASE_DIRECT_URL when
// that is set), or to the embedded database, and exits.
import { ConfigError, loadConfig, type Config } from '../config.js';
import { openDatabase } from '../db/database.js';

let config: Config;
try {
  // Only the database is needed: a migration job need not hold the service's keys.
  config = loadConfig(process.env, { forMigrations: true });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
const database = await openDatabase({ databaseUrl: config.databaseUrl, directUrl: config.databaseDirectUrl, preparedStatements: false, dataDir: config.dataDir });
try {
  await database.migrate();
  process.stdout.write(`migrations applied (${database.driver})\n`);
} finally {
  await database.close();
}
