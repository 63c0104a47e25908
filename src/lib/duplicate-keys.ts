// JSON.parse keeps the last of a repeated member name, and other readers of the same body (a
// gateway, a partner's audit copy) may keep the first: one request, two meanings. RFC 8259 leaves
// the result undefined and I-JSON (RFC 7493) forbids it, so the API refuses such a body.
import { visit, type JSONPath } from 'jsonc-parser';

function dotted(path: JSONPath): string {
  return path.reduce<string>((text, segment) => (typeof segment === 'number' ? `${text}[${segment}]` : text ? `${text}.${segment}` : segment), '');
}

/** Where the first member name repeated within one object is, as a dotted path; undefined when none is. */
export function firstDuplicateKey(json: string): string | undefined {
  const namesByObject: Array<Set<string>> = [];
  let duplicate: string | undefined;
  visit(json, {
    onObjectBegin: () => {
      namesByObject.push(new Set());
    },
    onObjectEnd: () => {
      namesByObject.pop();
    },
    onObjectProperty: (name, _offset, _length, _line, _character, pathSupplier) => {
      const names = namesByObject.at(-1);
      if (!names || duplicate !== undefined) return;
      if (names.has(name)) duplicate = dotted([...pathSupplier(), name]);
      names.add(name);
    },
  });
  return duplicate;
}
