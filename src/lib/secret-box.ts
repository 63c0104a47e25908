// Seals secrets the service must keep and use again (webhook signing secrets) with AES-256-GCM, so
// that a copy of the database alone does not give them away. A sealed value names the key it was
// sealed under (`v1.<keyId>.<base64url(iv | ciphertext | tag)>`), so keys can be rotated: values
// under a previous key stay readable until they are sealed again under the current one.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const format = 'v1';
const ivBytes = 12;
const tagBytes = 16;
const sealedPattern = /^v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

/** A short fingerprint naming a key in sealed values and messages; it does not reveal the key. */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('data-encryption-key-id\0').update(key).digest('base64url').slice(0, 10);
}

/** The key id a sealed value names, or undefined when the value is not sealed. */
export function sealedKeyId(value: string): string | undefined {
  return sealedPattern.exec(value)?.[1];
}

export class SecretBox {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(
    private readonly currentKey: Buffer,
    previousKeys: readonly Buffer[] = [],
  ) {
    if (currentKey.length !== 32) throw new Error('the data encryption key must be 32 bytes');
    this.currentKeyId = keyIdOf(currentKey);
    for (const key of [currentKey, ...previousKeys]) this.keys.set(keyIdOf(key), key);
  }

  /**
   * Seals under the current key. The purpose is authenticated with the value, so a value sealed
   * for one use cannot be passed off as another.
   */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', this.currentKey, iv);
    cipher.setAAD(additionalData(this.currentKeyId, purpose));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${format}.${this.currentKeyId}.${Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64url')}`;
  }

  /** The plaintext of a sealed value; throws, naming only the key id, when it cannot be opened. */
  open(sealed: string, purpose: string): string {
    const match = sealedPattern.exec(sealed);
    if (!match) throw new Error('the value is not a sealed secret');
    const [, keyId, payload] = match as unknown as [string, string, string];
    const key = this.keys.get(keyId);
    if (!key) throw new Error(`a secret is sealed under key ${keyId}, which is neither DATA_ENCRYPTION_KEY nor one of DATA_ENCRYPTION_PREVIOUS_KEYS`);
    const bytes = Buffer.from(payload, 'base64url');
    if (bytes.length < ivBytes + tagBytes) throw new Error(`a secret sealed under key ${keyId} is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, ivBytes));
    decipher.setAAD(additionalData(keyId, purpose));
    decipher.setAuthTag(bytes.subarray(bytes.length - tagBytes));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(ivBytes, bytes.length - tagBytes)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(`a secret sealed under key ${keyId} does not authenticate (altered, or sealed for another use)`);
    }
  }

  /** Whether this box holds the key a sealed value names. */
  canOpen(sealed: string): boolean {
    const keyId = sealedKeyId(sealed);
    return keyId !== undefined && this.keys.has(keyId);
  }
}

const additionalData = (keyId: string, purpose: string) => Buffer.from(`${format}.${keyId}.${purpose}`, 'utf8');
