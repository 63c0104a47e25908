// The OpenAPI document: committed without drift, valid by an independent validator, complete per operation, served.
import { readFile } from 'node:fs/promises';
import { Validator } from '@seriousme/openapi-schema-validator';
import t from 'tap';
import { webhookEventTypes } from '../src/lib/vocabulary.js';
import { generateOpenApiDocument } from '../src/openapi-document.js';
import { withWebhookCatalog } from '../tools/openapi/readme-catalog.js';
import { buildTestApp, type Json } from './helper.js';

const committedPath = new URL('../openapi/openapi.json', import.meta.url);
const committed = await readFile(committedPath, 'utf8');
const document = JSON.parse(committed) as Json;
const httpMethods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const operations = Object.entries(document.paths as Record<string, Record<string, Json>>).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => httpMethods.includes(method))
    .map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, method, path, operation })),
);
/** Callable without a token (SPEC §10, §11). */
const publicOperations = new Set([
  'GET /health/live',
  'GET /health/ready',
  'POST /v1/auth/token',
  // FHIR clients read what the server does and how to sign in before they sign in.
  'GET /fhir/R4/metadata',
  'GET /fhir/R4/.well-known/smart-configuration',
]);

const test = await buildTestApp(t);

t.test('the committed openapi/openapi.json is what the route schemas generate', async (t) => {
  const generated = await generateOpenApiDocument();
  t.ok(generated === committed, 'openapi/openapi.json is out of date: run `npm run openapi:write` and commit the result');
  t.same(JSON.parse(generated), document, 'no differences (run `npm run openapi:write` to regenerate)');
});

t.test('GET /openapi.json serves the committed document', async (t) => {
  const response = await test.request({ method: 'GET', url: '/openapi.json' });
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.same(response.json(), document, 'served document equals openapi/openapi.json (run `npm run openapi:write` if not)');
});

t.test('the document is valid OpenAPI 3.1 by an independent validator', async (t) => {
  t.equal(document.openapi, '3.1.0');
  const result = await new Validator().validate(structuredClone(document));
  t.ok(result.valid, 'valid', { errors: result.errors });
});

t.test('every operation has a unique operationId, a summary and tags', async (t) => {
  t.ok(operations.length > 10, `${operations.length} operations`);
  const declaredTags = new Set((document.tags as Json[]).map((tag) => tag.name));
  const ids = new Set<string>();
  for (const { name, operation } of operations) {
    t.match(operation.operationId, /^[a-z][A-Za-z]+$/, `${name}: operationId`);
    t.notOk(ids.has(operation.operationId), `${name}: operationId ${operation.operationId} is unique`);
    ids.add(operation.operationId);
    t.ok(typeof operation.summary === 'string' && operation.summary.length > 0, `${name}: summary`);
    t.ok(Array.isArray(operation.tags) && operation.tags.length > 0, `${name}: tags`);
    for (const tag of operation.tags ?? []) t.ok(declaredTags.has(tag), `${name}: tag ${tag} is declared`);
  }
});

t.test('every operation documents a 2xx response with a schema (204 has no body)', async (t) => {
  for (const { name, operation } of operations) {
    const successes = Object.keys(operation.responses ?? {}).filter((status) => /^2\d\d$/.test(status));
    t.ok(successes.length > 0, `${name}: has a 2xx response`);
    for (const status of successes) {
      const response = operation.responses[status];
      if (status === '204') {
        t.notOk(response.content, `${name} ${status}: no content`);
        continue;
      }
      // JSON, or another declared media type such as the NDJSON audit export.
      const [mediaType, content] = Object.entries(response.content ?? {})[0] ?? [];
      const schema = (content as { schema?: object } | undefined)?.schema;
      t.ok(schema && Object.keys(schema).length > 0, `${name} ${status}: ${mediaType ?? 'no media type'} schema`);
    }
  }
});

t.test('every JSON body, request or 2xx response, is a named component a generated client can call by its name', async (t) => {
  const isJson = (mediaType: string) => /[/+]json$/.test(mediaType);
  const schemas = (document.components?.schemas ?? {}) as Record<string, Json>;
  for (const { name, operation } of operations) {
    const bodies = [
      ...Object.entries((operation.requestBody?.content ?? {}) as Record<string, Json>).map(([mediaType, content]) => [`request ${mediaType}`, mediaType, content] as const),
      ...Object.entries(operation.responses as Record<string, Json>)
        .filter(([status]) => /^2\d\d$/.test(status))
        .flatMap(([status, response]) => Object.entries((response.content ?? {}) as Record<string, Json>).map(([mediaType, content]) => [`${status} ${mediaType}`, mediaType, content] as const)),
    ];
    for (const [where, mediaType, content] of bodies) {
      if (!isJson(mediaType) && mediaType !== 'multipart/form-data' && mediaType !== 'application/x-www-form-urlencoded') continue;
      const ref = content.schema?.$ref as string | undefined;
      t.match(ref, /^#\/components\/schemas\/[A-Z][A-Za-z0-9]+$/, `${name} ${where}: a $ref to a named schema`);
      if (ref) t.ok(schemas[ref.split('/').pop()!], `${name} ${where}: ${ref} exists`);
    }
  }
  for (const componentName of Object.keys(schemas)) t.match(componentName, /^[A-Z][A-Za-z0-9]+$/, `${componentName}: PascalCase letters and digits`);
  t.notOk(committed.includes('"x-component"'), 'no naming keyword is left in the document');
});

t.test('every response says what it is (no generator default left)', async (t) => {
  for (const { name, operation } of operations) {
    for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
      t.ok(response.description && response.description !== 'Default Response', `${name} ${status}: ${response.description}`);
    }
  }
});

t.test('a body is required except where the route takes none (accept, mark read, retract)', async (t) => {
  const optional = new Set(['acceptReferral', 'markMessagesRead', 'retractDocument']);
  for (const { name, operation } of operations) {
    if (!operation.requestBody) continue;
    t.equal(operation.requestBody.required, !optional.has(operation.operationId), `${name}: body ${optional.has(operation.operationId) ? 'optional' : 'required'}`);
  }
  t.notOk(committed.includes('x-body-optional'), 'the marker does not reach the document');
});

t.test('shared parameters are components; a parameter with a default is optional', async (t) => {
  const parameters = (document.components?.parameters ?? {}) as Record<string, Json>;
  for (const componentName of ['Id', 'PageLimit', 'PageCursor', 'IdempotencyKey', 'IfMatch', 'FhirFormat', 'FhirCount', 'FhirCursor']) {
    t.ok(parameters[componentName], `${componentName} is a parameter component`);
  }
  t.match(parameters.PageLimit, { in: 'query', name: 'limit', required: false, schema: { default: 50 } }, 'limit has a default and is not required');
  for (const { name, operation } of operations) {
    for (const parameter of (operation.parameters ?? []) as Json[]) {
      if (parameter.$ref) t.ok(parameters[String(parameter.$ref).split('/').pop()!], `${name}: ${parameter.$ref} exists`);
      else if (parameter.in === 'query' && parameter.schema?.default !== undefined) t.equal(parameter.required, false, `${name}: ${parameter.name} has a default, so is optional`);
    }
  }
});

t.test('the webhooks section describes every event type the service sends, and the README catalog is written from it', async (t) => {
  const webhooks = (document.webhooks ?? {}) as Record<string, Json>;
  t.same(Object.keys(webhooks).sort(), [...webhookEventTypes].sort(), 'one entry per webhook event type');
  for (const [type, { post }] of Object.entries(webhooks)) {
    t.match(post.operationId, /^on[A-Z][A-Za-z]+$/, `${type}: operationId`);
    t.same(post.security, [], `${type}: the receiver's side, no token (the signature proves the sender)`);
    t.match(post.requestBody.content['application/json'].schema.$ref, /^#\/components\/schemas\/[A-Za-z]+Event$/, `${type}: a named payload`);
    t.same(
      post.parameters.map((parameter: Json) => parameter.$ref),
      ['WebhookId', 'WebhookTimestamp', 'WebhookSignature'].map((name) => `#/components/parameters/${name}`),
      `${type}: the Standard Webhooks headers`,
    );
    t.ok(post.responses['2XX'] && post.responses['410'] && post.responses.default, `${type}: how the answer is taken`);
  }
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  t.ok(withWebhookCatalog(readme, document) === readme, 'the README webhook catalog is up to date (run `npm run openapi:write`)');
});

t.test('error responses are problem+json; under /fhir/R4 they are OperationOutcomes', async (t) => {
  for (const { name, path, operation } of operations) {
    const fhir = path.startsWith('/fhir/R4/');
    for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
      if (!/^[45]\d\d$/.test(status) || name === 'GET /health/ready') continue;
      // A problem status carries the example recorded for it, shared as a component.
      const { examples, ...problem } = (response.content?.['application/problem+json'] ?? {}) as Json;
      t.same(
        fhir ? response.content : { 'application/problem+json': problem },
        fhir
          ? { 'application/fhir+json': { schema: { $ref: '#/components/schemas/OperationOutcome' } } }
          : { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
        `${name} ${status}: ${fhir ? 'OperationOutcome' : 'Problem'}`,
      );
      if (examples) t.same(examples, { [`Problem${status}`]: { $ref: `#/components/examples/Problem${status}` } }, `${name} ${status}: the ${status} example`);
    }
  }
  t.ok(document.components?.schemas?.Problem, 'the Problem schema is a component');
  t.ok(document.components?.schemas?.OperationOutcome, 'the OperationOutcome schema is a component');
});

t.test('every non-public operation requires bearerAuth or OAuth 2.0; the public ones do not', async (t) => {
  t.same(document.components?.securitySchemes?.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  t.match(document.components?.securitySchemes?.oauth2, {
    type: 'oauth2',
    flows: { password: { tokenUrl: '/v1/auth/token', refreshUrl: '/v1/auth/token' }, clientCredentials: { tokenUrl: '/v1/auth/token', scopes: { 'referrals:read': String, 'system/Task.rs': String } } },
  });
  for (const { name, operation } of operations) {
    if (publicOperations.has(name)) {
      t.same(operation.security, [], `${name}: public, and says so`);
      // The token endpoint's 401 is OAuth's invalid_client (RFC 6749 §5.2), not a missing access token.
      if (name === 'POST /v1/auth/token') t.match(operation.responses['401']?.description, /invalid_client/, `${name}: 401 is invalid_client`);
      else t.notOk(operation.responses['401'], `${name}: no 401`);
    } else {
      t.same(operation.security[0], { bearerAuth: [] }, `${name}: bearerAuth`);
      t.match(operation.security[1], { oauth2: Array }, `${name}: or an OAuth 2.0 token`);
      t.ok(operation.responses['401'], `${name}: documents 401`);
    }
  }
  for (const name of publicOperations) t.ok(operations.some((operation) => operation.name === name), `${name} is documented`);
});

t.test('GET /docs answers with the HTML explorer (directly or by redirect)', async (t) => {
  let response = await test.request({ method: 'GET', url: '/docs' });
  if (response.statusCode >= 300 && response.statusCode < 400) {
    const location = response.headers.location as string;
    t.ok(location, 'redirect has a location');
    response = await test.request({ method: 'GET', url: new URL(location, 'http://localhost/docs/').pathname });
  }
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^text\/html/);
  t.match(response.body, /<html/i);
});
