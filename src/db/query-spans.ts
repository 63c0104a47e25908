// OpenTelemetry spans of the database work (when tracing is on, see plugins/tracing.ts): one span
// per transaction, with one per statement inside it as its children, and one per statement outside
// a transaction; all children of the request's span.
// A span carries the statement's text with its placeholders ($1, $2), never the values bound to
// them: those are patient data.
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { PendingQuery, Row, Sql } from 'postgres';
import { deferredQuery } from './deferred-query.js';

const databaseAttributes = { 'db.system.name': 'postgresql' } as const;

function ended<R>(span: Span, work: Promise<R>): Promise<R> {
  return work.then(
    (result) => {
      span.end();
      return result;
    },
    (error: unknown) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? 'error' });
      span.end();
      throw error;
    },
  );
}

type Work = (transaction: Sql) => unknown;

/** The client, with a span around each top-level statement and each transaction. */
export function tracingQueries<T extends Sql>(client: T, tracer: Tracer): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'begin') {
        const begin = Reflect.get(target, property, receiver) as (...args: unknown[]) => Promise<unknown>;
        return (...args: unknown[]) =>
          tracer.startActiveSpan('transaction', { kind: SpanKind.CLIENT, attributes: databaseAttributes }, (span) =>
            ended(span, withTracedWork(begin, target, args, tracer)),
          );
      }
      return tracingStatement(target, property, receiver, tracer);
    },
  });
}

/** Calls begin or savepoint with its options as given, and its work (the last argument) handed the transaction traced statement by statement. */
function withTracedWork(method: (...args: unknown[]) => Promise<unknown>, target: Sql, args: unknown[], tracer: Tracer): Promise<unknown> {
  const work = args.at(-1) as Work;
  return method.call(target, ...args.slice(0, -1), (transaction: Sql) => work(tracingStatements(transaction, tracer)));
}

/** A transaction (or a savepoint in it), with a span around each statement. */
function tracingStatements(transaction: Sql, tracer: Tracer): Sql {
  return new Proxy(transaction, {
    get(target, property, receiver) {
      if (property === 'savepoint') {
        const savepoint = Reflect.get(target, property, receiver) as (...args: unknown[]) => Promise<unknown>;
        return (...args: unknown[]) => withTracedWork(savepoint, target, args, tracer);
      }
      return tracingStatement(target, property, receiver, tracer);
    },
  });
}

/** `unsafe`, the way drizzle sends every statement, spanned; anything else as it is. */
function tracingStatement(target: Sql, property: string | symbol, receiver: unknown, tracer: Tracer): unknown {
  if (property === 'unsafe') {
    return (...args: Parameters<Sql['unsafe']>) => spannedQuery(() => target.unsafe(...args), args[0], tracer);
  }
  return Reflect.get(target, property, receiver) as unknown;
}

function spannedQuery(start: () => PendingQuery<Row[]>, text: string, tracer: Tracer) {
  const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'QUERY';
  return deferredQuery((asValues) =>
    tracer.startActiveSpan(
      operation,
      { kind: SpanKind.CLIENT, attributes: { ...databaseAttributes, 'db.operation.name': operation, 'db.query.text': text } },
      (span) => ended(span, Promise.resolve(asValues ? start().values() : start())),
    ),
  );
}
