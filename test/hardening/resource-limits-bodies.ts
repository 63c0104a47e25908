// Request bodies of the resource-limits test (resource-limits.test.ts) built to exhaust the parser,
// the validator or whatever walks them afterwards: deep nesting, and a value put in every string
// field a body schema holds.
import type { Json } from '../helper.js';

export const nestedArrays = (depth: number, leaf = '1') => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;
export const nestedObjects = (depth: number, leaf = '1') => `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`;

export type PathPart = string | number;

/** The path of every string (or enumerated string) a request body schema holds, arrays entered at item 0. */
export function stringPaths(document: Json, schema: Json, path: PathPart[] = []): PathPart[][] {
  if (typeof schema.$ref === 'string') return stringPaths(document, resolveRef(document, schema.$ref), path);
  if (schema.type === 'string' || (Array.isArray(schema.enum) && schema.enum.every((value: unknown) => typeof value === 'string'))) return [path];
  if (schema.type === 'object' || schema.properties) {
    return Object.entries((schema.properties ?? {}) as Record<string, Json>).flatMap(([name, child]) => stringPaths(document, child, [...path, name]));
  }
  if (schema.type === 'array' && schema.items) return stringPaths(document, schema.items as Json, [...path, 0]);
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    if (Array.isArray(schema[key])) return (schema[key] as Json[]).flatMap((branch) => stringPaths(document, branch, path));
  }
  return [];
}

function resolveRef(document: Json, ref: string): Json {
  return ref
    .replace(/^#\//, '')
    .split('/')
    .reduce((node: Json, key) => node[key], document);
}

/** The field as the API names it in a problem: patient.identifiers[0].value. */
export const fieldName = (path: PathPart[]) => path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`)).join('');

export function withValueAt(body: Json, path: PathPart[], value: unknown): Json | undefined {
  const copy = structuredClone(body);
  let node: Json = copy;
  for (const part of path.slice(0, -1)) {
    node = node[part];
    if (node === undefined || node === null || typeof node !== 'object') return undefined;
  }
  const last = path.at(-1)!;
  if (!(last in node)) return undefined;
  node[last] = value;
  return copy;
}
