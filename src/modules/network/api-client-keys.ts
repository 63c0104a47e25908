// The keys a private_key_jwt client registers, from its request: a key set of public keys, or a
// JWKS URL, checked by the auth module's rules (auth/jwks-policy.ts); anything else is a 400
// naming the field.
import { validationFailed } from '../../lib/errors.js';
import { jwksProblems, jwksUrlProblem, storedJwks } from '../auth/jwks-policy.js';
import type { JwkSet } from '../auth/schemas.js';
import type { ClientKeys } from './api-clients-repository.js';

export function clientKeysOf(body: { jwks?: JwkSet | undefined; jwksUrl?: string | undefined }, allowPrivateUrls: boolean): ClientKeys {
  if (body.jwks && body.jwksUrl !== undefined) throw validationFailed([{ field: 'jwksUrl', message: 'give jwks or jwksUrl, not both' }]);
  if (body.jwks) {
    const problems = jwksProblems(body.jwks);
    if (problems.length > 0) throw validationFailed(problems);
    return { jwks: storedJwks(body.jwks), jwksUrl: null };
  }
  if (body.jwksUrl !== undefined) {
    const problem = jwksUrlProblem(body.jwksUrl, allowPrivateUrls);
    if (problem) throw validationFailed([{ field: 'jwksUrl', message: problem }]);
    return { jwks: null, jwksUrl: body.jwksUrl };
  }
  throw validationFailed([{ field: 'jwks', message: 'a private_key_jwt client needs jwks or jwksUrl' }]);
}

/** A secret client names no keys: keys given with it would be silently unused. */
export function refuseKeysOfSecretClient(body: { jwks?: JwkSet | undefined; jwksUrl?: string | undefined }): void {
  const given = (['jwks', 'jwksUrl'] as const).filter((field) => body[field] !== undefined);
  if (given.length > 0) throw validationFailed(given.map((field) => ({ field, message: 'only with authMethod private_key_jwt' })));
}
