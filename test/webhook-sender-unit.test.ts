// The webhook sender alone, against a loopback receiver (no app, no database): connections kept
// alive and reused, the guard asked before any connect, the timeout, the bounded answer, no
// redirect followed, and the connections closed with the sender.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebhookSender, maxResponseBytes } from '../src/modules/webhooks/sender.js';
import { guardedLookup } from '../src/lib/outbound/target-guard.js';

const loopbackOnly = guardedLookup(async () => [{ address: '127.0.0.1', family: 4 }], true);
const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': '1', 'webhook-signature': 'v1,x' };

async function receiver(t: Test, handler: (request: IncomingMessage, response: ServerResponse) => void) {
  let connections = 0;
  const bodies: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      handler(request, response);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { port, bodies, connections: () => connections, server };
}

function sender(t: Test, options: { timeoutMs?: number; lookup?: ReturnType<typeof guardedLookup> } = {}) {
  const sender = new WebhookSender({ lookup: options.lookup ?? loopbackOnly, timeoutMs: options.timeoutMs ?? 2000 });
  t.teardown(() => sender.close());
  return sender;
}

t.test('deliveries to one receiver reuse kept-alive connections', async (t) => {
  const hook = await receiver(t, (request, response) => response.end(`ok ${request.headers['webhook-id']}`));
  const send = sender(t);
  const url = `http://127.0.0.1:${hook.port}/hooks?x=1`;
  const sent = Array.from({ length: 10 }, (_, n) => `{"n":${n}}`);
  for (const body of sent) t.match(await send.send({ url, headers, body }), { statusCode: 200, excerpt: 'ok msg_1', error: null });
  t.same(hook.bodies, sent, 'every body arrived');
  // undici may open a second connection when a send follows the end of an answer at once.
  t.ok(hook.connections() <= 2, `ten deliveries over at most two connections (${hook.connections()})`);
});

t.test('the request: POST with the JSON content type, our user agent, the webhook headers and the path and query', async (t) => {
  let seen: IncomingMessage | undefined;
  const hook = await receiver(t, (request, response) => {
    seen = request;
    response.writeHead(204).end();
  });
  const result = await sender(t).send({ url: `http://127.0.0.1:${hook.port}/partner/hooks?tenant=7`, headers, body: '{"a":1}' });
  t.match(result, { statusCode: 204, excerpt: '', error: null });
  t.ok(result.latencyMs >= 0);
  t.equal(seen!.method, 'POST');
  t.equal(seen!.url, '/partner/hooks?tenant=7');
  t.match(seen!.headers, { 'content-type': 'application/json', 'content-length': '7', 'user-agent': 'massage-referral-webhooks/1', host: `127.0.0.1:${hook.port}`, ...headers });
});

t.test('a non-public IP literal is refused by the guard before any connection, naming the host only', async (t) => {
  const hook = await receiver(t, (_request, response) => response.end('ok'));
  const strict = sender(t, { lookup: guardedLookup(async () => [], false) });
  for (const url of [`http://127.0.0.1:${hook.port}/h`, `http://[::ffff:127.0.0.1]:${hook.port}/h`, `http://[::7f00:1]:${hook.port}/h`]) {
    const result = await strict.send({ url, headers, body: '{}' });
    t.match(result, { statusCode: null, excerpt: '', error: /^EBLOCKEDTARGET: / }, url);
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    t.ok(result.error!.includes(host), `names ${host} (${result.error})`);
  }
  t.equal(hook.connections(), 0, 'nothing connected');
});

t.test('a name is resolved through the guard when connecting, and refused there', async (t) => {
  const hook = await receiver(t, (_request, response) => response.end('ok'));
  const asked: string[] = [];
  const strict = sender(t, {
    lookup: guardedLookup(async (hostname) => {
      asked.push(hostname);
      return [{ address: '10.1.2.3', family: 4 }];
    }, false),
  });
  const result = await strict.send({ url: `http://hooks.partner.example:${hook.port}/h`, headers, body: '{}' });
  t.match(result, { statusCode: null, error: /^EBLOCKEDTARGET: hooks\.partner\.example / });
  t.notOk(result.error!.includes('10.1.2.3'), 'the answer is not echoed');
  t.same(asked, ['hooks.partner.example']);
  t.equal(hook.connections(), 0);
});

t.test('a receiver that never answers: the attempt ends at the timeout', async (t) => {
  const hook = await receiver(t, () => {});
  const started = performance.now();
  const result = await sender(t, { timeoutMs: 300 }).send({ url: `http://127.0.0.1:${hook.port}/h`, headers, body: '{}' });
  t.match(result, { statusCode: null, excerpt: '', error: 'timed out after 300 ms' });
  t.ok(performance.now() - started < 2000 && result.latencyMs >= 280, `≈ 300 ms (${result.latencyMs} ms)`);
});

t.test('an answer whose body never ends: the attempt ends at the timeout too', async (t) => {
  const hook = await receiver(t, (_request, response) => {
    response.writeHead(200, { 'content-length': '100' });
    response.write('partial');
  });
  const result = await sender(t, { timeoutMs: 300 }).send({ url: `http://127.0.0.1:${hook.port}/h`, headers, body: '{}' });
  t.match(result, { statusCode: null, error: 'timed out after 300 ms' });
});

t.test('nothing listening: the connection error', async (t) => {
  const hook = await receiver(t, () => {});
  const { port } = hook;
  await new Promise<void>((resolve) => hook.server.close(() => resolve()));
  const result = await sender(t).send({ url: `http://127.0.0.1:${port}/h`, headers, body: '{}' });
  t.match(result, { statusCode: null, excerpt: '', error: /^ECONNREFUSED: / });
});

t.test('a huge answer: a bounded excerpt, and the next delivery goes out', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let huge = true;
  const hook = await receiver(t, (_request, response) => {
    if (!huge) return response.end('ok');
    response.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
    let sent = 0;
    const pump = () => {
      while (sent < 10 * 1024 * 1024 && !response.destroyed) {
        sent += chunk.length;
        if (!response.write(chunk)) return response.once('drain', pump);
      }
    };
    pump();
  });
  const send = sender(t);
  const url = `http://127.0.0.1:${hook.port}/h`;
  const result = await send.send({ url, headers, body: '{}' });
  t.equal(result.statusCode, 200);
  t.equal(result.excerpt, 'a'.repeat(maxResponseBytes), 'the first 4096 bytes');
  huge = false;
  t.match(await send.send({ url, headers, body: '{}' }), { statusCode: 200, excerpt: 'ok' });
});

t.test('a redirect is the answer, not followed', async (t) => {
  const target = await receiver(t, (_request, response) => response.end('ok'));
  const hook = await receiver(t, (_request, response) => response.writeHead(302, { location: `http://127.0.0.1:${target.port}/h` }).end());
  const result = await sender(t).send({ url: `http://127.0.0.1:${hook.port}/h`, headers, body: '{}' });
  t.match(result, { statusCode: 302, error: null, headers: { location: `http://127.0.0.1:${target.port}/h` } });
  t.equal(target.bodies.length, 0);
});

t.test('Retry-After and other headers of the answer are passed on', async (t) => {
  const hook = await receiver(t, (_request, response) => response.writeHead(503, { 'retry-after': '120' }).end('later'));
  t.match(await sender(t).send({ url: `http://127.0.0.1:${hook.port}/h`, headers, body: '{}' }), { statusCode: 503, excerpt: 'later', headers: { 'retry-after': '120' } });
});

t.test('close() ends the kept-alive connections', async (t) => {
  let closed = 0;
  const hook = await receiver(t, (_request, response) => response.end('ok'));
  hook.server.on('connection', (socket) => socket.on('close', () => closed++));
  const send = new WebhookSender({ lookup: loopbackOnly, timeoutMs: 2000 });
  t.match(await send.send({ url: `http://127.0.0.1:${hook.port}/h`, headers, body: '{}' }), { statusCode: 200 });
  await send.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(closed, 1, 'the connection is closed');
});
