// The document's examples (src/openapi-examples/examples.json, recorded from the suite by npm run
// openapi:examples): one on every JSON request body, 2xx answer and webhook, none left for an
// operation that is gone, no credential left in them, and the FHIR ones valid FHIR. That each one
// fits its schema (closed: no member the schema does not name) is the linter's check
// (no-invalid-media-type-examples, test/openapi-lint.test.ts).
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { leftovers } from '../tools/openapi/examples.js';
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
