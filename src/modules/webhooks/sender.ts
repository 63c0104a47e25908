// POSTs signed webhooks over one undici Agent: connections to a receiver are kept alive and reused
// across deliveries, every new connection passes the SSRF guard, no redirect is followed, an
// attempt gives up after the timeout, and at most a bounded part of the answer is read.
import type { LookupFunction } from 'node:net';
import { GuardedAgent } from '../../lib/outbound/guarded-agent.js';

/** The most of a receiver's answer that is read and kept: its status is known long before. */
export const maxResponseBytes = 4096;

export interface SendResult {
  statusCode: number | null;
  headers: Record<string, string | string[] | undefined>;
  excerpt: string;
  latencyMs: number;
  error: string | null;
}

type SendError = Error & { code?: string | number };

/** How a failed connection or request is logged for the endpoint's owners. */
function describeError(error: SendError, timeoutMs: number): string {
  const message = isTimeout(error) ? `timed out after ${timeoutMs} ms` : `${error.code ?? error.name}: ${error.message}`;
  return message.slice(0, 500);
}

const isTimeout = (error: SendError) => error.name === 'TimeoutError' || error.name === 'AbortError';

export class WebhookSender {
  private readonly agent: GuardedAgent;

  constructor(private readonly options: { lookup: LookupFunction; timeoutMs: number }) {
    // The abort signal is the one clock of an attempt; the connect timeout only ends what it left behind.
    this.agent = new GuardedAgent({ lookup: options.lookup, connectTimeoutMs: options.timeoutMs + 1000 });
  }

  async send({ url, headers, body, contentType = 'application/json' }: { url: string; headers: Record<string, string>; body: string; contentType?: string }): Promise<SendResult> {
    const { timeoutMs } = this.options;
    const started = performance.now();
    const finish = (result: Omit<SendResult, 'latencyMs'>): SendResult => ({ ...result, latencyMs: Math.round(performance.now() - started) });
    const failed = (error: SendError) => finish({ statusCode: null, headers: {}, excerpt: '', error: describeError(error, timeoutMs) });
    const target = new URL(url);
    const refused = await this.agent.refusalOf(target.hostname);
    if (refused) return failed(refused);
    let response;
    try {
      // undici's request follows no redirect: a 3xx is the answer, and counts as a failure.
      const agent = await this.agent.connections();
      response = await agent.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers: { 'content-type': contentType, 'user-agent': 'massage-referral-webhooks/1', ...headers },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      return failed(error as SendError);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        chunks.push(chunk.subarray(0, maxResponseBytes - size));
        size += chunk.length;
        // Enough read: the status is known, and a huge answer must not hold the worker. Leaving
        // the loop destroys the body, and with it that one connection.
        if (size >= maxResponseBytes) break;
      }
    } catch (error) {
      // Out of time while the answer was still coming: a timeout like any other. An answer cut
      // short otherwise still carries its status.
      if (isTimeout(error as SendError)) return failed(error as SendError);
    }
    return finish({
      statusCode: response.statusCode,
      headers: response.headers,
      excerpt: Buffer.concat(chunks).toString('utf8').slice(0, maxResponseBytes),
      error: null,
    });
  }

  /** Waits for the requests in flight, then closes every connection. */
  async close(): Promise<void> {
    await this.agent.close();
  }
}
