// The key that seals stored secrets (webhook signing secrets): DATA_ENCRYPTION_KEY, or on the
// embedded database one generated once into DATA_DIR, like the JWT secret. At start, the webhooks
// module seals again under the current key every signing secret left in clear by an older version
// or sealed under a key of DATA_ENCRYPTION_PREVIOUS_KEYS; that is the whole key rotation.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { resolveGeneratedKey } from '../lib/generated-key.js';
import { SecretBox } from '../lib/secret-box.js';

declare module 'fastify' {
  interface FastifyInstance {
    dataEncryption: SecretBox;
  }
}

export const dataEncryptionKeyFile = 'data-encryption-key';

export function resolveDataEncryptionKey(config: Config): Promise<Buffer> {
  return resolveGeneratedKey({
    given: config.encryption.key,
    setting: 'DATA_ENCRYPTION_KEY',
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    file: dataEncryptionKeyFile,
  });
}

export default fp(
  async (app, options: { config: Config }) => {
    const box = new SecretBox(await resolveDataEncryptionKey(options.config), options.config.encryption.previousKeys);
    app.decorate('dataEncryption', box);
  },
  { name: 'data-encryption', dependencies: ['database'] },
);
