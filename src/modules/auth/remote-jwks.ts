// Key sets served at API clients' JWKS URLs: fetched through the SSRF-guarded agent (lib/outbound)
// within a time and size limit, following no redirect, and cached, so that a sign-in costs no
// fetch while the set is fresh and a partner's URL is not called more often than it must be.
import type { LookupFunction } from 'node:net';
import type { JSONWebKeySet } from 'jose';
import { GuardedAgent } from '../../lib/outbound/guarded-agent.js';
import { jwksUrlProblem } from './jwks-policy.js';

const fetchTimeoutMs = 5000;
const maxBytes = 64 * 1024;
// A partner's rotation shows up within this long even when no unknown kid asks for it.
const freshForMs = 10 * 60 * 1000;
// An unknown kid may mean a rotation, so it refetches the set; but a stream of made-up kids must
// not turn us into a client hammering the partner's URL.
const refetchCooldownMs = 30 * 1000;
const maxKeys = 100;

/** Why a JWKS URL gave no usable key set; said in our log, and to the client only as invalid_client. */
export class JwksFetchError extends Error {
  override name = 'JwksFetchError';
}

interface Entry {
  keys: JSONWebKeySet;
  fetchedAt: number;
  /** When an unknown kid last caused a refetch (0: never). */
  refetchedAt: number;
}

/** Only the public RSA and EC keys of a served set, with the members verifying needs: whatever else the URL serves is not ours to use. */
function publicKeysOf(body: unknown): JSONWebKeySet {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new JwksFetchError('the JWKS URL did not answer a JSON Web Key Set');
  const members = { RSA: ['kty', 'kid', 'alg', 'use', 'n', 'e'], EC: ['kty', 'kid', 'alg', 'use', 'crv', 'x', 'y'] } as const;
  return {
    keys: keys
      .filter((key): key is Record<string, string> => typeof key === 'object' && key !== null && (key.kty === 'RSA' || key.kty === 'EC') && typeof key.kid === 'string')
      .slice(0, maxKeys)
      .map((key) => Object.fromEntries(members[key.kty as 'RSA' | 'EC'].filter((member) => key[member] !== undefined).map((member) => [member, key[member]]))),
  };
}

export class RemoteJwks {
  private readonly agent: GuardedAgent;
  private readonly entries = new Map<string, Entry>();
  /** Fetches in flight by URL: simultaneous sign-ins of one client wait for one fetch. */
  private readonly inFlight = new Map<string, Promise<Entry>>();

  constructor(private readonly options: { lookup: LookupFunction; allowPrivate: boolean }) {
    this.agent = new GuardedAgent({ lookup: options.lookup, connectTimeoutMs: fetchTimeoutMs + 1000 });
  }

  /** The set at the URL, from the cache while fresh; `fetched` says whether this call fetched it. */
  async keySet(url: string): Promise<{ keys: JSONWebKeySet; fetched: boolean }> {
    const cached = this.entries.get(url);
    if (cached && Date.now() - cached.fetchedAt < freshForMs) return { keys: cached.keys, fetched: false };
    return { keys: (await this.load(url, cached?.refetchedAt ?? 0)).keys, fetched: true };
  }

  /** The set fetched again for an unknown kid, or undefined while the last such refetch is too recent. */
  async refetch(url: string): Promise<JSONWebKeySet | undefined> {
    const cached = this.entries.get(url);
    const now = Date.now();
    if (cached && now - cached.refetchedAt < refetchCooldownMs) return undefined;
    // Marked before the fetch, so sign-ins racing with unknown kids share this one refetch.
    if (cached) cached.refetchedAt = now;
    return (await this.load(url, now)).keys;
  }

  private load(url: string, refetchedAt: number): Promise<Entry> {
    let pending = this.inFlight.get(url);
    if (!pending) {
      pending = this.fetch(url)
        .then((keys) => {
          const entry = { keys, fetchedAt: Date.now(), refetchedAt };
          this.entries.set(url, entry);
          return entry;
        })
        .finally(() => this.inFlight.delete(url));
      this.inFlight.set(url, pending);
    }
    return pending;
  }

  private async fetch(url: string): Promise<JSONWebKeySet> {
    // Checked again at every fetch: a URL registered under older rules gets today's.
    const problem = jwksUrlProblem(url, this.options.allowPrivate);
    if (problem) throw new JwksFetchError(`the JWKS URL ${problem}`);
    const target = new URL(url);
    const refused = await this.agent.refusalOf(target.hostname);
    if (refused) throw new JwksFetchError(refused.message);
    const signal = AbortSignal.timeout(fetchTimeoutMs);
    let response;
    try {
      response = await (await this.agent.connections()).request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'GET',
        headers: { accept: 'application/jwk-set+json, application/json', 'user-agent': 'massage-referral-auth/1' },
        signal,
      });
    } catch (error) {
      throw new JwksFetchError(signal.aborted ? `the JWKS URL did not answer within ${fetchTimeoutMs} ms` : `the JWKS URL could not be reached (${(error as Error).message})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        // Leaving the loop destroys the body and that one connection: an endless answer is not read.
        if (size > maxBytes) throw new JwksFetchError(`the JWKS URL answered more than ${maxBytes} bytes`);
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof JwksFetchError) throw error;
      throw new JwksFetchError(signal.aborted ? `the JWKS URL did not answer within ${fetchTimeoutMs} ms` : 'the JWKS URL broke off its answer');
    }
    // undici follows no redirect: a 3xx lands here like any other status that is not 200.
    if (response.statusCode !== 200) throw new JwksFetchError(`the JWKS URL answered ${response.statusCode}`);
    try {
      return publicKeysOf(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (error) {
      throw error instanceof JwksFetchError ? error : new JwksFetchError('the JWKS URL did not answer JSON');
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
