// Safety at accept (SPEC §14.2): whoever takes on a referral with precautions or contraindications
// says they read them, and the history keeps that they did.
import { unprocessable } from '../../lib/errors.js';

/** Whether the order warns the therapist of anything: a precaution, or contraindications in words. */
export function hasPrecautions(referral: { precautions: readonly string[]; contraindications: string }): boolean {
  return referral.precautions.length > 0 || referral.contraindications.trim() !== '';
}

export function precautionsNotAcknowledged() {
  return unprocessable(
    'precautions-not-acknowledged',
    'The referral has precautions or contraindications: read them and accept with "acknowledgedPrecautions": true',
    { errors: [{ field: 'acknowledgedPrecautions', message: 'must be true: the referral has precautions or contraindications' }] },
  );
}
