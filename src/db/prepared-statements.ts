// Drizzle's postgres.js driver asks for an unnamed statement unless a query is built with
// .prepare(name), and postgres.js then spends a Parse/Describe round trip on every call before
// Bind/Execute. Preparing every parameterised statement once per connection (postgres.js keeps
// them keyed by text and parameter types) halves the round trips of the service's queries.
import type { Sql } from 'postgres';

type Unsafe = Sql['unsafe'];

/** The client, with every parameterised query prepared, also inside transactions and savepoints. */
export function preparingAll<T extends Sql>(client: T): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'unsafe') {
        return ((query, parameters, options) => target.unsafe(query, parameters, { ...options, prepare: true })) as Unsafe;
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
