// Opaque keyset cursors: lists resume after the last row seen, so order stays stable and no OFFSET is scanned.
import { validationFailed } from './errors.js';
import { uuidPattern } from './vocabulary.js';

export type CursorKey = readonly (string | number)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** What each position of a cursor holds; checked so a forged cursor is a 400, never a failed SQL cast. */
export type CursorPart = 'micros' | 'digits' | 'uuid' | 'number' | 'position' | 'string';

const partIsValid: Record<CursorPart, (value: unknown) => boolean> = {
  micros: (value) => typeof value === 'string' && /^\d{1,17}$/.test(value),
  digits: (value) => typeof value === 'string' && /^\d{1,18}$/.test(value),
  uuid: (value) => typeof value === 'string' && uuidPattern.test(value),
  number: (value) => typeof value === 'number' && Number.isFinite(value),
  // A row id or sequence number: what a bigint column compares with, nothing SQL would refuse.
  position: (value) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0,
  string: (value) => typeof value === 'string' && value.length <= 1000,
};

/** Reads a cursor made by encodeCursor with the same shape, or answers 400 naming the cursor. */
export function decodeCursor(cursor: string | undefined, shape: readonly CursorPart[]): CursorKey | undefined {
  if (cursor === undefined) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  const valid =
    Array.isArray(key) && key.length === shape.length && key.every((part, index) => partIsValid[shape[index]!](part));
  if (!valid) throw validationFailed([{ field: 'query.cursor', message: 'is not a cursor this list issued' }]);
  return key as CursorKey;
}

/** The usual cursor of lists ordered by creation time, then id. */
export function decodeTimeCursor(cursor: string | undefined): [string, string] | undefined {
  return decodeCursor(cursor, ['micros', 'uuid']) as [string, string] | undefined;
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
