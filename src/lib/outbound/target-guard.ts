// Server-side request forgery guard for every URL a partner gives us to call (webhook targets,
// JWKS URLs): the URL is checked when registered, and again every time a connection is opened
// (the host name's rules, then every address it resolves to, or the address itself for an IP
// literal), so a DNS answer that changes after registration (rebinding) or a URL kept from older
// rules cannot point a request inside our network.
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

// The only IPv6 block handed out as global unicast (RFC 4291, IANA). Everything outside it is
// refused outright: IPv4-compatible ::/96, IPv4-mapped, NAT64 64:ff9b::/96 and 64:ff9b:1::/48,
// discard, unique-local, link-local, multicast. Inside it, ipaddr.js names the special-purpose
// ranges that tunnel to other addresses (6to4 2002::/16, Teredo 2001::/32) or are not routed
// (documentation, benchmarking, ORCHID, AS112, 3fff::/20), and those are refused too.
const globalUnicast = ipaddr.parseCIDR('2000::/3');

/**
 * Only ordinary public unicast addresses: IPv4 that ipaddr.js calls 'unicast', and IPv6 inside
 * 2000::/3 that it calls 'unicast'. Every form that embeds or translates to an IPv4 address is
 * refused rather than unwrapped, so no spelling of 127.0.0.1 gets through.
 */
export function isPublicAddress(address: string): boolean {
  if (!isIP(address) || !ipaddr.isValid(address)) return false;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed.range() === 'unicast';
  return parsed.match(globalUnicast) && parsed.range() === 'unicast';
}

// Top-level names that by standard or by habit stay inside a network, none of them delegated in
// the public DNS: localhost (RFC 6761), mDNS .local (RFC 6762), .internal (reserved by ICANN for
// private use), .arpa (home.arpa of RFC 8375 and the reverse zones), localdomain (the usual
// /etc/hosts suffix), and the suffixes RFC 6762 Appendix G lists as in use on private networks.
const localSuffixes = ['localhost', 'local', 'internal', 'arpa', 'localdomain', 'lan', 'home', 'intranet', 'corp', 'private'];

/** The host of a URL as DNS sees it: no IPv6 brackets, lower case, one root dot dropped. */
export function normalizedHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
}

/** Why a host (a name or an IP literal) may not be called when private targets are refused. */
function hostProblem(hostname: string): string | undefined {
  const host = normalizedHost(hostname);
  if (isIP(host)) return isPublicAddress(host) ? undefined : 'must point at a public address, not a private, loopback, link-local or special-purpose one';
  const labels = host.split('.');
  if (labels.some((label) => label === '')) return 'must have a valid host name';
  if (localSuffixes.includes(labels.at(-1)!)) return 'must not point at a local host name';
  // A single label is completed from the resolver's search domains: an internal host by design.
  if (labels.length < 2) return 'must use a fully qualified host name';
  return undefined;
}

/** Why a URL may not be called (a webhook target, a JWKS URL), or undefined when it may. */
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
  return allowPrivateTargets ? undefined : hostProblem(url.hostname);
}

/** A refused target. Its message names the host as registered, never what the host resolved to. */
export class BlockedTargetError extends Error {
  override name = 'BlockedTargetError';
  readonly code = 'EBLOCKEDTARGET';
}

/**
 * A lookup for the sender's connections that refuses a non-public target: a local or single-label
 * name, an IP literal that is not public, or a name with any non-public address among its answers.
 * node:net skips `lookup` for IP literals, so the sender calls it itself for those.
 */
export function guardedLookup(resolver: Resolver, allowPrivateTargets: boolean): LookupFunction {
  return (hostname, options, callback) => {
    const answer = (addresses: { address: string; family: number }[]) => {
      if ((options as { all?: boolean }).all) return (callback as unknown as (error: null, all: typeof addresses) => void)(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    };
    const refuse = (why: string) => callback(new BlockedTargetError(`${hostname} ${why}`), '', 0);
    const literal = normalizedHost(hostname);
    if (isIP(literal)) {
      if (!allowPrivateTargets && !isPublicAddress(literal)) return refuse('is not a public address');
      return answer([{ address: literal, family: isIP(literal) }]);
    }
    const problem = allowPrivateTargets ? undefined : hostProblem(hostname);
    if (problem) return refuse(`is not a public host name (the URL ${problem})`);
    resolver(hostname).then(
      (addresses) => {
        if (addresses.length === 0) return callback(new Error(`${hostname} did not resolve`), '', 0);
        // One non-public answer refuses the lot: which address a connect picks is not ours to choose.
        if (!allowPrivateTargets && !addresses.every((entry) => isPublicAddress(entry.address))) return refuse('resolves to an address that is not public');
        return answer(addresses);
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}
