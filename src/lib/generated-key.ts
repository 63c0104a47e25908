// A secret the service needs from its first start: given in the environment (required with
// DATABASE_URL, where several processes must share it), or on the embedded database generated
// once into DATA_DIR and kept there, readable by the service's user alone.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface GeneratedKeyOptions {
  /** The value from the environment, already decoded. */
  given: Buffer | undefined;
  /** Names the setting in errors, e.g. DATA_ENCRYPTION_KEY. */
  setting: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** The file in DATA_DIR that keeps a generated key. */
  file: string;
  /** The key's length: 32 bytes unless said. */
  bytes?: number;
}

export async function resolveGeneratedKey({ given, setting, databaseUrl, dataDir, file: name, bytes = 32 }: GeneratedKeyOptions): Promise<Buffer> {
  if (given) return given;
  if (databaseUrl) throw new Error(`${setting} is required with DATABASE_URL`);
  if (dataDir.startsWith('memory://')) return randomBytes(bytes);
  const file = join(dataDir, name);
  const read = async () => {
    // base64 or base64url: Node reads both.
    const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (key.length !== bytes) throw new Error(`${file} does not hold a ${bytes}-byte key in base64`);
    return key;
  };
  try {
    return await read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(bytes);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    // wx: if two processes race, the loser must not overwrite the key the winner already uses.
    await writeFile(file, key.toString('base64'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return read();
  }
  return key;
}
