// The hostile requests of the resource-limits test (resource-limits.test.ts): each is sent straight
// to the app, or over a raw socket for what app.inject cannot show (framing, chunking and the HTTP
// parser), timed, held to what an attacker may cost us, and tallied: the figure is the tally.
import net from 'node:net';
import { Readable } from 'node:stream';
import type { InjectOptions } from 'fastify';
import type { Test } from 'tap';
import type { Json, TestApp } from '../helper.js';

export type Injected = Awaited<ReturnType<TestApp['app']['inject']>>;

/** What an attacker may cost us per request: an answer within this time... */
export const answerBoundMs = 2000;
/** ...and no bigger than this plus twice the request (an echo of it), so a request cannot buy a far bigger answer. */
const answerBoundBytes = 64 * 1024;
export const MiB = 1024 * 1024;
export const problemMediaType = /^application\/problem\+json/;

interface Tally {
  label: string;
  status: number;
  ms: number;
}

/** Assertions that fail today because of a known defect, each with the defect named. */
export interface KnownDefects {
  status?: string;
  time?: string;
  problem?: string;
  size?: string;
}

interface Answer {
  status: number;
  ms: number;
  bytes: number;
  contentType: string;
  /** The size of what was sent, as far as it is known. */
  requestBytes: number;
}

interface RawAnswer extends Answer {
  head: string;
}

function requestSize(options: InjectOptions): number {
  const { payload, url, headers } = options;
  const body =
    typeof payload === 'string' ? Buffer.byteLength(payload) : Buffer.isBuffer(payload) ? payload.length : payload && !(payload instanceof Readable) ? Buffer.byteLength(JSON.stringify(payload)) : 0;
  const head = Object.values(headers ?? {}).reduce((sum: number, value) => sum + String(value).length, String(url ?? '').length);
  return body + head;
}

export function fieldsNamed(response: Injected): string[] {
  try {
    return ((response.json() as Json).errors ?? []).map((problem: Json) => problem.field);
  } catch {
    return [];
  }
}

/** The senders of one app, listening on `port`; every refusal they check goes into `tally`. */
export function hostileRequests(test: TestApp, port: number) {
  const tally: Tally[] = [];

  function assertRefused(t: Test, label: string, answer: Answer, expected: number | readonly number[] | undefined, known: KnownDefects) {
    tally.push({ label, status: answer.status, ms: answer.ms });
    const expectedList = expected === undefined ? undefined : typeof expected === 'number' ? [expected] : expected;
    t.ok(answer.status >= 400 && answer.status < 500, `${label}: a 4xx, never a 5xx (got ${answer.status})`, known.status ? { todo: known.status } : {});
    if (expectedList) t.ok(expectedList.includes(answer.status), `${label}: ${expectedList.join(' or ')} (got ${answer.status})`, known.status ? { todo: known.status } : {});
    t.ok(answer.ms < answerBoundMs, `${label}: answered in ${Math.round(answer.ms)} ms (< ${answerBoundMs})`, known.time ? { todo: known.time } : {});
    t.match(answer.contentType, problemMediaType, `${label}: problem+json`, known.problem ? { todo: known.problem } : {});
    const sizeBound = answerBoundBytes + 2 * answer.requestBytes;
    t.ok(answer.bytes <= sizeBound, `${label}: answer of ${answer.bytes} bytes (<= ${sizeBound})`, known.size ? { todo: known.size } : {});
  }

  /** Sends a request straight to the app (no contract check: the answers here are the subject) and times it. */
  async function send(options: InjectOptions & { token?: string }): Promise<{ response: Injected; ms: number }> {
    const { token, ...rest } = options;
    const started = performance.now();
    const response = await test.app.inject({ ...rest, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers } });
    return { response, ms: performance.now() - started };
  }

  async function probe(
    t: Test,
    label: string,
    options: InjectOptions & { token?: string },
    expected?: number | readonly number[],
    known: KnownDefects = {},
  ): Promise<Injected> {
    const { response, ms } = await send(options);
    const answer = { status: response.statusCode, ms, bytes: response.rawPayload.length, contentType: String(response.headers['content-type'] ?? ''), requestBytes: requestSize(options) };
    assertRefused(t, label, answer, expected, known);
    return response;
  }

  /** Writes head and body as given (however wrong) and reads the first answer; status 0 when none came. */
  function rawExchange(head: string, writeBody: (write: (text: string) => void) => void, waitMs = answerBoundMs + 1000): Promise<RawAnswer> {
    return new Promise((resolve) => {
      const started = performance.now();
      const socket = net.connect(port, '127.0.0.1');
      let received = Buffer.alloc(0);
      let settled = false;
      let sent = 0;
      const settle = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const text = received.toString('latin1');
        const headEnd = text.indexOf('\r\n\r\n');
        const responseHead = headEnd >= 0 ? text.slice(0, headEnd) : text;
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(responseHead)?.[1] ?? 0);
        const contentType = /\r\ncontent-type: *([^\r\n]*)/i.exec(responseHead)?.[1] ?? '';
        resolve({ status, ms: performance.now() - started, bytes: headEnd >= 0 ? received.length - headEnd - 4 : 0, contentType, head: responseHead, requestBytes: head.length + sent });
      };
      const timer = setTimeout(settle, waitMs);
      socket.on('data', (chunk) => {
        received = Buffer.concat([received, chunk]);
        const text = received.toString('latin1');
        const headEnd = text.indexOf('\r\n\r\n');
        const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headEnd))?.[1];
        if (headEnd >= 0 && length !== undefined && received.length - headEnd - 4 >= Number(length)) settle();
      });
      // The server may close while we still write: that is an answer, not a test failure.
      socket.on('error', settle);
      socket.on('close', settle);
      socket.on('connect', () => {
        socket.write(head);
        writeBody((text) => {
          sent += text.length;
          socket.write(text);
        });
      });
    });
  }

  async function rawProbe(t: Test, label: string, head: string, writeBody: (write: (text: string) => void) => void, expected: number | readonly number[], known: KnownDefects = {}) {
    const answer = await rawExchange(head, writeBody);
    t.not(answer.status, 0, `${label}: an answer came`);
    assertRefused(t, label, answer, expected, known);
    return answer;
  }

  return { tally, send, probe, rawProbe };
}
