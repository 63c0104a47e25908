// Which keys an API client may register for its client assertions: public keys only, of the two
// kinds SMART Backend Services names (RSA of at least 2048 bits for RS384, EC on P-384 for ES384),
// each with a kid unique in the set; and which JWKS URLs it may name instead (the SSRF guard's).
import { createPublicKey } from 'node:crypto';
import type { FieldProblem } from '../../lib/errors.js';
import { targetUrlProblem } from '../../lib/outbound/target-guard.js';
import type { JwkSet, PublicJwk } from './schemas.js';

// Private halves of RSA, EC and OKP keys, and symmetric keys: a server that holds them could sign
// as the client, so they are refused by name rather than dropped without a word.
const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const minRsaBits = 2048;
const algorithmOf = { RSA: 'RS384', EC: 'ES384' } as const;

/** The members a key is kept with: what verifying needs and nothing else. */
export function publicMembersOf(key: PublicJwk): PublicJwk {
  const common = { kty: key.kty, kid: key.kid, alg: algorithmOf[key.kty], use: 'sig' as const };
  return key.kty === 'RSA' ? { ...common, n: key.n!, e: key.e! } : { ...common, crv: 'P-384', x: key.x!, y: key.y! };
}

/** Why one key may not be registered, as problems naming its members. */
function keyProblems(key: PublicJwk, path: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const problem = (member: string, message: string) => problems.push({ field: `${path}.${member}`, message });
  for (const member of privateMembers) {
    if (member in key) problem(member, 'is private key material: register public keys only, and keep the private key to yourself');
  }
  if (key.alg !== undefined && key.alg !== algorithmOf[key.kty]) problem('alg', `must be ${algorithmOf[key.kty]} for a ${key.kty} key`);
  if (key.key_ops !== undefined && !key.key_ops.includes('verify')) problem('key_ops', 'must include verify');
  const needed = key.kty === 'RSA' ? (['n', 'e'] as const) : (['crv', 'x', 'y'] as const);
  for (const member of needed) if (key[member] === undefined) problem(member, `is required for a ${key.kty} key`);
  if (problems.length > 0) return problems;

  let details;
  try {
    details = createPublicKey({ key: publicMembersOf(key) as never, format: 'jwk' }).asymmetricKeyDetails;
  } catch {
    problem(key.kty === 'RSA' ? 'n' : 'x', `is not a valid ${key.kty === 'RSA' ? 'RSA' : 'P-384'} public key`);
    return problems;
  }
  if (key.kty === 'RSA' && (details?.modulusLength ?? 0) < minRsaBits) problem('n', `must be at least ${minRsaBits} bits (it is ${details?.modulusLength ?? 0})`);
  return problems;
}

/** Why a key set may not be registered: each key's problems, and a kid used twice. */
export function jwksProblems(jwks: JwkSet, field = 'jwks'): FieldProblem[] {
  const problems = jwks.keys.flatMap((key, index) => keyProblems(key, `${field}.keys[${index}]`));
  jwks.keys.forEach((key, index) => {
    const first = jwks.keys.findIndex((other) => other.kid === key.kid);
    if (first !== index) problems.push({ field: `${field}.keys[${index}].kid`, message: `repeats the kid of ${field}.keys[${first}]; each key needs its own` });
  });
  return problems;
}

/** The key set as it is kept: public members only, the algorithm and use spelled out. */
export function storedJwks(jwks: JwkSet): JwkSet {
  return { keys: jwks.keys.map(publicMembersOf) };
}

/**
 * Why a JWKS URL may not be registered. The keys at it decide who can sign in as the client, so it
 * must be https, and (like a webhook target) must not point inside our network; allowPrivate, for
 * development and tests, lifts both.
 */
export function jwksUrlProblem(url: string, allowPrivate: boolean): string | undefined {
  return targetUrlProblem(url, allowPrivate);
}
