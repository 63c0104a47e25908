// Opens the database for the app's lifetime, applies migrations, and closes it with the app.
import type { Tracer } from '@opentelemetry/api';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { openDatabase, type Database, type DatabaseHandle } from '../db/database.js';

declare module 'fastify' {
  interface FastifyInstance {
    database: DatabaseHandle;
    db: Database;
  }
}

export default fp(
  async (app, options: { config: Config; pgliteTemplate?: Blob | undefined; tracer?: Tracer | undefined }) => {
    const database = await openDatabase({
      databaseUrl: options.config.databaseUrl,
      directUrl: options.config.databaseDirectUrl,
      preparedStatements: options.config.databasePreparedStatements,
      poolSize: options.config.databasePoolSize,
      timeouts: options.config.databaseTimeouts,
      dataDir: options.config.dataDir,
      pgliteTemplate: options.pgliteTemplate,
      tracer: options.tracer,
    });
    app.addHook('onClose', () => database.close());
    await database.migrate();
    app.decorate('database', database);
    app.decorate('db', database.db);
  },
  { name: 'database' },
);
