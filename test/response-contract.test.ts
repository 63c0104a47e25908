// The response contract checker (test/fixtures/response-contract.ts) itself, on small synthetic
// documents: it must refuse what a document does not declare, or every test that relies on it proves nothing.
import t from 'tap';
import { ResponseContract } from './fixtures/response-contract.js';

const problem = { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };
const document = {
  openapi: '3.1.0',
  info: { title: 'synthetic', version: '1' },
  components: {
    schemas: {
      Problem: { type: 'object', required: ['title', 'status'], properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' } } },
    },
    headers: {
      RequestId: { schema: { type: 'string' } },
      ETag: { schema: { type: 'string' } },
    },
  },
  paths: {
    '/v1/things/{id}': {
      get: {
        operationId: 'getThing',
        responses: {
          200: {
            description: 'the thing',
            headers: { 'x-request-id': { $ref: '#/components/headers/RequestId' }, ETag: { $ref: '#/components/headers/ETag' } },
            content: { 'application/json': { schema: { type: 'object', properties: { id: { type: 'string' } } } } },
          },
          404: { description: 'not found', headers: { 'x-request-id': { $ref: '#/components/headers/RequestId' } }, content: problem },
        },
      },
    },
  },
};
const contract = new ResponseContract(document);
const thing = JSON.stringify({ id: 'a' });
const notFound = JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404 });
const json = { 'content-type': 'application/json; charset=utf-8' };
const problemJson = { 'content-type': 'application/problem+json; charset=utf-8' };

t.test('accepts declared statuses with declared headers, whatever their case', async (t) => {
  t.same(contract.check('GET', '/v1/things/a', 200, { ...json, 'x-request-id': 'r1', etag: '"1"' }, thing), []);
  t.same(contract.check('GET', '/v1/things/a', 200, { ...json, 'X-Request-Id': 'r1', ETAG: '"1"' }, thing), [], 'header names compare case-insensitively');
  t.same(contract.check('GET', '/v1/things/a', 404, { ...problemJson, 'x-request-id': 'r1' }, notFound), []);
  t.same(contract.check('HEAD', '/v1/things/a', 200, { ...json, etag: '"1"' }, ''), [], 'HEAD is held to the GET operation');
});

t.test('accepts transport and security boilerplate without declarations', async (t) => {
  const boilerplate = {
    ...json,
    'content-length': '10',
    date: 'Thu, 01 Jan 2026 00:00:00 GMT',
    connection: 'keep-alive',
    'keep-alive': 'timeout=72',
    vary: 'Origin',
    'strict-transport-security': 'max-age=15552000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'SAMEORIGIN',
  };
  t.same(contract.check('GET', '/v1/things/a', 200, boilerplate, thing), []);
});

t.test('refuses an undeclared header, naming the route, the status and the header', async (t) => {
  const violations = contract.check('GET', '/v1/things/a', 200, { ...json, 'x-request-id': 'r1', 'X-Powered-By': 'PHP' }, thing);
  t.equal(violations.length, 1);
  t.equal(violations[0]?.kind, 'undeclared-header');
  t.equal(violations[0]?.header, 'x-powered-by');
  t.match(violations[0]?.message, /getThing \(GET \/v1\/things\/\{id\}\) answered 200 with the header x-powered-by/);
});

t.test('a header is declared per response, not per operation', async (t) => {
  const violations = contract.check('GET', '/v1/things/a', 404, { ...problemJson, etag: '"1"' }, notFound);
  t.same(violations.map((violation) => [violation.kind, violation.header]), [['undeclared-header', 'etag']], 'the 200 declares ETag, the 404 does not');
});

t.test('refuses an undeclared status, errors included, even as valid problem details', async (t) => {
  for (const status of [201, 409, 429, 503]) {
    const body = status >= 400 ? JSON.stringify({ type: 'about:blank', title: 'x', status }) : thing;
    const violations = contract.check('GET', '/v1/things/a', status, status >= 400 ? problemJson : json, body);
    t.equal(violations.length, 1, `${status} refused`);
    t.equal(violations[0]?.kind, 'undeclared-status');
    t.match(violations[0]?.message, new RegExp(`getThing \\(GET /v1/things/\\{id\\}\\) answered ${status}, which it does not declare`));
  }
});

t.test('a request no operation takes may only be refused, with the few headers such refusals carry', async (t) => {
  t.same(contract.check('GET', '/v1/nothing', 404, { ...problemJson, 'x-request-id': 'r', 'cache-control': 'no-store' }, notFound), []);
  t.same(contract.check('DELETE', '/v1/things/a', 404, problemJson, notFound), [], 'an undocumented method of a documented path');
  t.match(contract.check('GET', '/v1/nothing', 200, json, thing), [{ kind: 'undeclared-status' }]);
  t.match(contract.check('GET', '/v1/nothing', 418, problemJson, JSON.stringify({ title: 'teapot', status: 418 })), [{ kind: 'undeclared-status' }]);
  t.match(contract.check('GET', '/v1/nothing', 404, { ...problemJson, etag: '"1"' }, notFound), [{ kind: 'undeclared-header', header: 'etag' }]);
});
