// Generates the OpenAPI document from the route schemas, without a server or a database on disk.
import { buildApp } from './app.js';
import { loadConfig } from './config.js';

export async function generateOpenApiDocument(): Promise<string> {
  const app = await buildApp({
    config: loadConfig({ DATA_DIR: 'memory://', DEMO_SEED: 'false', JWT_SECRET: 'openapi-generation-only-secret-0123456789' }),
  });
  try {
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}
