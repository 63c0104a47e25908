// The response contract of the OpenAPI document, enforced strictly: a response must have a status the
// operation declares (errors included: a status the document does not name is a gap in it), only
// headers that response declares (bar the transport and security boilerplate named below), the
// declared media type, and a body that validates against the declared schema with every object
// closed. Closing the objects is the point: the document leaves additionalProperties unset almost
// everywhere, so a plain validator would wave through a leaked column.
import addFormats from 'ajv-formats';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

type Json = Record<string, any>;

export type ViolationKind =
  /** An object in the body holds a property its schema does not declare. */
  | 'undeclared-property'
  /** The body breaks its schema otherwise (type, format, required, enum, …) or is not parseable. */
  | 'schema'
  /** A status the operation does not declare, or a 2xx from a route the document does not know. */
  | 'undeclared-status'
  /** A response header the response does not declare and that is not boilerplate. */
  | 'undeclared-header'
  /** A media type other than the declared one(s). */
  | 'content-type';

export interface Violation {
  kind: ViolationKind;
  message: string;
  /** For undeclared-property: the property's name. */
  property?: string;
  /** For undeclared-header: the header's name, in lower case. */
  header?: string;
}

interface ResponseObject {
  description?: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema?: unknown }>;
}

export interface Operation {
  method: string;
  /** The path as the document writes it, e.g. /v1/referrals/{id}. */
  path: string;
  operationId: string;
  responses: Record<string, ResponseObject>;
  pattern: RegExp;
  /** Literal segments: /v1/audit-events/export beats a /v1/audit-events/{id} for the same URL. */
  literalSegments: number;
}

const httpMethods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const problemMediaType = 'application/problem+json';

/**
 * The document declares the NDJSON export as a plain string; each line is an AuditEvent, the item of
 * the matching list operation, so that is what each line is held to.
 */
const ndjsonLineSchemaSources: Record<string, { operationId: string; pointer: string[] }> = {
  exportAuditEvents: { operationId: 'listAuditEvents', pointer: ['responses', '200', 'content', 'application/json', 'schema', 'properties', 'data', 'items'] },
};

/** Routes outside the document that still answer; documentation is not an API resource. */
const undocumentedRoutes: Array<{ methods: string[]; path: RegExp; check: 'openapi' | 'none' }> = [
  { methods: ['GET', 'HEAD'], path: /^\/openapi\.json$/, check: 'openapi' },
  { methods: ['GET', 'HEAD'], path: /^\/docs(\/.*)?$/, check: 'none' },
];

/**
 * Headers any answer may carry without the document naming them: how HTTP frames the message
 * (content-type is held to the declared media types instead), and the security headers
 * @fastify/helmet puts on every answer. Everything else a response carries must be declared.
 */
export const boilerplateHeaders: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'vary',
  // @fastify/helmet
  'content-security-policy',
  'cross-origin-embedder-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
]);

/**
 * How a request that reaches no documented operation is answered (an unknown path or method, a path
 * the router refuses, a body refused before routing, a shutdown): as problem details, with these
 * statuses and headers only. The document cannot say this, since there is no operation to say it on.
 */
const unroutedAnswers = {
  statuses: new Set([400, 404, 413, 414, 415, 503]),
  headers: new Set(['x-request-id', 'cache-control', 'retry-after']),
};

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function isObjectLike(schema: unknown): boolean {
  if (!isObject(schema)) return false;
  const type = schema.type;
  return type === 'object' || (Array.isArray(type) && type.includes('object')) || 'properties' in schema;
}

/**
 * A copy of the schema with every object closed that does not say otherwise, and every $ref inlined.
 * Branches of an allOf describe parts of one object, so the object is closed where they meet
 * (unevaluatedProperties) rather than in each branch, which would refuse the other branches' members.
 */
export function closeSchema(schema: unknown, resolve: (ref: string) => unknown, composed = false, depth = 0): unknown {
  if (depth > 64) throw new Error('schema nests too deep (a $ref cycle?)');
  if (Array.isArray(schema)) return schema.map((item) => closeSchema(item, resolve, false, depth + 1));
  if (!isObject(schema)) return schema;
  if (typeof schema.$ref === 'string') {
    const { $ref, ...siblings } = schema;
    return closeSchema({ ...(resolve($ref) as Json), ...siblings }, resolve, composed, depth + 1);
  }
  const next = (value: unknown, inComposition = false) => closeSchema(value, resolve, inComposition, depth + 1);
  const closed: Json = { ...schema };
  for (const key of ['properties', 'patternProperties', '$defs', 'dependentSchemas']) {
    if (isObject(schema[key])) closed[key] = Object.fromEntries(Object.entries(schema[key]).map(([name, value]) => [name, next(value)]));
  }
  for (const key of ['items', 'additionalProperties', 'unevaluatedProperties', 'unevaluatedItems', 'contains', 'not', 'if', 'then', 'else', 'propertyNames']) {
    if (isObject(schema[key])) closed[key] = next(schema[key]);
  }
  for (const key of ['prefixItems', 'anyOf', 'oneOf']) {
    if (Array.isArray(schema[key])) closed[key] = schema[key].map((item: unknown) => next(item));
  }
  if (Array.isArray(schema.allOf)) closed.allOf = schema.allOf.map((item: unknown) => next(item, true));

  const declaresOpenness = 'additionalProperties' in schema || 'patternProperties' in schema || 'unevaluatedProperties' in schema;
  if (!declaresOpenness && !composed) {
    if (Array.isArray(schema.allOf) && schema.allOf.some((branch: unknown) => isObjectLike(branch) || (isObject(branch) && '$ref' in branch))) {
      closed.unevaluatedProperties = false;
    } else if (isObjectLike(schema)) {
      closed.additionalProperties = false;
    }
  }
  return closed;
}

function mediaTypeOf(headers: Record<string, unknown>): string | undefined {
  const value = headers['content-type'];
  const text = Array.isArray(value) ? value[0] : value;
  return typeof text === 'string' ? text.split(';')[0]!.trim().toLowerCase() : undefined;
}

const isJsonMediaType = (mediaType: string) => mediaType === 'application/json' || mediaType.endsWith('+json');

function describe(error: ErrorObject): Violation {
  const at = error.instancePath || '(body)';
  if (error.keyword === 'additionalProperties' || error.keyword === 'unevaluatedProperties') {
    const property = String(error.params.additionalProperty ?? error.params.unevaluatedProperty);
    return { kind: 'undeclared-property', property, message: `${at}: undeclared property "${property}"` };
  }
  const params = error.keyword === 'enum' ? ` (${(error.params.allowedValues as unknown[]).join(', ')})` : '';
  return { kind: 'schema', message: `${at}: ${error.message ?? error.keyword}${params}` };
}

const undeclaredKeywords = new Set(['additionalProperties', 'unevaluatedProperties']);

/**
 * Ajv reports every failing branch of an anyOf. When one branch fails only by undeclared properties
 * (the value has that branch's shape otherwise), that branch is what the value meant to be: its
 * complaints are the answer, not the other branches' "must be null".
 */
function violationsOf(errors: ErrorObject[]): Violation[] {
  let kept = errors;
  for (const union of errors.filter((error) => error.keyword === 'anyOf' || error.keyword === 'oneOf')) {
    const prefix = `${union.schemaPath}/`;
    const branches = new Map<string, ErrorObject[]>();
    for (const error of kept) {
      if (!error.schemaPath.startsWith(prefix)) continue;
      const branch = error.schemaPath.slice(prefix.length).split('/')[0]!;
      branches.set(branch, [...(branches.get(branch) ?? []), error]);
    }
    const meant = [...branches.values()].find((branchErrors) => branchErrors.every((error) => undeclaredKeywords.has(error.keyword)));
    if (meant) kept = kept.filter((error) => error !== union && (!error.schemaPath.startsWith(prefix) || meant.includes(error)));
  }
  const unique = new Map(kept.map(describe).map((violation) => [violation.message, violation]));
  return [...unique.values()];
}

// Compiling is the slow part; the same (closed) schema recurs across operations, e.g. Problem.
const compiledBySchema = new Map<string, ValidateFunction>();
let sharedAjv: Ajv2020 | undefined;

function compile(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiledBySchema.get(key);
  if (!validate) {
    sharedAjv ??= (() => {
      // strict: false, since the document carries OpenAPI annotations (example, …) Ajv does not know.
      const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
      addFormats.default(ajv);
      return ajv;
    })();
    validate = sharedAjv.compile(schema as object);
    compiledBySchema.set(key, validate);
  }
  return validate;
}

function pathPattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => (/^\{[^}]+\}$/.test(segment) ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

/**
 * The path of a request URL as the router sees it: dot segments resolved as URL parsing resolves
 * them (so /v1/referrals/. is the list, not a referral named "."), no query, no trailing slash.
 */
export function requestPath(url: string): string {
  let path: string;
  try {
    path = new URL(url, 'http://localhost').pathname;
  } catch {
    path = url.split(/[?#]/, 1)[0] ?? '';
  }
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

export class ResponseContract {
  readonly operations: Operation[];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(readonly document: Json) {
    this.operations = Object.entries((document.paths ?? {}) as Record<string, Json>).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => httpMethods.includes(method))
        .map(([method, operation]) => ({
          method: method.toUpperCase(),
          path,
          operationId: String(operation.operationId ?? `${method} ${path}`),
          responses: (operation.responses ?? {}) as Record<string, ResponseObject>,
          pattern: pathPattern(path),
          literalSegments: path.split('/').filter((segment) => segment && !segment.startsWith('{')).length,
        })),
    );
  }

  /** The documented operation a request reaches, preferring literal segments over parameters. */
  operationFor(method: string, url: string): Operation | undefined {
    const path = requestPath(url);
    const wanted = method.toUpperCase() === 'HEAD' ? ['HEAD', 'GET'] : [method.toUpperCase()];
    let best: Operation | undefined;
    for (const name of wanted) {
      for (const operation of this.operations) {
        if (operation.method !== name || !operation.pattern.test(path)) continue;
        if (!best || operation.literalSegments > best.literalSegments) best = operation;
      }
      if (best) return best;
    }
    return undefined;
  }

  /** Every way the response breaks the contract; empty when it keeps it. */
  check(method: string, url: string, statusCode: number, headers: Record<string, unknown>, bodyText: string): Violation[] {
    const path = requestPath(url);
    const isHead = method.toUpperCase() === 'HEAD';
    const isError = statusCode >= 400;
    const operation = this.operationFor(method, url);

    if (!operation) {
      const known = undocumentedRoutes.find((route) => route.methods.includes(method.toUpperCase()) && route.path.test(path));
      // The documentation is not an API resource: its statuses and headers are its framework's.
      if (known) {
        if (isError) return isHead ? [] : this.checkProblem(statusCode, headers, bodyText);
        return known.check === 'openapi' && statusCode === 200 && !isHead ? this.checkOpenApiDocument(headers, bodyText) : [];
      }
      const where = `${method.toUpperCase()} ${path} (no documented operation)`;
      if (!unroutedAnswers.statuses.has(statusCode)) {
        return [{ kind: 'undeclared-status', message: `${where} answered ${statusCode}; a request no operation takes may only be answered ${[...unroutedAnswers.statuses].join(', ')}` }];
      }
      return [
        ...undeclaredHeaders(where, statusCode, headers, unroutedAnswers.headers),
        ...(isHead ? [] : this.checkProblem(statusCode, headers, bodyText)),
      ];
    }

    const status = String(statusCode);
    const declared = operation.responses[status] ?? operation.responses[`${status[0]}XX`] ?? operation.responses.default;
    const where = `${operation.operationId} (${operation.method} ${operation.path})`;
    if (!declared) {
      return [{ kind: 'undeclared-status', message: `${where} answered ${statusCode}, which it does not declare (declares ${Object.keys(operation.responses).join(', ')})` }];
    }
    const headerViolations = undeclaredHeaders(where, statusCode, headers, new Set(Object.keys(declared.headers ?? {}).map((name) => name.toLowerCase())));
    if (isHead) return headerViolations;
    return [...headerViolations, ...this.checkBody(operation, status, declared, headers, bodyText)];
  }

  /** The body against the declared media type and schema. */
  private checkBody(operation: Operation, status: string, declared: ResponseObject, headers: Record<string, unknown>, bodyText: string): Violation[] {
    const statusCode = Number(status);
    const content = declared.content ?? {};
    const mediaTypes = Object.keys(content);
    if (mediaTypes.length === 0) {
      return bodyText.length > 0 ? [{ kind: 'schema', message: `${operation.operationId} ${status} declares no body, yet sent ${bodyText.length} bytes` }] : [];
    }
    const mediaType = mediaTypeOf(headers);
    if (!mediaType || !mediaTypes.includes(mediaType)) {
      return [{ kind: 'content-type', message: `${operation.operationId} ${status}: content-type ${mediaType ?? '(none)'}, declared ${mediaTypes.join(' or ')}` }];
    }
    const violations: Violation[] = [];
    if (mediaType === 'application/x-ndjson') {
      const validate = this.ndjsonLineValidator(operation);
      const lines = bodyText.split('\n').filter((line) => line.length > 0);
      lines.forEach((line, index) => {
        const parsed = parseJson(line);
        if (!parsed.ok) violations.push({ kind: 'schema', message: `line ${index + 1}: not JSON` });
        else if (validate && !validate(parsed.value)) {
          for (const violation of violationsOf(validate.errors ?? [])) violations.push({ ...violation, message: `line ${index + 1} ${violation.message}` });
        }
      });
      return violations;
    }
    if (!isJsonMediaType(mediaType)) return [];
    const parsed = parseJson(bodyText);
    if (!parsed.ok) return [{ kind: 'schema', message: `${operation.operationId} ${status}: the body is not JSON` }];
    const validate = this.validator(`${operation.method} ${operation.path} ${status} ${mediaType}`, content[mediaType]?.schema);
    if (validate && !validate(parsed.value)) violations.push(...violationsOf(validate.errors ?? []));
    if (mediaType === problemMediaType) violations.push(...problemStatusMismatch(statusCode, parsed.value));
    return violations.map((violation) => ({ ...violation, message: `${operation.operationId} ${status}: ${violation.message}` }));
  }

  /** check() as readable lines. */
  violations(method: string, url: string, statusCode: number, headers: Record<string, unknown>, bodyText: string): string[] {
    return this.check(method, url, statusCode, headers, bodyText).map((violation) => violation.message);
  }

  private checkProblem(statusCode: number, headers: Record<string, unknown>, bodyText: string): Violation[] {
    const mediaType = mediaTypeOf(headers);
    if (mediaType !== problemMediaType) {
      return [{ kind: 'content-type', message: `${statusCode}: content-type ${mediaType ?? '(none)'}, expected ${problemMediaType}` }];
    }
    const parsed = parseJson(bodyText);
    if (!parsed.ok) return [{ kind: 'schema', message: `${statusCode}: the problem body is not JSON` }];
    const validate = this.validator('#problem', { $ref: '#/components/schemas/Problem' })!;
    const violations = validate(parsed.value) ? [] : violationsOf(validate.errors ?? []);
    return [...violations, ...problemStatusMismatch(statusCode, parsed.value)].map((violation) => ({ ...violation, message: `problem ${statusCode}: ${violation.message}` }));
  }

  private checkOpenApiDocument(headers: Record<string, unknown>, bodyText: string): Violation[] {
    const mediaType = mediaTypeOf(headers);
    if (mediaType !== 'application/json') return [{ kind: 'content-type', message: `/openapi.json: content-type ${mediaType ?? '(none)'}` }];
    const parsed = parseJson(bodyText);
    if (!parsed.ok || !isObject(parsed.value) || typeof parsed.value.openapi !== 'string' || !isObject(parsed.value.paths)) {
      return [{ kind: 'schema', message: '/openapi.json: not an OpenAPI document' }];
    }
    return [];
  }

  private validator(key: string, schema: unknown): ValidateFunction | undefined {
    if (schema === undefined) return undefined;
    let validate = this.validators.get(key);
    if (!validate) {
      validate = compile(closeSchema(schema, (ref) => this.resolve(ref)));
      this.validators.set(key, validate);
    }
    return validate;
  }

  private ndjsonLineValidator(operation: Operation): ValidateFunction | undefined {
    const source = ndjsonLineSchemaSources[operation.operationId];
    if (!source) return undefined;
    const listing = this.operations.find((candidate) => candidate.operationId === source.operationId);
    const operationObject = listing ? (this.document.paths[listing.path][listing.method.toLowerCase()] as Json) : undefined;
    const schema = source.pointer.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), operationObject);
    if (schema === undefined) throw new Error(`no line schema for ${operation.operationId} at ${source.operationId}`);
    return this.validator(`ndjson ${operation.operationId}`, schema);
  }

  private resolve(ref: string): unknown {
    if (!ref.startsWith('#/')) throw new Error(`cannot resolve ${ref}`);
    const target = ref
      .slice(2)
      .split('/')
      .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), this.document);
    if (target === undefined) throw new Error(`unresolved ${ref}`);
    return target;
  }
}

/** Each header of the response that is neither declared nor boilerplate; names compare case-insensitively. */
function undeclaredHeaders(where: string, statusCode: number, headers: Record<string, unknown>, declared: ReadonlySet<string>): Violation[] {
  return Object.keys(headers)
    .map((name) => name.toLowerCase())
    .filter((name) => !boilerplateHeaders.has(name) && !declared.has(name))
    .map((name) => ({
      kind: 'undeclared-header' as const,
      header: name,
      message: `${where} answered ${statusCode} with the header ${name}, which that response does not declare (declares ${[...declared].sort().join(', ') || 'none'})`,
    }));
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** RFC 9457 §3.1.2: the status member, when present, is the HTTP status. */
function problemStatusMismatch(statusCode: number, body: unknown): Violation[] {
  return isObject(body) && typeof body.status === 'number' && body.status !== statusCode
    ? [{ kind: 'schema', message: `problem status member ${body.status} differs from the HTTP status ${statusCode}` }]
    : [];
}

const contracts = new WeakMap<object, ResponseContract>();

/** The contract of a document, built once per document object. */
export function contractOf(document: object): ResponseContract {
  let contract = contracts.get(document);
  if (!contract) {
    contract = new ResponseContract(document as Json);
    contracts.set(document, contract);
  }
  return contract;
}

/** Readable violations of one response against the document; empty when it keeps the contract. */
export function responseViolations(
  document: object,
  method: string,
  url: string,
  statusCode: number,
  headers: Record<string, unknown>,
  bodyText: string,
): string[] {
  return contractOf(document).violations(method, url, statusCode, headers, bodyText);
}
