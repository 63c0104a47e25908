// The key that seals stored secrets (webhook signing secrets): DATA_ENCRYPTION_KEY, or on the
// embedded database one generated once into DATA_DIR, like the JWT secret. At start, the webhooks
// module seals again under the current key every signing secret left in clear by an older version
// or sealed under a key of DATA_ENCRYPTION_PREVIOUS_KEYS; that is the whole key rotation.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { SecretBox } from '../lib/secret-box.js';

declare module 'fastify' {
  interface FastifyInstance {
    dataEncryption: SecretBox;
  }
}

export const dataEncryptionKeyFile = 'data-encryption-key';

export async function resolveDataEncryptionKey(config: Config): Promise<Buffer> {
  if (config.encryption.key) return config.encryption.key;
  if (config.databaseUrl) throw new Error('DATA_ENCRYPTION_KEY is required with DATABASE_URL');
  if (config.dataDir.startsWith('memory://')) return randomBytes(32);
  const file = join(config.dataDir, dataEncryptionKeyFile);
  const read = async () => {
    const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte key in base64`);
    return key;
  };
  try {
    return await read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  try {
    // wx: if two processes race, the loser must not overwrite the key the winner already seals with.
    await writeFile(file, key.toString('base64'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return read();
  }
  return key;
}

export default fp(
  async (app, options: { config: Config }) => {
    const box = new SecretBox(await resolveDataEncryptionKey(options.config), options.config.encryption.previousKeys);
    app.decorate('dataEncryption', box);
  },
  { name: 'data-encryption', dependencies: ['database'] },
);
