// Issue 17: Prometheus metrics on a port of their own (METRICS_PORT), never on the API's: request
// rate and latency by route template and status, pool waits, the webhook outbox's depth and lag,
// the audit sequencing lag and rate-limit refusals, read from a real scrape.
import t from 'tap';
import { createOffice, createPractice } from './fixtures/network.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { buildTestApp, testDatabaseServer, type TestApp } from './helper.js';

async function scrape(test: TestApp): Promise<{ status: number; contentType: string | null; cacheControl: string | null; body: string }> {
  const address = test.app.metrics.address();
  if (!address) throw new Error('the metrics server is not listening');
  const response = await fetch(`http://127.0.0.1:${address.port}/metrics`);
  return { status: response.status, contentType: response.headers.get('content-type'), cacheControl: response.headers.get('cache-control'), body: await response.text() };
}

/** The value of one sample line, e.g. `name{label="x"}` → 3. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const test = await buildTestApp(t, { env: { METRICS_PORT: '0', RATE_LIMIT_PER_MINUTE: '30' } });
const admin = await test.loginAsAdmin();
const office = await createOffice(test, admin);
const practice = await createPractice(test, admin);

t.test('the metrics are served on their own port, in the Prometheus text format, and not on the API', async (t) => {
  const scraped = await scrape(test);
  t.equal(scraped.status, 200);
  t.match(scraped.contentType, /^text\/plain; version=0\.0\.4/, 'Prometheus text exposition format');
  t.equal(scraped.cacheControl, 'no-store');
  t.match(scraped.body, /^process_cpu_user_seconds_total \d/m, 'the process figures (CPU, memory, event loop) are there');
  t.match(scraped.body, /^nodejs_eventloop_lag_seconds /m);
  const onApi = await test.request({ method: 'GET', url: '/metrics' });
  t.equal(onApi.statusCode, 404, 'the API port does not serve them');
  const elsewhere = await fetch(`http://127.0.0.1:${test.app.metrics.address()!.port}/v1/referrals`);
  t.equal(elsewhere.status, 404, 'the metrics port serves nothing else');
});

t.test('requests are counted by route template and status, never by the ids in their paths', async (t) => {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
  for (let i = 0; i < 3; i++) await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: practice.therapist.token });
  await test.request({ method: 'GET', url: '/v1/referrals/00000000-0000-4000-8000-000000000000', token: practice.therapist.token });
  const { body } = await scrape(test);
  t.equal(sample(body, 'http_request_duration_seconds_count{method="GET",route="/v1/referrals/:id",status_code="200"}'), 3, 'three reads answered 200');
  t.equal(sample(body, 'http_request_duration_seconds_count{method="GET",route="/v1/referrals/:id",status_code="404"}'), 1, 'one answered 404');
  t.equal(sample(body, 'http_request_duration_seconds_count{method="POST",route="/v1/referrals",status_code="201"}'), 1, 'one create');
  t.notMatch(body, referral.id, 'no id appears in a label');
  t.match(body, /^http_request_duration_seconds_bucket\{le="0\.1",method="GET",route="\/v1\/referrals\/:id",status_code="200"\} \d/m, 'a latency histogram');
});

t.test('rate-limit refusals are counted', async (t) => {
  const statuses: number[] = [];
  for (let i = 0; i < 35; i++) statuses.push((await test.request({ method: 'GET', url: '/v1/me', headers: { authorization: 'Bearer nope' }, remoteAddress: '192.0.2.44' })).statusCode);
  const refused = statuses.filter((status) => status === 429).length;
  t.ok(refused >= 5, `${refused} refused`);
  const { body } = await scrape(test);
  t.equal(sample(body, 'rate_limit_refusals_total{route="/v1/me"}'), refused, 'the counter matches the 429s sent');
});

t.test('the webhook outbox, the audit sequencing lag and the pool waits', async (t) => {
  const { body } = await scrape(test);
  t.type(sample(body, 'webhook_outbox_depth'), 'number', 'outbox depth');
  t.type(sample(body, 'webhook_delivery_lag_seconds'), 'number', 'delivery lag');
  const lag = sample(body, 'audit_sequencer_lag_seconds');
  t.ok(lag !== undefined && lag >= 0, 'audit sequencing lag');
  const waits = sample(body, 'db_pool_wait_seconds_count');
  if (testDatabaseServer) t.ok(waits !== undefined && waits > 0, `every statement and transaction passed the pool gate (${waits})`);
  else t.equal(waits, 0, 'the embedded database has no pool to wait for');
});

t.test('a service without METRICS_PORT serves no metrics', async (t) => {
  const quiet = await buildTestApp(t);
  t.equal(quiet.app.metrics.address(), undefined, 'nothing listens');
});
