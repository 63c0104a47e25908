// Process entry: validates configuration, builds the app, listens, and shuts down gracefully.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { DemoAccountsRefusedError } from './seed/bootstrap.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }

  const logger = await createLogger(config);
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp({ config, logger });
  } catch (error) {
    if (error instanceof DemoAccountsRefusedError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }

  // Stop taking requests, let those in flight finish, then close the database. The grace period
  // outlasts a webhook attempt, so a delivery in flight ends and gives its lease back.
  closeWithGrace({ delay: Math.max(10_000, config.webhooks.timeoutMs + 5_000), logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await app.close();
  });

  await app.listen({ port: config.port, host: config.host });
  logger.info(
    { role: config.role, database: config.databaseUrl ? 'postgresql' : `embedded (${config.dataDir})` },
    `API docs at http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port}/docs`,
  );
}

await main();
