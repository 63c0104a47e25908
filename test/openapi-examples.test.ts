// The document's examples (src/openapi-examples/examples.json, recorded from the suite by npm run
// openapi:examples): one on every JSON request body, 2xx answer and webhook, none left for an
// operation that is gone, no credential left in them, and the FHIR ones valid FHIR. That each one
// fits its schema (closed: no member the schema does not name) is the linter's check
// (no-invalid-media-type-examples, test/openapi-lint.test.ts).
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { leftovers, mergeRecordings, placeholders, scrubExamples } from '../tools/openapi/examples.js';
import type { DocumentExamples } from '../src/plugins/openapi-examples.js';
import { fhirProblems } from './fixtures/fhir-validators.js';

type Json = Record<string, any>;
const rerecord = 'run `npm run openapi:examples` and commit the result';

if (process.env.TEST_DATABASE_URL) {
  t.plan(0, 'the document does not depend on the database: checked once, in the embedded suite');
} else {
  const document = JSON.parse(await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8')) as Json;
  const examples = JSON.parse(await readFile(new URL('../src/openapi-examples/examples.json', import.meta.url), 'utf8')) as DocumentExamples;
  const isJson = (mediaType: string) => /[/+]json$/.test(mediaType);
  const operations = Object.entries(document.paths as Record<string, Json>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation: operation as Json })),
  );
  const hasExample = (content: Json) => content.example !== undefined || Object.keys(content.examples ?? {}).length > 0;

  t.test('every JSON request body, 2xx answer and webhook carries an example', async (t) => {
    for (const { name, operation } of operations) {
      for (const [mediaType, content] of Object.entries((operation.requestBody?.content ?? {}) as Record<string, Json>)) {
        if (isJson(mediaType)) t.ok(hasExample(content), `${name} request ${mediaType} (if not, ${rerecord})`);
      }
      for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
        if (!/^2\d\d$/.test(status)) continue;
        for (const [mediaType, content] of Object.entries((response.content ?? {}) as Record<string, Json>)) {
          if (isJson(mediaType)) t.ok(hasExample(content), `${name} ${status} ${mediaType} (if not, ${rerecord})`);
        }
      }
    }
    for (const [type, { post }] of Object.entries(document.webhooks as Record<string, Json>)) {
      for (const [mediaType, content] of Object.entries(post.requestBody.content as Record<string, Json>)) t.ok(hasExample(content), `webhook ${type} ${mediaType} (if not, ${rerecord})`);
    }
  });

  t.test('no example is kept for an operation, status or event type the document no longer has', async (t) => {
    const byId = new Map(operations.map(({ operation }) => [operation.operationId as string, operation]));
    for (const [operationId, statuses] of Object.entries(examples.responses)) {
      const operation = byId.get(operationId);
      t.ok(operation, `${operationId} is an operation (if not, ${rerecord})`);
      for (const status of Object.keys(statuses)) t.ok(operation?.responses?.[status], `${operationId} answers ${status}`);
    }
    for (const operationId of Object.keys(examples.requests)) t.ok(byId.get(operationId)?.requestBody, `${operationId} takes a body (if not, ${rerecord})`);
    for (const type of Object.keys(examples.webhooks)) t.ok(type === 'fhir' || document.webhooks[type], `${type} is an event type`);
  });

  t.test('no token, secret or password is left in the examples, and the ids are placeholders', async (t) => {
    t.same(leftovers(examples), [], 'no credential-looking string');
    const text = JSON.stringify(examples);
    const ids = text.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi) ?? [];
    t.same(ids.filter((id) => !id.startsWith('00000000-0000-4000-8000-')), [], 'every UUID is a numbered placeholder');
  });

  t.test('recordings merge first file first and are scrubbed: ids numbered alike everywhere, times moved keeping gaps, credentials replaced', async (t) => {
    const referralId = 'b7e4c2a0-1d2e-4f5a-9b8c-0d1e2f3a4b5c';
    const recording = (file: string, note: string) => ({
      file,
      requests: { issueToken: { password: { mediaType: 'application/json', body: { grant_type: 'password', username: 'dr.lee@riverside.example', password: 'a real one' } } } },
      responses: {
        getReferral: { '200': { 'application/json': { id: referralId, note, url: `/v1/referrals/${referralId}`, createdAt: '2027-03-04T05:06:07.891Z', startDate: '2027-03-04' } } },
        createWebhookEndpoint: { '201': { 'application/json': { url: 'http://127.0.0.1:39115/hooks' } } },
        listReferrals: { '200': { 'application/json': { data: [1, 2, 3, 4], nextCursor: 'v1.real-cursor' } } },
        issueToken: { '200': { 'application/json': { access_token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl', refresh_token: 'r3al', client_id: 'cli_AbCdEf' } } },
      },
      problems: {},
      webhooks: { 'referral.sent': { 'application/json': { type: 'referral.sent', timestamp: '2027-03-04T06:06:07Z', data: { referralId } } } },
    });
    const merged = mergeRecordings([recording('z.test.ts', 'from z'), recording('walk.test.ts', 'from the walk-through')], ['walk']);
    t.equal((merged.responses.getReferral!['200']!['application/json'] as Json).note, 'from the walk-through', 'the preferred file wins');
    const scrubbed = scrubExamples(merged);
    const referral = scrubbed.responses.getReferral!['200']!['application/json'] as Json;
    t.match(referral.id, /^00000000-0000-4000-8000-\d{12}$/, 'the id is a numbered placeholder');
    t.equal(referral.url, `/v1/referrals/${referral.id}`, 'inside a URL, the same placeholder');
    t.equal((scrubbed.webhooks['referral.sent']!['application/json'] as Json).data.referralId, referral.id, 'and in a webhook');
    t.equal(referral.createdAt, '2026-12-01T09:00:00Z', 'the earliest time starts the examples, seconds kept');
    t.equal((scrubbed.webhooks['referral.sent']!['application/json'] as Json).timestamp, '2026-12-01T10:00:00Z', 'an hour later stays an hour later');
    t.equal(referral.startDate, '2026-12-01', 'a date moves by the same days');
    t.same((scrubbed.responses.listReferrals!['200']!['application/json'] as Json).data, [1, 2], 'a page shows two items');
    t.same(scrubbed.responses.issueToken!['200']!['application/json'], { access_token: placeholders.access_token, refresh_token: placeholders.refresh_token, client_id: placeholders.client_id });
    t.equal((scrubbed.requests.issueToken!.password!.body as Json).password, placeholders.password, 'the password too');
    t.same(scrubbed.responses.createWebhookEndpoint!['201']!['application/json'], { url: 'https://ehr.example/hooks' }, "a test receiver's loopback URL reads as a partner's");
    t.same(leftovers(scrubbed), [], 'nothing credential-like left');
    t.same(leftovers(merged).length, 1, 'while the unscrubbed recording had a token');
  });

  t.test('the FHIR examples are valid FHIR R4', async (t) => {
    const fhirExamples = [
      ...Object.entries(examples.responses).flatMap(([operationId, statuses]) =>
        Object.entries(statuses).flatMap(([status, media]) => (media['application/fhir+json'] ? [[`${operationId} ${status}`, media['application/fhir+json']] as const] : [])),
      ),
      ...Object.entries(examples.requests).flatMap(([operationId, variants]) =>
        Object.values(variants).filter(({ body }) => typeof (body as Json).resourceType === 'string').map(({ body }) => [`${operationId} request`, body] as const),
      ),
      ...(examples.webhooks.fhir?.['application/fhir+json'] ? [['webhook Bundle', examples.webhooks.fhir['application/fhir+json']] as const] : []),
    ];
    t.ok(fhirExamples.length > 20, `${fhirExamples.length} FHIR examples`);
    for (const [label, resource] of fhirExamples) t.same(await fhirProblems(resource), [], `${label}: valid`);
  });
}
