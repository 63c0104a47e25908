// The one way out to a partner's URL: an undici Agent whose every new connection passes the SSRF
// guard (target-guard.ts), and the same guard asked about IP literals, which node:net connects to
// without a lookup. undici's request follows no redirect, so a 3xx is always the answer itself.
import { isIP, type LookupFunction } from 'node:net';
import type { Agent } from 'undici';
import { normalizedHost } from './target-guard.js';

export class GuardedAgent {
  private agent: Promise<Agent> | undefined;

  constructor(private readonly options: { lookup: LookupFunction; connectTimeoutMs: number }) {}

  /**
   * undici is loaded with the first request, not at start: it costs about 20 MB of memory, which a
   * process that never calls out (no webhook endpoint, no JWKS URL) never needs.
   */
  connections(): Promise<Agent> {
    this.agent ??= import('undici').then(
      ({ Agent }) =>
        new Agent({
          // The guard resolves (and refuses) every name when a connection is opened; a connection
          // kept alive stays with the address that was checked, so DNS rebinding cannot move it.
          connect: { lookup: this.options.lookup },
          // The caller's abort signal is the one clock of a request. undici's connect timeout comes
          // later, so it only ends a connect that an aborted request left behind: its error would
          // name the addresses tried, which the URL's owners must not see.
          connectTimeout: this.options.connectTimeoutMs,
          headersTimeout: 0,
          bodyTimeout: 0,
        }),
    );
    return this.agent;
  }

  /**
   * The guard's refusal of an IP-literal host, or null. Asked before every request, since a
   * kept-alive connection skips the connect-time check.
   */
  refusalOf(hostname: string): Promise<(Error & { code?: string | number }) | null> {
    const host = normalizedHost(hostname);
    if (!isIP(host)) return Promise.resolve(null);
    return new Promise((resolve) => this.options.lookup(host, { all: true }, (error) => resolve(error)));
  }

  /** Waits for the requests in flight, then closes every connection. */
  async close(): Promise<void> {
    await (await this.agent)?.close();
  }
}
