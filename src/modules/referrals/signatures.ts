// Signed orders (SPEC §14.1): who may sign a referral for its prescriber, and what they attest.
import { accessDenied, conflict } from '../../lib/errors.js';
import type { SignatureMethod } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';
import type { Signature } from './schemas.js';

/** What each kind of signer attests; kept with the signature, so later wording never rewrites it. */
const attestations: Record<SignatureMethod, string> = {
  physician: 'I ordered this treatment for this patient and sign this order.',
  ehr_attested: "The office's EHR attests that the prescriber ordered this treatment and signed the order in the EHR.",
};

/**
 * How the caller may sign for the prescriber, if at all: the prescriber in person, or the office's
 * EHR client with `referrals:sign`, which vouches that the prescriber signed in the EHR.
 */
export function signingMethodOf(principal: Principal, prescriberId: string): SignatureMethod | undefined {
  if (principal.kind === 'user') return principal.role === 'physician' && principal.id === prescriberId ? 'physician' : undefined;
  return principal.scopes.includes('referrals:sign') ? 'ehr_attested' : undefined;
}

export function signatureBy(method: SignatureMethod, prescriberId: string, at = new Date()): Signature {
  return { signedBy: prescriberId, signedAt: at.toISOString(), method, attestation: attestations[method] };
}

/** A physician who prescribes for themselves signs by creating the referral; so does an EHR that vouches. */
export function signatureAtCreate(principal: Principal, prescriberId: string): Signature | null {
  const method = signingMethodOf(principal, prescriberId);
  return method ? signatureBy(method, prescriberId) : null;
}

export function signatureRequired() {
  return conflict('signature-required', 'The referral is not signed: the prescriber signs it first (POST /v1/referrals/{id}/sign), then it can be sent');
}

/** A 403 for an office member (or an EHR without referrals:sign) doing what only the prescriber may; audited against the referral. */
export function prescriberOnly(what: string, referral: { id: string; patientId: string }) {
  return accessDenied(`Only the prescriber (or the office's EHR with scope referrals:sign) can ${what}`, {
    resourceType: 'referral',
    resourceId: referral.id,
    patientId: referral.patientId,
  });
}
