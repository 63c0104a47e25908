// Reading FHIR search parameters (https://hl7.org/fhir/R4/search.html) as a route declares them.
// Unknown parameters are ignored, as FHIR servers do by default, and left out of the self link; with
// `Prefer: handling=strict` they are refused. A modifier or prefix we do not implement is always
// refused: ignoring it would answer a different question than the one asked.
import { validationFailed } from '../../../lib/errors.js';
import { uuidPattern } from '../../../lib/vocabulary.js';

export type SearchParameterType = 'token' | 'reference' | 'date' | 'number' | 'special';

export interface SearchParameterDefinition {
  name: string;
  type: SearchParameterType;
  description: string;
  /** For references: the resource types it may name (the first is assumed for a bare id). */
  targets?: readonly string[];
  /** For tokens: the codes it takes. */
  codes?: readonly string[];
  /** May be given more than once (each adds to the others). */
  repeats?: boolean;
}

/** What every search takes, besides its resource's own parameters. */
export const commonParameters: SearchParameterDefinition[] = [
  { name: '_id', type: 'token', description: 'Logical ids, comma-separated' },
  { name: '_lastUpdated', type: 'date', description: 'Changed at or after (ge) or after (gt) an instant' },
  { name: '_count', type: 'number', description: 'Page size, 1 to 100 (default 50)' },
  { name: '_cursor', type: 'special', description: 'Where the next page starts: copy the next link rather than build it' },
];
const ignoredEverywhere = new Set(['_format', '_pretty', '_summary', '_elements']);

export interface ReferenceValue {
  type: string;
  id: string;
}

export interface ParsedSearch {
  tokens: Map<string, string[]>;
  references: Map<string, ReferenceValue[]>;
  lastUpdated?: { prefix: 'ge' | 'gt'; at: Date };
  /** Every date parameter given (_lastUpdated too), by name. */
  dates: Map<string, { prefix: 'ge' | 'gt'; at: Date }>;
  count: number;
  cursor?: string;
  includes: string[];
  /** The parameters applied, as a next or self link repeats them. */
  applied: [string, string][];
}

export const defaultCount = 50;
export const maxCount = 100;

function problem(name: string, message: string): never {
  throw validationFailed([{ field: `query.${name}`, message }]);
}

function parseReference(name: string, raw: string, targets: readonly string[]): ReferenceValue {
  const parts = raw.split('/');
  const id = parts.at(-1)!;
  const type = parts.length >= 2 ? parts.at(-2)! : targets[0]!;
  if (!targets.includes(type)) problem(name, `must reference ${targets.join(' or ')}`);
  if (!uuidPattern.test(id)) problem(name, `names no ${type} of this server (ids are UUIDs)`);
  return { type, id: id.toLowerCase() };
}

export function parseSearch(
  query: Record<string, unknown>,
  definitions: readonly SearchParameterDefinition[],
  options: { strict: boolean; includes?: readonly string[]; /** Ids of types whose ids are not UUIDs (derived ids, numbers). */ idPattern?: RegExp },
): ParsedSearch {
  const byName = new Map([...commonParameters, ...definitions].map((definition) => [definition.name, definition]));
  const parsed: ParsedSearch = { tokens: new Map(), references: new Map(), dates: new Map(), count: defaultCount, includes: [], applied: [] };
  for (const [key, rawValue] of Object.entries(query)) {
    if (ignoredEverywhere.has(key)) continue;
    const values = (Array.isArray(rawValue) ? rawValue : [rawValue]).map(String);
    if (key === '_include' || key === '_revinclude') {
      for (const value of values) {
        const include = `${key}=${value}`;
        if (!options.includes?.includes(include)) problem(key, `${value} is not supported here${options.includes?.length ? `; supported: ${options.includes.join(', ')}` : ''}`);
        parsed.includes.push(include);
        parsed.applied.push([key, value]);
      }
      continue;
    }
    const [name, modifier] = key.split(':') as [string, string | undefined];
    const definition = byName.get(name);
    if (!definition) {
      if (options.strict) problem(key, 'is not a search parameter of this resource (Prefer: handling=strict)');
      continue;
    }
    if (modifier !== undefined) problem(key, `the modifier :${modifier} is not supported`);
    if (values.length > 1 && !definition.repeats) problem(key, 'give it once, with comma-separated values for "any of"');
    for (const value of values) {
      if (value === '') problem(key, 'must not be empty');
      parsed.applied.push([key, value]);
      if (name === '_count') {
        const count = Number(value);
        if (!Number.isInteger(count) || count < 1 || count > maxCount) problem(key, `must be a whole number from 1 to ${maxCount}`);
        parsed.count = count;
      } else if (name === '_cursor') {
        parsed.cursor = value;
      } else if (definition.type === 'date') {
        const prefix = value.slice(0, 2);
        if (prefix !== 'ge' && prefix !== 'gt') problem(key, 'takes the prefixes ge and gt (changed since), e.g. ge2026-01-01T00:00:00Z');
        const at = new Date(value.slice(2));
        if (Number.isNaN(at.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value.slice(2))) problem(key, 'must be a date or instant after its prefix');
        if (name === '_lastUpdated') parsed.lastUpdated = { prefix, at };
        parsed.dates.set(name, { prefix, at });
      } else if (definition.type === 'reference') {
        const list = parsed.references.get(name) ?? [];
        list.push(...value.split(',').map((item) => parseReference(key, item, definition.targets ?? [])));
        parsed.references.set(name, list);
      } else {
        const codes = value.split(',').map((item) => (item.includes('|') ? item.slice(item.indexOf('|') + 1) : item));
        if (name === '_id' && codes.some((code) => !(options.idPattern ?? uuidPattern).test(code))) problem(key, options.idPattern ? 'names no id of this type' : 'ids of this server are UUIDs');
        if (definition.codes) {
          const unknown = codes.find((code) => !definition.codes!.includes(code));
          if (unknown !== undefined) problem(key, `${unknown} is not one of: ${definition.codes.join(', ')}`);
        }
        parsed.tokens.set(name, [...(parsed.tokens.get(name) ?? []), ...codes.map((code) => (name === '_id' ? code.toLowerCase() : code))]);
      }
    }
  }
  return parsed;
}

/** Whether the client asked for unknown parameters to be refused rather than ignored. */
export function wantsStrictHandling(prefer: string | string[] | undefined): boolean {
  const values = Array.isArray(prefer) ? prefer : prefer ? [prefer] : [];
  return values.some((value) => value.split(/[;,]/).some((part) => part.trim().toLowerCase() === 'handling=strict'));
}
