// Issue 17: OpenTelemetry tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set, checked against a
// collector of the test's own: a span per request, continuing the caller's trace, with database
// spans beneath it on PostgreSQL, and no patient data or query string in any span.
import { createServer } from 'node:http';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createOffice, createPractice } from './fixtures/network.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { buildTestApp, testDatabaseServer, type Json } from './helper.js';

const exported: { contentType: string | undefined; body: string }[] = [];
const collector = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    if (request.url === '/v1/traces') exported.push({ contentType: request.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
collector.listen(0, '127.0.0.1');
await once(collector, 'listening');
t.teardown(() => new Promise((resolve) => collector.close(resolve)));
const collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}
const spansOf = (bodies: string[]): ExportedSpan[] =>
  bodies.flatMap((body) => (JSON.parse(body) as Json).resourceSpans.flatMap((resource: Json) => resource.scopeSpans.flatMap((scope: Json) => scope.spans as ExportedSpan[])));
const attribute = (span: ExportedSpan, key: string) => {
  const value = span.attributes.find((candidate) => candidate.key === key)?.value;
  return value?.stringValue ?? (value?.intValue === undefined ? undefined : Number(value.intValue));
};

t.test('requests and their database work are traced, in the caller’s trace, without patient data', async (t) => {
  const test = await buildTestApp(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl, OTEL_SERVICE_NAME: 'referrals-under-test' } });
  const admin = await test.loginAsAdmin();
  const office = await createOffice(test, admin);
  const practice = await createPractice(test, admin);
  const canary = `Quixotic${randomBytes(4).toString('hex')}`;
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ patient: { givenName: 'Zebulon', familyName: canary, birthDate: '1961-07-19', sex: 'male' }, therapistId: practice.therapist.id, send: true }));

  const traceId = randomBytes(16).toString('hex');
  const parentSpanId = randomBytes(8).toString('hex');
  const read = await test.request({
    method: 'GET',
    url: `/v1/referrals/${referral.id}?include=${canary}`,
    token: practice.therapist.token,
    headers: { traceparent: `00-${traceId}-${parentSpanId}-01` },
  });
  t.not(read.statusCode, 500, 'the read is answered');
  const writeTraceId = randomBytes(16).toString('hex');
  const written = await test.request({
    method: 'POST',
    url: '/v1/referrals',
    token: office.physician.token,
    payload: referralBody({ patient: { givenName: 'Zebulon', familyName: canary, birthDate: '1961-07-19', sex: 'male' }, therapistId: practice.therapist.id, send: true }),
    headers: { traceparent: `00-${writeTraceId}-${randomBytes(8).toString('hex')}-01` },
  });
  t.equal(written.statusCode, 201, 'a change is made');
  await test.app.close(); // sends the spans not yet sent

  t.ok(exported.length > 0, 'spans reached the collector');
  t.match(exported[0]!.contentType, /^application\/json/, 'OTLP/HTTP with JSON');
  const all = exported.map(({ body }) => body).join('\n');
  t.notMatch(all, canary, "the patient's name, in the body or the query string, is in no span");
  t.notMatch(all, '1961-07-19', "nor the patient's birth date");
  t.match(all, /"referrals-under-test"/, 'service.name from OTEL_SERVICE_NAME');

  const spans = spansOf(exported.map(({ body }) => body));
  const request = spans.find((span) => span.traceId === traceId && span.parentSpanId === parentSpanId);
  t.ok(request, 'the request span continues the caller’s trace (W3C traceparent)');
  t.equal(attribute(request!, 'http.route'), '/v1/referrals/:id', 'named by its route template');
  t.equal(attribute(request!, 'http.response.status_code'), read.statusCode);
  t.equal(attribute(request!, 'url.path'), `/v1/referrals/${referral.id}`, 'the path without its query string');

  const inTrace = spans.filter((span) => span.traceId === traceId);
  const database = inTrace.filter((span) => attribute(span, 'db.system.name') === 'postgresql');
  if (testDatabaseServer) {
    t.ok(database.length > 0, `database spans in the request's trace (${database.length})`);
    t.ok(database.some((span) => /^select /i.test(String(attribute(span, 'db.query.text')))), 'with the statement text');
    t.ok(database.every((span) => !String(attribute(span, 'db.query.text') ?? '').includes(canary)), 'placeholders, never values');
    const inWrite = spans.filter((span) => span.traceId === writeTraceId);
    const transaction = inWrite.find((span) => span.name === 'transaction');
    t.ok(transaction, "the change's transaction has a span");
    const statements = inWrite.filter((span) => span.parentSpanId === transaction?.spanId);
    t.ok(statements.some((span) => /^insert into "?referrals"? /i.test(String(attribute(span, 'db.query.text')))), `each statement in it is a span beneath it (${statements.length}), the referral's insert among them`);
    t.ok(statements.every((span) => !JSON.stringify(span).includes(canary)), 'placeholders there too, never values');
  } else {
    t.equal(database.length, 0, 'the embedded database is not traced (it is not a server)');
  }
});

t.test('without OTEL_EXPORTER_OTLP_ENDPOINT nothing is traced', async (t) => {
  const before = exported.length;
  const test = await buildTestApp(t);
  await test.request({ method: 'GET', url: '/health/live' });
  await test.app.close();
  t.equal(exported.length, before, 'nothing sent');
});
