// Slow salted hashes (scrypt) for passwords and client secrets.
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (password: string, salt: Buffer, keyLength: number, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

// OWASP's scrypt floor (N=2^17 is their first choice; 2^15 with r=8 keeps a sign-in near 50 ms on 2 cores).
const cost = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const keyLength = 32;

/**
 * Sets N for hashes made from now on (PASSWORD_HASH_COST); a stored hash carries its own N, so
 * verification is unaffected. Process-wide, like the cost itself: tests lower it to make their
 * many accounts quickly.
 */
export function configurePasswordHashing(costLog2: number): void {
  if (2 ** costLog2 === cost.N) return;
  cost.N = 2 ** costLog2;
  decoyHash = hashSecret(randomBytes(16).toString('hex'));
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(secret, salt, keyLength, cost);
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, expected] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !expected) return false;
  const expectedKey = Buffer.from(expected, 'base64url');
  const key = await scrypt(secret, Buffer.from(salt, 'base64url'), expectedKey.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: cost.maxmem,
  });
  return timingSafeEqual(key, expectedKey);
}

// Verifying against this when no account matches keeps unknown and known emails equally slow.
let decoyHash = hashSecret(randomBytes(16).toString('hex'));

export async function burnVerification(secret: string): Promise<void> {
  await verifySecret(secret, await decoyHash);
}

/**
 * Checks a secret against a stored hash, or against the decoy when there is none: the same hash
 * work either way, so the time taken does not tell whether an account exists. False without one.
 */
export async function verifySecretOrDecoy(secret: string, stored: string | undefined): Promise<boolean> {
  const matches = await verifySecret(secret, stored ?? (await decoyHash));
  return stored !== undefined && matches;
}
