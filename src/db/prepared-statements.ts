// Drizzle's postgres.js driver asks for an unnamed statement unless a query is built with
// .prepare(name), and postgres.js then spends a Parse/Describe round trip on every call before
// Bind/Execute. Preparing every parameterised statement once per connection (postgres.js keeps
// them keyed by text and parameter types) halves the round trips of the service's queries.
import type { Sql } from 'postgres';

type Unsafe = Sql['unsafe'];

// A statement with more parameters than this is a multi-row VALUES list whose text changes with its
// row count: preparing each variant would grow every connection's statement cache without bound.
const maxPreparedParameters = 64;

/** The client, with every parameterised query prepared, also inside transactions and savepoints. */
export function preparingAll<T extends Sql>(client: T): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'unsafe') {
        return ((query, parameters, options) =>
          target.unsafe(query, parameters, { ...options, prepare: (parameters?.length ?? 0) <= maxPreparedParameters })) as Unsafe;
      }
      if (property === 'begin' || property === 'savepoint') {
        return (...args: unknown[]) => {
          const work = args.pop() as (transaction: Sql) => unknown;
          const original = Reflect.get(target, property, receiver) as (...all: unknown[]) => unknown;
          return original.call(target, ...args, (transaction: Sql) => work(preparingAll(transaction)));
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}
