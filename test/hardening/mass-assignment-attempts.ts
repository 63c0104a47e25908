// The attempts of the mass-assignment test (mass-assignment.test.ts): for one operation, every way
// of planting the fields the server owns (together and alone, in other spellings, nested, wrapped,
// in the query string, through __proto__), and how planted values are compared with what was stored.
import type { Json } from '../helper.js';
import type { Op, Owned } from './mass-assignment-operations.js';
import type { Rec } from './mass-assignment-world.js';

/** A value as JSON would carry it, object keys sorted, so that a stored value compares with a planted one. */
export function canonical(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical((value as Rec)[key])]));
  }
  return value;
}
export const sameValue = (a: unknown, b: unknown) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

const pascal = (name: string) => name.charAt(0).toUpperCase() + name.slice(1);
const snake = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
/** Another spelling: snake_case, or upper case for a one-word name. */
export const otherSpelling = (name: string) => (snake(name) !== name ? snake(name) : name.toUpperCase());
const pathName = (path: Array<string | number>) => path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`)).join('');

export interface Attempt {
  label: string;
  /** What is planted: the field's canonical name and its value, whatever spelling carries it. */
  injected: Owned[];
  payload?: Json | string;
  /** A multipart/form-data body instead of a JSON one (mass-assignment-multipart.ts). */
  form?: { payload: Buffer; contentType: string };
  query?: string;
  /** Field names a 400 must mention, one per planted field. */
  names: string[];
  /** The top-level group: fields a 400 does not name (or all, after a success on a route that takes a body) are then sent one by one. */
  singlesAfter?: boolean;
}

/** The field alone at the top level (replacing the body fields it stands for). */
export function single(owned: Owned, base: () => Json): Attempt {
  const payload = base();
  for (const name of owned.omit ?? []) delete payload[name];
  payload[owned.field] = owned.value;
  return { label: `${owned.field} alone at the top level`, injected: [owned], payload, names: owned.legit ? [] : [owned.field] };
}

export function attemptsFor(op: Op, valid: () => Json | undefined): Attempt[] {
  const plain = op.owned.filter((owned) => !owned.omit);
  const base = () => valid() ?? {};
  const attempts: Attempt[] = [];
  // Fields the schema takes change what the request means (a 404 for a foreign organization, say):
  // each goes alone. The others go together; the run loop then sends alone any field a 400 did not
  // name, so a field the server quietly takes is never hidden behind another field's 400.
  for (const owned of op.owned.filter((owned) => owned.legit || owned.omit)) attempts.push(single(owned, base));
  const unknown = plain.filter((owned) => !owned.legit);
  const together = base();
  for (const owned of unknown) together[owned.field] = owned.value;
  attempts.push({ label: 'all at the top level', injected: unknown, payload: together, names: unknown.map((owned) => owned.field), singlesAfter: true });
  const spelled = (label: string, spell: (name: string) => string) => {
    const payload = base();
    for (const owned of plain) payload[spell(owned.field)] = owned.value;
    attempts.push({ label, injected: plain, payload, names: plain.map((owned) => spell(owned.field)) });
  };
  spelled('PascalCase', pascal);
  spelled('snake_case or UPPER CASE', otherSpelling);
  for (const path of op.nested ?? []) {
    const payload = base();
    let target: any = payload;
    for (const part of path) target = target[part];
    for (const owned of plain) target[owned.field] = owned.value;
    attempts.push({ label: `nested in ${pathName(path)}`, injected: plain, payload, names: plain.map((owned) => `${pathName(path)}.${owned.field}`) });
  }
  attempts.push({
    label: 'in an attributes wrapper',
    injected: plain,
    payload: { ...base(), attributes: Object.fromEntries(plain.map((owned) => [owned.field, owned.value])) },
    names: ['attributes'],
  });
  const query = new URLSearchParams();
  for (const owned of plain) {
    const text = typeof owned.value === 'object' ? JSON.stringify(owned.value) : String(owned.value);
    query.append(owned.field, text);
    query.append(otherSpelling(owned.field), text);
  }
  attempts.push({ label: 'in the query string', injected: plain, payload: valid(), query: query.toString(), names: [] });
  const plantedJson = JSON.stringify(Object.fromEntries(plain.map((owned) => [owned.field, owned.value])));
  // Raw text: JSON.stringify would drop a __proto__ key before it ever reached the server.
  const raw = (key: string, inner: string) => {
    const body = JSON.stringify(base()).slice(1, -1);
    return `{${body}${body ? ',' : ''}"${key}":${inner}}`;
  };
  attempts.push({ label: 'through __proto__', injected: plain, payload: raw('__proto__', plantedJson), names: [] });
  attempts.push({ label: 'through constructor.prototype', injected: plain, payload: raw('constructor', `{"prototype":${plantedJson}}`), names: [] });
  return attempts;
}
