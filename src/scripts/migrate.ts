// npm run migrate — applies pending migrations to DATABASE_URL (or the embedded database) and exits.
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';

const config = loadConfig(process.env);
const database = await openDatabase({ databaseUrl: config.databaseUrl, directUrl: config.databaseDirectUrl, preparedStatements: false, dataDir: config.dataDir });
try {
  await database.migrate();
  process.stdout.write(`migrations applied (${database.driver})\n`);
} finally {
  await database.close();
}
