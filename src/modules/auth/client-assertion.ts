// Checks a client assertion (RFC 7523 §3, SMART Backend Services): its header, whose client it
// claims to be, the keys of that client, the signature, audience and lifetime. Single use (the jti)
// is the token service's, in the transaction that issues the token.
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { ApiClientAuthMethod } from '../../lib/vocabulary.js';
import type { RemoteJwks } from './remote-jwks.js';
import { JwksFetchError } from './remote-jwks.js';
import { assertionAlgorithms, type JwkSet } from './schemas.js';

// Clocks of the client and ours may differ by this much, for exp and nbf alike.
const clockToleranceSeconds = 60;
// An assertion is meant for one request now; a long-lived one is a bearer credential in disguise.
const maxLifetimeSeconds = 300;
const maxJtiLength = 256;

/** The API client as the token endpoint reads it. */
export interface SigningClient {
  id: string;
  clientId: string;
  authMethod: ApiClientAuthMethod;
  jwks: JwkSet | null;
  jwksUrl: string | null;
  active: boolean;
  revokedAt: Date | null;
}

/**
 * A refused assertion: `reason` is for our log and never holds the assertion; `description` is
 * what the client is told beside invalid_client; `client` is the client it named, if it exists,
 * so the failure is audited against it.
 */
export class AssertionRefused extends Error {
  override name = 'AssertionRefused';
  constructor(
    readonly reason: string,
    readonly description: string,
    readonly client?: SigningClient,
  ) {
    super(reason);
  }
}

export interface VerifiedAssertion<Client extends SigningClient> {
  client: Client;
  jti: string;
  expiresAt: Date;
}

const invalidCredentials = 'The client credentials are invalid';

/** What a refusal of jose's says, for the log and the client alike (none of it is secret to the signer). */
function describeVerificationError(error: unknown, tokenUrl: string): string {
  if (error instanceof errors.JWTExpired) return 'The client assertion has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return `The client assertion's aud must be ${tokenUrl}`;
    if (error.claim === 'iss' || error.claim === 'sub') return "The client assertion's iss and sub must both be the client_id";
    if (error.claim === 'nbf') return 'The client assertion is not valid yet (nbf)';
    return `The client assertion's ${error.claim} claim is missing or invalid`;
  }
  if (error instanceof errors.JWKSNoMatchingKey) return "No key of the client matches the assertion's kid and alg";
  if (error instanceof errors.JWKSMultipleMatchingKeys) return "More than one key of the client matches the assertion's kid";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "The client assertion's signature does not verify with the client's key";
  return 'The client assertion is not a valid signed JWT';
}

export class ClientAssertions<Client extends SigningClient> {
  constructor(
    private readonly findClient: (clientId: string) => Promise<Client | undefined>,
    private readonly remoteJwks: RemoteJwks,
    /** `${PUBLIC_BASE_URL}/v1/auth/token`: the one audience an assertion may be for. */
    private readonly tokenUrl: string,
  ) {}

  async verify(assertion: string, clientIdParam: string | undefined): Promise<VerifiedAssertion<Client>> {
    let header;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(assertion);
      unverified = decodeJwt(assertion);
    } catch {
      throw new AssertionRefused('not a JWT', 'The client assertion is not a valid signed JWT');
    }
    const clientId = unverified.iss;
    if (typeof clientId !== 'string' || clientId === '') throw new AssertionRefused('no iss', "The client assertion's iss must be the client_id");
    if (clientIdParam !== undefined && clientIdParam !== clientId) throw new AssertionRefused('client_id differs from iss', "client_id must be the client assertion's iss");
    // Looked up before the header is judged, so that every refusal is audited against the client it claimed to be.
    const client = await this.findClient(clientId);
    if (!client) throw new AssertionRefused('unknown client', invalidCredentials);
    // Pinned before any key is looked at: refuses alg none, HMAC with a public key as its secret, and every other algorithm.
    if (typeof header.alg !== 'string' || !(assertionAlgorithms as readonly string[]).includes(header.alg)) {
      throw new AssertionRefused(`alg ${String(header.alg)}`, `The client assertion must be signed with ${assertionAlgorithms.join(' or ')}`, client);
    }
    if (typeof header.kid !== 'string' || header.kid === '') throw new AssertionRefused('no kid', "The client assertion's header must name its key (kid)", client);
    if (header.typ !== undefined && String(header.typ).toUpperCase() !== 'JWT') throw new AssertionRefused(`typ ${String(header.typ)}`, "The client assertion's typ must be JWT", client);
    if (client.authMethod !== 'private_key_jwt') throw new AssertionRefused('client has no registered keys', invalidCredentials, client);
    if (!client.active || client.revokedAt) throw new AssertionRefused('client revoked', invalidCredentials, client);
    // A jku is only ever the URL the client registered: a URL taken from the assertion would let anyone name keys of their own.
    if (header.jku !== undefined && header.jku !== client.jwksUrl) throw new AssertionRefused('jku differs from the registered JWKS URL', "The assertion's jku is not the client's registered JWKS URL", client);

    const payload = await this.verifiedPayload(assertion, client);
    const now = Date.now() / 1000;
    if (payload.exp! - now > maxLifetimeSeconds + clockToleranceSeconds) {
      throw new AssertionRefused('exp too far ahead', `The client assertion's exp must be at most ${maxLifetimeSeconds} seconds ahead`, client);
    }
    const jti = payload.jti;
    if (typeof jti !== 'string' || jti === '' || jti.length > maxJtiLength) {
      throw new AssertionRefused('bad jti', `The client assertion's jti must be a string of 1 to ${maxJtiLength} characters`, client);
    }
    // Kept past exp by the tolerance: within it the assertion would still be taken.
    return { client, jti, expiresAt: new Date((payload.exp! + clockToleranceSeconds) * 1000) };
  }

  /** The payload once the signature, issuer, subject, audience and times check out with the client's keys. */
  private async verifiedPayload(assertion: string, client: Client): Promise<JWTPayload> {
    const check = (keys: JSONWebKeySet) =>
      jwtVerify(assertion, createLocalJWKSet(keys), {
        algorithms: [...assertionAlgorithms],
        issuer: client.clientId,
        subject: client.clientId,
        audience: this.tokenUrl,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        clockTolerance: clockToleranceSeconds,
      }).then((result) => result.payload);
    try {
      if (client.jwks) return await check(client.jwks as JSONWebKeySet);
      const url = client.jwksUrl!;
      const { keys, fetched } = await this.remoteJwks.keySet(url);
      try {
        return await check(keys);
      } catch (error) {
        // An unknown kid may be a key the client rotated in since we fetched: look once more.
        if (!(error instanceof errors.JWKSNoMatchingKey) || fetched) throw error;
        const fresh = await this.remoteJwks.refetch(url);
        if (!fresh) throw error;
        return await check(fresh);
      }
    } catch (error) {
      if (error instanceof JwksFetchError) throw new AssertionRefused(error.message, "The client's JWKS URL gave no usable key set", client);
      const description = describeVerificationError(error, this.tokenUrl);
      throw new AssertionRefused(description, description, client);
    }
  }
}
