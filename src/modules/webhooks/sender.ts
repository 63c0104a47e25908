// One HTTP POST of a signed webhook: connect through the SSRF guard, give up after the timeout,
// never follow a redirect, and read at most a bounded part of the answer.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { normalizedHost } from './target-guard.js';

export interface SendResult {
  statusCode: number | null;
  headers: Record<string, string | string[] | undefined>;
  excerpt: string;
  latencyMs: number;
  error: string | null;
}

export interface SendOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  maxResponseBytes: number;
  lookup: LookupFunction;
}

/** How a failed connection or request is logged for the endpoint's owners. */
function describeError(error: Error & { code?: string }, timeoutMs: number): string {
  const message = error.name === 'TimeoutError' || error.name === 'AbortError' ? `timed out after ${timeoutMs} ms` : `${error.code ?? error.name}: ${error.message}`;
  return message.slice(0, 500);
}

/**
 * Asks the lookup about an IP literal, as node:net connects to one without calling `lookup`:
 * every target, name or address, passes the same guard before a connection is made.
 */
function checkLiteral(hostname: string, lookup: LookupFunction): Promise<(Error & { code?: string }) | null> {
  const host = normalizedHost(hostname);
  if (!isIP(host)) return Promise.resolve(null);
  return new Promise((resolve) => lookup(host, { all: true }, (error) => resolve(error)));
}

export async function sendWebhook({ url, headers, body, timeoutMs, maxResponseBytes, lookup }: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const target = new URL(url);
  const refused = await checkLiteral(target.hostname, lookup);
  if (refused) return { statusCode: null, headers: {}, excerpt: '', error: describeError(refused, timeoutMs), latencyMs: Math.round(performance.now() - started) };
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Omit<SendResult, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, latencyMs: Math.round(performance.now() - started) });
    };
    const req = request(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'massage-referral-webhooks/1', ...headers },
        lookup,
        signal: AbortSignal.timeout(timeoutMs),
        // A fresh connection per attempt: the guard checks every connect.
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () =>
          finish({
            statusCode: response.statusCode ?? null,
            headers: response.headers,
            excerpt: Buffer.concat(chunks).toString('utf8').slice(0, maxResponseBytes),
            error: null,
          });
        response.on('data', (chunk: Buffer) => {
          if (size < maxResponseBytes) chunks.push(chunk.subarray(0, maxResponseBytes - size));
          size += chunk.length;
          // Enough read: the status is known, and a huge answer must not hold the worker.
          if (size >= maxResponseBytes) {
            done();
            response.destroy();
          }
        });
        response.on('end', done);
        response.on('error', done);
      },
    );
    req.on('error', (error: Error & { code?: string }) => {
      finish({ statusCode: null, headers: {}, excerpt: '', error: describeError(error, timeoutMs) });
    });
    req.end(body);
  });
}
