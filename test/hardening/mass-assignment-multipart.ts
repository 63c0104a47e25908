// The mass-assignment attempts of an operation that takes multipart/form-data (a document upload,
// SPEC §14.6) instead of JSON: the same fields the server owns, planted the ways a form can carry
// them. A form has no nesting, so instead of nested objects there are parts: each field as a part of
// its own (together, then alone wherever a 400 does not name one), in other spellings, as JSON in
// one part, in the query string, through a part named __proto__ or constructor, declared as the file
// part's own Content-Type, and the whole body sent as JSON, which the route does not take (415).
import type { Part } from '../fixtures/documents.js';
import { multipartBody } from '../fixtures/documents.js';
import type { Attempt } from './mass-assignment-attempts.js';
import { otherSpelling } from './mass-assignment-attempts.js';
import type { Op, Owned } from './mass-assignment-operations.js';

const pascal = (name: string) => name.charAt(0).toUpperCase() + name.slice(1);
/** A planted value as a form part carries it: text, an object as its JSON. */
const asText = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));
const isFile = (part: Part) => 'data' in part;

/** The valid parts with these extra ones before the file (so a refusal stores nothing) or after it (so a refusal discards what was stored). */
function form(valid: Part[], extra: Part[], where: 'before the file' | 'after the file') {
  const fields = valid.filter((part) => !isFile(part));
  const files = valid.filter(isFile);
  return multipartBody(where === 'before the file' ? [...fields, ...extra, ...files] : [...fields, ...files, ...extra]);
}

/** The field alone, as a part of its own, beside the valid parts. */
export function multipartSingle(owned: Owned, valid: () => Part[]): Attempt {
  return {
    label: `${owned.field} alone as a form part`,
    injected: [owned],
    form: form(valid(), [{ name: owned.field, value: asText(owned.value) }], 'before the file'),
    names: owned.legit ? [] : [owned.field],
  };
}

/**
 * The attempts of a multipart operation. `declared` are fields the file part itself may claim, by
 * the Content-Type header it is sent with (the server tells the type from the bytes, SPEC §14.6).
 */
export function multipartAttemptsFor(op: Op, valid: () => Part[], declared: { contentType?: Owned } = {}): Attempt[] {
  const plain = op.owned.filter((owned) => !owned.omit && !owned.legit);
  const parts = (spell: (name: string) => string = (name) => name) => plain.map((owned): Part => ({ name: spell(owned.field), value: asText(owned.value) }));
  const attempts: Attempt[] = [];
  // The parser meets one unknown part at a time (and more than three fields is refused as a whole),
  // so a 400 names the first only: the run loop then sends alone every field it did not name.
  attempts.push({ label: 'all as form parts, before the file', injected: plain, form: form(valid(), parts(), 'before the file'), names: [], singlesAfter: true });
  attempts.push({ label: 'all as form parts, after the file', injected: plain, form: form(valid(), parts(), 'after the file'), names: [] });
  attempts.push({ label: 'PascalCase form parts', injected: plain, form: form(valid(), parts(pascal), 'before the file'), names: [] });
  attempts.push({ label: 'snake_case or UPPER CASE form parts', injected: plain, form: form(valid(), parts(otherSpelling), 'before the file'), names: [] });
  const plantedJson = JSON.stringify(Object.fromEntries(plain.map((owned) => [owned.field, owned.value])));
  attempts.push({ label: 'as JSON in an attributes part', injected: plain, form: form(valid(), [{ name: 'attributes', value: plantedJson }], 'before the file'), names: ['attributes'] });
  attempts.push({ label: 'through a __proto__ part', injected: plain, form: form(valid(), [{ name: '__proto__', value: plantedJson }], 'before the file'), names: [] });
  attempts.push({ label: 'through a constructor part', injected: plain, form: form(valid(), [{ name: 'constructor', value: `{"prototype":${plantedJson}}` }], 'before the file'), names: [] });
  const query = new URLSearchParams();
  for (const owned of plain) {
    query.append(owned.field, asText(owned.value));
    query.append(otherSpelling(owned.field), asText(owned.value));
  }
  attempts.push({ label: 'in the query string', injected: plain, form: form(valid(), [], 'before the file'), query: query.toString(), names: [] });
  if (declared.contentType) {
    const type = String(declared.contentType.value);
    const withDeclaredType = valid().map((part): Part => (isFile(part) ? { ...part, contentType: type, filename: `planted.${type.split('/')[1]}` } : part));
    attempts.push({ label: `declared as the file part's Content-Type (${type})`, injected: [declared.contentType], form: multipartBody(withDeclaredType), names: [] });
  }
  // The body as JSON, the valid fields with the planted ones: the route takes only multipart/form-data.
  const json: Record<string, unknown> = Object.fromEntries(valid().map((part) => [part.name, isFile(part) ? (part as { data: Buffer }).data.toString('base64') : (part as { value: string }).value]));
  for (const owned of plain) json[owned.field] = owned.value;
  attempts.push({ label: 'as a JSON body', injected: plain.map((owned) => ({ ...owned, statuses: [...(owned.statuses ?? []), 415] })), payload: json as never, names: [] });
  return attempts;
}
