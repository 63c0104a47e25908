// Keyset pagination on time columns: microseconds since the epoch, exact in both directions
// (JavaScript dates keep only milliseconds, which would skip or repeat rows at page edges).
import { sql, type SQL, type AnyColumn } from 'drizzle-orm';

export function epochMicros(column: AnyColumn): SQL<string> {
  return sql<string>`(extract(epoch from ${column}) * 1000000)::bigint::text`;
}

export function afterKey(timeColumn: AnyColumn, idColumn: AnyColumn, key: readonly [string, string]): SQL {
  return sql`(${timeColumn}, ${idColumn}) > (timestamptz 'epoch' + ${key[0]}::bigint * interval '1 microsecond', ${key[1]}::uuid)`;
}
