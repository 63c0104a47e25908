// Moves every named schema (lib/components.ts) of the generated document into components.schemas
// and refers to it by $ref. A use may add annotations to the named schema (its own description, a
// default): it becomes a $ref with those siblings, which OpenAPI 3.1 allows. Two different schemas
// under one name are a mistake of ours and stop the document from being built.
import { isDeepStrictEqual } from 'node:util';
import { componentKeyword } from '../lib/components.js';
import { optionalBodyKeyword } from '../lib/optional-body.js';
import { operationsOf } from './openapi-operations.js';

type Json = Record<string, any>;

/** Keywords a use may add to a named schema without making it another schema. */
const annotations = new Set(['description', 'default', 'examples', 'example', 'title', 'deprecated', 'readOnly', 'writeOnly']);
const named = Symbol('named');
interface NamedUse {
  [named]: string;
  body: Json;
}
const isNamedUse = (value: unknown): value is NamedUse => typeof value === 'object' && value !== null && named in value;

export function hoistComponents(document: Json): Json {
  const uses = new Map<string, Json[]>();

  const collect = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(collect);
    if (typeof node !== 'object' || node === null) return node;
    const { [componentKeyword]: name, ...rest } = node as Json;
    const converted = Object.fromEntries(Object.entries(rest).map(([key, value]) => [key, collect(value)]));
    if (typeof name !== 'string') return converted;
    uses.set(name, [...(uses.get(name) ?? []), converted]);
    return { [named]: name, body: converted } satisfies NamedUse;
  };
  const collected = collect(document) as Json;

  // The schema of a name is its barest use; every other use is it plus annotations.
  const schemas = new Map<string, Json>();
  for (const [name, bodies] of uses) {
    const bare = bodies.reduce((smallest, body) => (Object.keys(body).length < Object.keys(smallest).length ? body : smallest));
    for (const body of bodies) {
      const differs = Object.keys(body).some((key) => !annotations.has(key) && !isDeepStrictEqual(body[key], bare[key]));
      const lacks = Object.keys(bare).some((key) => !(key in body) || (!annotations.has(key) && !isDeepStrictEqual(body[key], bare[key])));
      if (differs || lacks) throw new Error(`Two different schemas are named ${name} in the OpenAPI document`);
    }
    schemas.set(name, bare);
  }

  const refer = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(refer);
    if (typeof node !== 'object' || node === null) return node;
    if (isNamedUse(node)) {
      const bare = schemas.get(node[named])!;
      const siblings = Object.entries(node.body).filter(([key, value]) => !isDeepStrictEqual(value, bare[key]));
      return { $ref: `#/components/schemas/${node[named]}`, ...Object.fromEntries(siblings.map(([key, value]) => [key, refer(value)])) };
    }
    return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, refer(value)]));
  };
  const result = refer(collected) as Json;
  const hoisted = Object.fromEntries([...schemas].map(([name, schema]) => [name, refer(schema)]));
  result.components = { ...result.components, schemas: sortedByName({ ...result.components?.schemas, ...hoisted }) };
  return result;
}

const sortedByName = (schemas: Json) => Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));

/** Parameters many operations share, by where and what they are, with the name a generated client gives them. */
const sharedParameters: Record<string, string> = {
  'path id': 'Id',
  'query limit': 'PageLimit',
  'query cursor': 'PageCursor',
  'header idempotency-key': 'IdempotencyKey',
  'header if-match': 'IfMatch',
  'query _format': 'FhirFormat',
  'query _id': 'FhirIds',
  'query _lastUpdated': 'FhirLastUpdated',
  'query _count': 'FhirCount',
  'query _cursor': 'FhirCursor',
  'header prefer': 'FhirPrefer',
};

/**
 * A query parameter with a default is optional, whatever the schema's required list says (TypeBox
 * lists a defaulted property as required); then each shared parameter becomes a component, taken by
 * the most common of its forms (a use that differs stays inline).
 */
export function hoistParameters(document: Json): Json {
  const forms = new Map<string, { parameter: Json; count: number }>();
  for (const operation of operationsOf(document)) {
    for (const parameter of (operation.parameters ?? []) as Json[]) {
      if (parameter.in === 'query' && parameter.schema?.default !== undefined) parameter.required = false;
      const key = `${parameter.in} ${parameter.name}`;
      if (!(key in sharedParameters)) continue;
      const form = JSON.stringify(parameter);
      forms.set(form, { parameter, count: (forms.get(form)?.count ?? 0) + 1 });
    }
  }
  const chosen = new Map<string, string>();
  for (const [form, { parameter, count }] of [...forms].sort(([, a], [, b]) => b.count - a.count)) {
    const name = sharedParameters[`${parameter.in} ${parameter.name}`]!;
    if (count > 1 && ![...chosen.values()].includes(name)) chosen.set(form, name);
  }
  for (const operation of operationsOf(document).filter((candidate) => Array.isArray(candidate.parameters))) {
    operation.parameters = (operation.parameters as Json[]).map((parameter) => {
      const name = chosen.get(JSON.stringify(parameter));
      return name ? { $ref: `#/components/parameters/${name}` } : parameter;
    });
  }
  const parameters = [...forms].filter(([form]) => chosen.has(form)).map(([form, { parameter }]) => [chosen.get(form)!, parameter] as const);
  const all = [...Object.entries((document.components?.parameters ?? {}) as Json), ...parameters];
  document.components = { ...document.components, parameters: Object.fromEntries(all.sort(([a], [b]) => a.localeCompare(b))) };
  return document;
}

/** A route whose body is optional (lib/optional-body.ts) says so in the document. */
export function markOptionalBodies(document: Json): Json {
  for (const operation of operationsOf(document)) {
    if (!operation[optionalBodyKeyword]) continue;
    delete operation[optionalBodyKeyword];
    if (operation.requestBody) operation.requestBody.required = false;
  }
  return document;
}

const statusWords: Record<string, string> = { '200': 'OK', '201': 'Created', '202': 'Accepted', '204': 'Done, nothing to return' };

/** A success the route did not describe says what it carries (@fastify/swagger writes "Default Response"). */
export function describeSuccesses(document: Json): Json {
  for (const operation of operationsOf(document)) {
    for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
      if (response.description !== 'Default Response' || !(status in statusWords)) continue;
      const ref = Object.values((response.content ?? {}) as Record<string, Json>)[0]?.schema?.$ref as string | undefined;
      const name = ref?.split('/').pop();
      response.description = name ? `${statusWords[status]}: ${name.endsWith('Page') ? `a page of ${name.slice(0, -'Page'.length)}` : `the ${name}`}` : statusWords[status];
    }
  }
  return document;
}
