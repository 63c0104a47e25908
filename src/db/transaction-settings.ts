// Settings a transaction pooler cannot carry from one transaction to the next, set in each transaction.
import type { Sql } from 'postgres';

/**
 * The client, with `statement_timeout` set at the start of every transaction. Behind a transaction
 * pooler (PgBouncer) a setting sent at connect would reach whichever server connection the pooler
 * picked; `set local` lasts exactly as long as the transaction the pooler hands over whole. Sent
 * before the transaction's first statement without waiting for it: pipelined, no round trip of its own.
 */
export function limitingEachTransaction<T extends Sql>(client: T, statementMs: number): T {
  const setting = `set local statement_timeout = ${Math.trunc(statementMs)}`;
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property !== 'begin') return Reflect.get(target, property, receiver) as unknown;
      return (...args: unknown[]) => {
        const work = args.pop() as (transaction: Sql) => unknown;
        const begin = Reflect.get(target, property, receiver) as (...all: unknown[]) => unknown;
        return begin.call(target, ...args, async (transaction: Sql) => {
          const limiting = transaction.unsafe(setting);
          // Starts it now, ahead of the work's statements; its failure, if any, is awaited below.
          limiting.catch(() => undefined);
          const result = await work(transaction);
          await limiting;
          return result;
        });
      };
    },
  });
}
