// The key that signs access tokens: JWT_SECRET, or on the embedded database 48 random bytes
// generated once into DATA_DIR (lib/generated-key.ts), so tokens survive restarts.
import type { Config } from '../../config.js';
import { resolveGeneratedKey } from '../../lib/generated-key.js';

export async function resolveJwtSecret(config: Config): Promise<string> {
  if (config.jwt.secret) return config.jwt.secret;
  // Kept as base64url text since the first releases: a data folder of theirs reads the same secret.
  const key = await resolveGeneratedKey({ given: undefined, setting: 'JWT_SECRET', databaseUrl: config.databaseUrl, dataDir: config.dataDir, file: 'jwt-secret', bytes: 48 });
  return key.toString('base64url');
}
