// Webhook signing secrets at rest: sealed under the data encryption key (SPEC §8 shows a secret
// once; the service must still sign with it), opened only to sign a delivery.
import { Webhook } from 'standardwebhooks';
import type { SecretBox } from '../../lib/secret-box.js';
import { sealedKeyId } from '../../lib/secret-box.js';
import type { WebhooksRepository } from './webhooks-repository.js';

const purpose = 'webhook_endpoint.secret';
const plaintextPrefix = 'whsec_';

export const sealSigningSecret = (box: SecretBox, secret: string) => box.seal(secret, purpose);

/**
 * The secret to sign with. A plaintext `whsec_` value was written by a version before sealing (or,
 * during a rolling deploy, by an instance still running one); it is sealed at the next start.
 */
export function openSigningSecret(box: SecretBox, stored: string): string {
  return stored.startsWith(plaintextPrefix) ? stored : box.open(stored, purpose);
}

/**
 * The Standard Webhooks headers of one delivery. While a rotated-out secret is still valid the
 * delivery carries its signature too, so a receiver can move to the new secret without a gap.
 */
export function signatureHeaders(
  box: SecretBox,
  endpoint: { secret: string; previousSecret: string | null; previousSecretExpiresAt: Date | null },
  { eventId, body, now }: { eventId: string; body: string; now: Date },
): Record<string, string> {
  const secrets = [openSigningSecret(box, endpoint.secret)];
  if (endpoint.previousSecret && endpoint.previousSecretExpiresAt && endpoint.previousSecretExpiresAt > now) secrets.push(openSigningSecret(box, endpoint.previousSecret));
  return {
    'webhook-id': eventId,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': secrets.map((secret) => new Webhook(secret).sign(eventId, now, body)).join(' '),
  };
}

/**
 * Seals every stored signing secret that is in clear or under a previous key under the current
 * key; returns how many endpoints changed. Refuses to go on when a secret is sealed under a key it
 * does not hold, so a service that could not sign never starts. Each update applies only if the
 * row still holds what was read, so several processes starting at once each seal a row at most once.
 */
export async function resealSigningSecrets(repository: WebhooksRepository, box: SecretBox): Promise<number> {
  const stale = await repository.secretsNotSealedUnder(box.currentKeyId);
  const reseal = (stored: string | null): string | null => {
    if (stored === null) return null;
    if (stored.startsWith(plaintextPrefix)) return sealSigningSecret(box, stored);
    if (sealedKeyId(stored) === box.currentKeyId) return stored;
    return sealSigningSecret(box, box.open(stored, purpose));
  };
  let changed = 0;
  for (const row of stale) {
    const to = { secret: reseal(row.secret)!, previousSecret: reseal(row.previousSecret) };
    if (await repository.replaceSecrets({ id: row.id, from: { secret: row.secret, previousSecret: row.previousSecret }, to })) changed++;
  }
  return changed;
}
