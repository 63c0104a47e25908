// On the embedded database the JWT key is generated once and kept beside the data, so tokens survive restarts.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config.js';

export async function resolveJwtSecret(config: Config): Promise<string> {
  if (config.jwt.secret) return config.jwt.secret;
  if (config.dataDir.startsWith('memory://')) return randomBytes(48).toString('base64url');
  const file = join(config.dataDir, 'jwt-secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(48).toString('base64url');
  await mkdir(config.dataDir, { recursive: true });
  // wx: if two processes race, the loser fails instead of overwriting the key the winner already uses.
  await writeFile(file, secret, { mode: 0o600, flag: 'wx' });
  return secret;
}
