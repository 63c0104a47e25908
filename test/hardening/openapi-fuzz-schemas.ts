// JSON Schema (the subset the OpenAPI document uses) → fast-check arbitraries of valid and invalid
// values, for the OpenAPI fuzzer (openapi-fuzz.test.ts).
import fc from 'fast-check';
import type { Json } from '../helper.js';
import { PoolRef, dateHints, emailArb, fieldPools, integerQueryHints, isoDay, queryHints, ref } from './openapi-fuzz-values.js';


export type Schema = Json;

export function makeResolver(document: Json) {
  return (schema: Schema): Schema => {
    let current = schema;
    for (let depth = 0; typeof current?.$ref === 'string' && depth < 16; depth++) {
      const { $ref, ...siblings } = current;
      const target = ($ref as string)
        .slice(2)
        .split('/')
        .reduce<any>((node, key) => node?.[key], document);
      current = { ...target, ...siblings };
    }
    return current;
  };
}

/** allOf of objects, as the one object it describes. */
function merged(schema: Schema, resolve: (schema: Schema) => Schema): Schema {
  if (!Array.isArray(schema.allOf)) return schema;
  const parts = schema.allOf.map((part: Schema) => merged(resolve(part), resolve));
  return {
    type: 'object',
    properties: Object.assign({}, ...parts.map((part: Schema) => part.properties ?? {})),
    required: parts.flatMap((part: Schema) => part.required ?? []),
  };
}

const typeOf = (schema: Schema): string | undefined =>
  Array.isArray(schema.type) ? schema.type[0] : schema.type ?? (schema.properties ? 'object' : schema.items ? 'array' : undefined);

const dateArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -45, max: 120 }).map(isoDay) },
  { weight: 1, arbitrary: fc.date({ min: new Date('1900-01-01'), max: new Date('2100-12-31'), noInvalidDate: true }).map((date) => date.toISOString().slice(0, 10)) },
);
const dateTimeArb = fc.oneof(
  fc.integer({ min: -7 * 24, max: 24 }).map((hours) => new Date(Date.now() + hours * 3_600_000).toISOString()),
  fc.date({ min: new Date('1970-01-01'), max: new Date('2100-12-31'), noInvalidDate: true }).map((date) => date.toISOString()),
);
const textArb = (minLength: number, maxLength: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ minLength, maxLength: Math.min(maxLength, Math.max(minLength, 40)) }) },
    { weight: 1, arbitrary: fc.string({ minLength, maxLength: Math.min(maxLength, Math.max(minLength, 40)), unit: 'grapheme' }) },
    // Lone surrogates and other odd code units, as JSON can carry them.
    { weight: 1, arbitrary: fc.string({ minLength, maxLength: Math.min(maxLength, Math.max(minLength, 20)), unit: 'binary' }).filter((text) => !text.includes('\u0000')) },
    { weight: 1, arbitrary: fc.constant('x'.repeat(Math.min(maxLength, 20_000))).filter((text) => text.length >= minLength) },
  );

/** Values the schema accepts (mostly: the server's own checks beyond the schema are not modelled). */
export function validArb(input: Schema, resolve: (schema: Schema) => Schema, name?: string): fc.Arbitrary<unknown> {
  const schema = merged(resolve(input), resolve);
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  if (Array.isArray(schema.anyOf) || Array.isArray(schema.oneOf)) {
    return fc.oneof(...(schema.anyOf ?? schema.oneOf).map((branch: Schema) => validArb(branch, resolve, name)));
  }
  const pool = name ? fieldPools[name] : undefined;
  if (name && dateHints[name] && schema.format === 'date') return fc.oneof({ weight: 4, arbitrary: dateHints[name]! }, { weight: 1, arbitrary: dateArb });
  if (name === 'email' && schema.format === 'email') return emailArb;
  if (name && integerQueryHints[name] && typeOf(schema) === 'integer') return integerQueryHints[name]!;
  // FHIR search parameters are a string or the same said several times (anyOf).
  if (name && queryHints[name] && (typeOf(schema) === 'integer' || typeOf(schema) === 'string' || Array.isArray(schema.anyOf))) return queryHints[name]!;
  switch (typeOf(schema)) {
    case 'string': {
      const minLength = schema.minLength ?? 0;
      const maxLength = schema.maxLength ?? 200;
      let base: fc.Arbitrary<string>;
      if (schema.format === 'uuid') base = fc.uuid();
      else if (schema.format === 'date') base = dateArb;
      else if (schema.format === 'date-time') base = dateTimeArb;
      else if (schema.format === 'email') base = fc.emailAddress().filter((email) => email.length <= maxLength);
      else if (schema.pattern) base = fc.stringMatching(new RegExp(schema.pattern)).filter((text) => text.length >= minLength && text.length <= maxLength);
      else base = textArb(minLength, maxLength);
      return pool ? fc.oneof({ weight: 3, arbitrary: ref(pool) as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: base }) : base;
    }
    case 'integer': {
      const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : -1_000_000);
      const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : 1_000_000);
      return fc.oneof({ weight: 4, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.constantFrom(min, max) });
    }
    case 'number': {
      const min = schema.minimum ?? schema.exclusiveMinimum ?? -1e6;
      const max = schema.maximum ?? schema.exclusiveMaximum ?? 1e6;
      return fc.oneof(
        { weight: 4, arbitrary: fc.double({ min, max, noNaN: true, noDefaultInfinity: true, minExcluded: schema.exclusiveMinimum !== undefined, maxExcluded: schema.exclusiveMaximum !== undefined }) },
        { weight: 1, arbitrary: fc.constantFrom(...[schema.minimum, schema.maximum, 0, 1].filter((value): value is number => typeof value === 'number' && value >= min && value <= max)) },
      );
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const items = validArb(schema.items ?? {}, resolve, name);
      const minLength = schema.minItems ?? 0;
      const maxLength = Math.max(minLength, Math.min(schema.maxItems ?? 4, 4));
      return schema.uniqueItems ? fc.uniqueArray(items, { minLength, maxLength, selector: (value) => JSON.stringify(value) }) : fc.array(items, { minLength, maxLength });
    }
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const model = Object.fromEntries(Object.entries(properties).map(([key, child]) => [key, validArb(child, resolve, key)]));
      const required = ((schema.required ?? []) as string[]).filter((key) => key in properties);
      const optional = Object.keys(properties).filter((key) => !required.includes(key));
      // Real clients send a few of the optional members, not half of them: a PATCH changes one or two things.
      const few = fc
        .integer({ min: 0, max: Math.min(2, optional.length) })
        .chain((count) => fc.shuffledSubarray(optional, { minLength: count, maxLength: count }))
        .chain((chosen) => fc.record(Object.fromEntries([...required, ...chosen].map((key) => [key, model[key]!]))));
      return fc.oneof(few, fc.record(model, { requiredKeys: required }));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Values the schema refuses, aimed at one rule at a time. */
export function invalidArb(input: Schema, resolve: (schema: Schema) => Schema): fc.Arbitrary<unknown> {
  const schema = merged(resolve(input), resolve);
  const confusion = fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, '', 'x', '1', 'null', 'true', [], {}, [null], { nested: { deeper: [] } });
  const aimed: fc.Arbitrary<unknown>[] = [];
  if (Array.isArray(schema.enum)) aimed.push(fc.constantFrom(`not-${String(schema.enum[0])}`, String(schema.enum[0]).toUpperCase(), ` ${String(schema.enum[0])}`));
  switch (typeOf(schema)) {
    case 'string':
      if (schema.maxLength !== undefined) aimed.push(fc.constant('y'.repeat(schema.maxLength + 1)));
      if (schema.minLength) aimed.push(fc.constant('z'.repeat(schema.minLength - 1)));
      if (schema.pattern) aimed.push(fc.constantFrom('!!', '1', '0000000000', 'M54.50 ', 'A'.repeat(12)));
      if (schema.format) aimed.push(fc.constantFrom('not-a-value', '2023-02-30', '2023-13-01', '2024-01-01T25:00:00Z', '00000000-0000-0000-0000-00000000000g', '@@', '2023-01-01T00:00:00', '1e5'));
      break;
    case 'integer':
    case 'number': {
      const low = schema.minimum ?? schema.exclusiveMinimum;
      const high = schema.maximum ?? schema.exclusiveMaximum;
      if (low !== undefined) aimed.push(fc.constantFrom(low - 1, schema.exclusiveMinimum ?? low - 0.5));
      if (high !== undefined) aimed.push(fc.constantFrom(high + 1, schema.exclusiveMaximum ?? high + 0.5));
      aimed.push(fc.constantFrom(2 ** 53, -(2 ** 53), 2 ** 31, -(2 ** 31) - 1, Number.MAX_VALUE, Number.MIN_VALUE, '7'));
      if (typeOf(schema) === 'integer') aimed.push(fc.constantFrom(0.5, 1.000001));
      break;
    }
    case 'array': {
      const item = validArb(schema.items ?? {}, resolve);
      if (schema.minItems) aimed.push(fc.constant([]));
      aimed.push(fc.array(item, { minLength: (schema.maxItems ?? 30) + 1, maxLength: (schema.maxItems ?? 30) + 2 }));
      if (schema.uniqueItems) aimed.push(item.map((value) => [value, value]));
      aimed.push(fc.array(invalidArb(schema.items ?? {}, resolve), { minLength: 1, maxLength: 2 }));
      break;
    }
    case 'object':
      aimed.push(fc.constant({}), fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }));
      break;
  }
  return aimed.length > 0 ? fc.oneof({ weight: 3, arbitrary: fc.oneof(...aimed) }, { weight: 1, arbitrary: confusion }) : confusion;
}

/** A valid value with one member broken: removed (if required), replaced by an invalid value, or joined by a stranger. */
export function mutatedArb(schema: Schema, resolve: (schema: Schema) => Schema): fc.Arbitrary<unknown> {
  return fc
    .tuple(validArb(schema, resolve), fc.nat(), fc.nat(), fc.string({ minLength: 1, maxLength: 16 }), fc.jsonValue({ maxDepth: 1 }))
    .chain(([value, where, how, strangerName, strangerValue]) => {
      // Every place in the value, with the schema that governs it.
      const places: Array<{ path: (string | number)[]; schema: Schema; parent?: Schema }> = [];
      const walk = (node: unknown, nodeSchema: Schema, path: (string | number)[], parent?: Schema) => {
        const resolved = merged(resolve(nodeSchema), resolve);
        places.push({ path, schema: resolved, ...(parent ? { parent } : {}) });
        if (path.length > 6) return;
        if (Array.isArray(node) && resolved.items) node.forEach((item, index) => walk(item, resolved.items, [...path, index]));
        else if (node && typeof node === 'object' && resolved.properties) {
          for (const [key, child] of Object.entries(node)) if (resolved.properties[key]) walk(child, resolved.properties[key], [...path, key], resolved);
        }
      };
      walk(value, schema, []);
      const place = places[where % places.length]!;
      const kind = how % 3;
      if (kind === 0 && place.path.length > 0 && place.parent?.required?.includes(place.path.at(-1))) {
        return fc.constant(setAt(value, place.path, undefined));
      }
      if (kind === 1 && typeOf(place.schema) === 'object') {
        return fc.constant(setAt(value, [...place.path, strangerName], strangerValue));
      }
      return invalidArb(place.schema, resolve).map((broken) => setAt(value, place.path, broken));
    });
}

/** A copy of value with the member at path set (undefined removes it). */
function setAt(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((item, index) => (index === head ? setAt(item, rest, replacement) : item));
  if (value && typeof value === 'object') {
    const copy: Json = { ...(value as Json) };
    const next = setAt(copy[head as string], rest, replacement);
    if (next === undefined) delete copy[head as string];
    else copy[head as string] = next;
    return copy;
  }
  return value;
}

/** The document's examples of a body, with ids of real resources put in (they name made-up ones). */
export function exampleArb(media: Json, schema: Schema): fc.Arbitrary<unknown> | undefined {
  const examples = [
    ...Object.values((media.examples ?? {}) as Record<string, { value?: unknown }>).map((example) => example.value),
    ...(media.example !== undefined ? [media.example] : []),
    ...((schema.examples as unknown[] | undefined) ?? []),
  ].filter((example) => example !== undefined);
  if (examples.length === 0) return undefined;
  // Each member that names a resource, a fresh address or a date relative to today gets a value of
  // this run. One index serves every resource of the example, so that pools kept in step (an email
  // and its password, a client id and its secret) give pairs that belong together.
  const varied = (value: unknown, index: number, name?: string): fc.Arbitrary<unknown> => {
    if (typeof value === 'string' && name && fieldPools[name]) return fc.constant(new PoolRef(fieldPools[name]!, index));
    if (typeof value === 'string' && name && dateHints[name]) return dateHints[name]!;
    if (typeof value === 'string' && name === 'email') return emailArb;
    if (Array.isArray(value)) return value.length === 0 ? fc.constant([]) : fc.tuple(...value.map((item) => varied(item, index, name)));
    if (value && typeof value === 'object') return fc.record(Object.fromEntries(Object.entries(value).map(([key, child]) => [key, varied(child, index, key)])));
    return fc.constant(value);
  };
  return fc.tuple(fc.constantFrom(...examples), fc.nat()).chain(([example, index]) => varied(example, index));
}
