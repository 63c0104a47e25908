// Opaque keyset cursors: lists resume after the last row seen, so order stays stable and no OFFSET is scanned.
import { validationFailed } from './errors.js';

export type CursorKey = readonly (string | number)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** Reads a cursor made by encodeCursor with the same shape, or answers 400 naming the cursor. */
export function decodeCursor(cursor: string | undefined, shape: readonly ('string' | 'number')[]): CursorKey | undefined {
  if (cursor === undefined) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  const valid =
    Array.isArray(key) && key.length === shape.length && key.every((part, index) => typeof part === shape[index]);
  if (!valid) throw validationFailed([{ field: 'query.cursor', message: 'is not a cursor this list issued' }]);
  return key as CursorKey;
}

/** Given up to limit + 1 rows, returns one page and the cursor of the next, if any. */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  keyOf: (row: Row) => CursorKey,
  toItem: (row: Row) => Item,
): { data: Item[]; nextCursor: string | null } {
  const pageRows = rows.slice(0, limit);
  const last = pageRows.at(-1);
  return {
    data: pageRows.map(toItem),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}
