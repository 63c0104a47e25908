// Slow salted hashes (scrypt) for passwords and client secrets.
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (password: string, salt: Buffer, keyLength: number, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

// OWASP's scrypt floor (N=2^17 is their first choice; 2^15 with r=8 keeps a sign-in near 50 ms on 2 cores).
export const defaultHashCostLog2 = 15;
const r = 8;
const p = 1;
const maxmem = 64 * 1024 * 1024;
const keyLength = 32;

/** A new hash at cost 2^costLog2; a stored hash carries its own cost, so verification needs none. */
export async function hashSecret(secret: string, costLog2 = defaultHashCostLog2): Promise<string> {
  const N = 2 ** costLog2;
  const salt = randomBytes(16);
  const key = await scrypt(secret, salt, keyLength, { N, r, p, maxmem });
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, storedR, storedP, salt, expected] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !expected) return false;
  const expectedKey = Buffer.from(expected, 'base64url');
  const key = await scrypt(secret, Buffer.from(salt, 'base64url'), expectedKey.length, {
    N: Number(n),
    r: Number(storedR),
    p: Number(storedP),
    maxmem,
  });
  return timingSafeEqual(key, expectedKey);
}

/** Hashing at the app's configured cost (PASSWORD_HASH_COST; tests lower it to make many accounts quickly). */
export class Passwords {
  // Verifying against this when no account matches keeps unknown and known emails equally slow.
  private readonly decoyHash: Promise<string>;

  constructor(private readonly costLog2 = defaultHashCostLog2) {
    this.decoyHash = hashSecret(randomBytes(16).toString('hex'), costLog2);
  }

  hash(secret: string): Promise<string> {
    return hashSecret(secret, this.costLog2);
  }

  verify(secret: string, stored: string): Promise<boolean> {
    return verifySecret(secret, stored);
  }

  async burnVerification(secret: string): Promise<void> {
    await verifySecret(secret, await this.decoyHash);
  }

  /**
   * Checks a secret against a stored hash, or against the decoy when there is none: the same hash
   * work either way, so the time taken does not tell whether an account exists. False without one.
   */
  async verifyOrDecoy(secret: string, stored: string | undefined): Promise<boolean> {
    const matches = await verifySecret(secret, stored ?? (await this.decoyHash));
    return stored !== undefined && matches;
  }
}
