// The SSRF guard against loopback and private targets in disguise (issue 12, item 6): IPv4 spelled
// as IPv6 (compatible, mapped, NAT64, 6to4, Teredo), special-purpose IPv6, trailing-dot and
// single-label names are refused when an endpoint is registered or changed, and again when a
// delivery connects, IP literals included (node:net never calls `lookup` for them). A refused
// delivery says which host was refused, never what that host resolved to.
//
// DNS answers come from an injected resolver. Every target handed to the worker is on loopback
// (a counting listener on 127.0.0.1) or has first been seen refused by the guard's own lookup, so
// no test sends a packet off this machine, whatever the code under test does.
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { fakeDns, guardVerdict, type DnsAnswer } from './fixtures/fake-dns.js';
import { createOffice } from './fixtures/network.js';
import { startTcpListener } from './fixtures/partner-ehr.js';
import { buildWebhookApp, drain, endpointsUrl, endpointUrl } from './fixtures/webhooks.js';
import type { Json, TestResponse } from './helper.js';

const resolver = fakeDns();

// Production rules (private targets refused); the worker runs only when a test calls runOnce.
const app = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false', WEBHOOK_RETRY_SCHEDULE: '0,60', WEBHOOK_TIMEOUT_MS: '2000' }, resolver.resolve);
const office = await createOffice(app, await app.loginAsAdmin());
const token = office.admin.token;

async function register(t: Test, url: string): Promise<Json> {
  const response = await app.request({ method: 'POST', url: endpointsUrl, token, payload: { url, eventTypes: ['referral.sent'] } });
  t.equal(response.statusCode, 201, `${url} is taken (${response.body.slice(0, 300)})`);
  const endpoint = response.json();
  t.teardown(async () => {
    await app.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token });
  });
  return endpoint;
}

function assertUrlRefused(t: Test, response: TestResponse, what: string) {
  t.equal(response.statusCode, 400, `${what}: 400 (got ${response.statusCode}: ${response.body.slice(0, 300)})`);
  const problems: Json[] = response.json().errors ?? [];
  t.ok(problems.some((problem) => problem.field === 'url' && problem.message), `${what}: the problem names url (${JSON.stringify(problems)})`);
}

t.test('POST and PATCH /v1/webhook-endpoints › refuse every non-public spelling of a target, without resolving anything', async (t) => {
  const endpoint = await register(t, 'https://ehr.partner.example/hooks');
  resolver.calls.length = 0;
  const refused = [
    // IPv4 inside IPv6: compatible (::/96, as typed and as the URL parser rewrites it), mapped, NAT64, 6to4, Teredo.
    'https://[::127.0.0.1]/hooks',
    'https://[::7f00:1]/hooks',
    'https://[::a00:5]/hooks',
    'https://[::ffff:7f00:1]/hooks',
    'https://[64:ff9b::7f00:1]/hooks',
    'https://[64:ff9b:1::a00:1]/hooks',
    'https://[2002:7f00:1::1]/hooks',
    'https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hooks',
    // Special-purpose IPv6: unspecified, documentation, benchmarking, ORCHIDv2, multicast, site-local, discard, 3fff::/20.
    'https://[::]/hooks',
    'https://[2001:db8::1]/hooks',
    'https://[2001:2::1]/hooks',
    'https://[2001:20::1]/hooks',
    'https://[ff02::1]/hooks',
    'https://[fec0::1]/hooks',
    'https://[100::1]/hooks',
    'https://[3fff::1]/hooks',
    // Special-purpose IPv4, including the spellings the URL parser turns into 127.0.0.1.
    'https://2130706433/hooks',
    'https://0x7f.1/hooks',
    'https://100.64.0.1/hooks',
    'https://192.0.2.10/hooks',
    'https://198.18.0.1/hooks',
    'https://224.0.0.1/hooks',
    'https://255.255.255.255/hooks',
    // Local names, with the root dot or in capitals, single labels, and private-use suffixes.
    'https://localhost./hooks',
    'https://LOCALHOST/hooks',
    'https://api.localhost./hooks',
    'https://vm/hooks',
    'https://vm./hooks',
    'https://printer.local./hooks',
    'https://db.internal/hooks',
    'https://db.INTERNAL./hooks',
    'https://router.home.arpa/hooks',
    'https://1.0.0.127.in-addr.arpa/hooks',
    'https://nas.localdomain/hooks',
    'https://ehr.partner.example../hooks',
  ];
  for (const url of refused) {
    assertUrlRefused(t, await app.request({ method: 'POST', url: endpointsUrl, token, payload: { url, eventTypes: ['referral.sent'] } }), `register ${url}`);
    assertUrlRefused(t, await app.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token, payload: { url } }), `change to ${url}`);
  }
  const read = await app.request({ method: 'GET', url: endpointUrl(endpoint.id), token });
  t.equal(read.json().url, 'https://ehr.partner.example/hooks', 'the URL did not change');
  t.same(resolver.calls, [], 'registration resolved nothing');
});

t.test('POST /v1/webhook-endpoints › public addresses and fully qualified names, a root dot included, are taken', async (t) => {
  for (const url of ['https://[2606:4700:4700::1111]/hooks', 'https://1.1.1.1/hooks', 'https://EHR.Partner.example./hooks', 'https://ehr.partner.example:8443/hooks']) {
    await register(t, url);
  }
});

t.test('the connect-time guard › refuses DNS answers that spell a non-public address, and a mixed answer as a whole', async (t) => {
  const disguised: DnsAnswer[] = [
    [{ address: '::7f00:1', family: 6 }],
    [{ address: '::127.0.0.1', family: 6 }],
    [{ address: '::ffff:7f00:1', family: 6 }],
    [{ address: '64:ff9b::a00:1', family: 6 }],
    [{ address: '2002:a00:1::1', family: 6 }],
    [{ address: '2001::1', family: 6 }],
    [{ address: '100.64.0.1', family: 4 }],
    [{ address: '93.184.215.14', family: 4 }, { address: '10.0.0.1', family: 4 }],
  ];
  for (const answer of disguised) {
    const error = await guardVerdict('hooks.partner.example', answer);
    t.equal(error?.code, 'EBLOCKEDTARGET', `${answer.map((entry) => entry.address).join(', ')} is refused`);
    t.notOk(answer.some((entry) => error?.message.includes(entry.address)), `the refusal does not echo the answer (${error?.message})`);
  }
  t.equal(await guardVerdict('hooks.partner.example', [{ address: '2606:4700:4700::1111', family: 6 }, { address: '93.184.215.14', family: 4 }]), null, 'public answers pass');
});

t.test('a delivery › to a target kept from older rules is refused before connecting, and the logs never say what it resolved to', async (t) => {
  const listener = await startTcpListener(t);
  const port = listener.port;
  const targets: { url: string; dns?: [string, DnsAnswer]; leak?: string; byName?: boolean }[] = [
    // IP literals: node:net connects to them without asking `lookup`.
    { url: `https://127.0.0.1:${port}/hooks` },
    { url: `https://[::ffff:127.0.0.1]:${port}/hooks` },
    { url: `https://[::7f00:1]:${port}/hooks` },
    // Names the resolver would answer with loopback or private addresses.
    { url: `https://localhost.:${port}/hooks`, dns: ['localhost.', [{ address: '127.0.0.1', family: 4 }]], leak: '127.0.0.1', byName: true },
    { url: `https://vm:${port}/hooks`, dns: ['vm', [{ address: '127.0.0.1', family: 4 }]], leak: '127.0.0.1', byName: true },
    { url: `https://inside.partner.example:${port}/hooks`, dns: ['inside.partner.example', [{ address: '10.20.30.40', family: 4 }]], leak: '10.20.30.40' },
  ];
  for (const { url, dns, leak, byName } of targets) {
    await t.test(url, async (t) => {
      const host = new URL(url).hostname;
      const literal = !dns;
      // Safety first: only a loopback target, or one the guard itself refuses, is handed to the worker.
      const verdict = await guardVerdict(host.replace(/^\[|\]$/g, ''), dns?.[1]);
      const loopbackOnly = literal ? /^(127\.0\.0\.1|\[::ffff:7f00:1\])$/.test(host) : true;
      t.equal(verdict?.code, 'EBLOCKEDTARGET', `the guard's lookup refuses ${host}`);
      if (verdict?.code !== 'EBLOCKEDTARGET' && !loopbackOnly) return t.fail(`not handing ${host} to the worker: it could connect off this machine`);

      // Registered under a name, then changed behind the API's back, as rows from before this rule are.
      const endpoint = await register(t, 'https://hooks.partner.example/placeholder');
      await app.app.database.rows(sql`update webhook_endpoints set url = ${url} where id = ${endpoint.id}::uuid`);
      if (dns) resolver.answers.set(dns[0], dns[1]);
      resolver.calls.length = 0;
      const connectionsBefore = listener.connections;

      const ping = await app.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token });
      t.equal(ping.statusCode, 202, 'ping queued');
      t.equal(await drain(app), 1, 'the worker tried the one delivery');
      t.equal(listener.connections, connectionsBefore, 'nothing connected to the loopback listener');
      if (byName) t.same(resolver.calls, [], 'the name was refused before it was resolved');

      const deliveries = await app.request({ method: 'GET', url: `${endpointUrl(endpoint.id)}/deliveries?limit=10`, token });
      const [delivery] = deliveries.json().data as Json[];
      t.match(delivery, { status: 'pending', attempts: 1, lastStatusCode: null }, 'a failed attempt, retried on schedule');
      t.match(delivery!.lastError, /^EBLOCKEDTARGET: /, `the error says the target was blocked (${delivery!.lastError})`);
      t.ok(delivery!.lastError.includes(host.replace(/^\[|\]$/g, '')), 'the error names the host as registered');
      if (leak) {
        const listed = JSON.stringify(deliveries.json());
        t.notOk(listed.includes(leak), `neither the delivery nor its attempts echo the DNS answer ${leak}`);
      }
      // Retire it, so later rounds do not pick it up again.
      await app.app.database.rows(sql`update webhook_deliveries set status = 'dead' where endpoint_id = ${endpoint.id}::uuid`);
      if (dns) resolver.answers.delete(dns[0]);
    });
  }
});
