// Server-side request forgery guard for webhook targets: the URL is checked when registered, and
// every address the host resolves to is checked again when a delivery connects, so a DNS answer
// that changes after registration (rebinding) cannot point a delivery inside our network.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Only ordinary public unicast addresses; loopback, private, link-local, unique-local, mapped and reserved forms are refused. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  // process() unwraps IPv4-mapped IPv6 (::ffff:10.0.0.1) to the IPv4 address it stands for.
  return ipaddr.process(address).range() === 'unicast';
}

/** Why a URL may not be a webhook target, or undefined when it may. */
export function targetUrlProblem(raw: string, allowPrivateTargets: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.protocol !== 'https:' && !(allowPrivateTargets && url.protocol === 'http:')) return 'must use https';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.hash) return 'must not have a fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivateTargets) {
    if (ipaddr.isValid(host) && !isPublicAddress(host)) return 'must not point at a private, loopback or link-local address';
    if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local')) {
      return 'must not point at a local host name';
    }
  }
  return undefined;
}

export class BlockedTargetError extends Error {
  override name = 'BlockedTargetError';
  readonly code = 'EBLOCKEDTARGET';
}

/** A lookup for http(s).request that resolves with the given resolver and refuses non-public answers. */
export function guardedLookup(resolver: Resolver, allowPrivateTargets: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolver(hostname).then(
      (addresses) => {
        if (addresses.length === 0) return callback(new Error(`${hostname} did not resolve`), '', 0);
        const blocked = allowPrivateTargets ? undefined : addresses.find((entry) => !isPublicAddress(entry.address));
        if (blocked) return callback(new BlockedTargetError(`${hostname} resolves to ${blocked.address}, which is not a public address`), '', 0);
        if ((options as { all?: boolean }).all) return (callback as unknown as (error: null, all: typeof addresses) => void)(null, addresses);
        return callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}
