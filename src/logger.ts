// Pino options: JSON logs with the request id, and redaction so secrets, tokens and patient data never reach them.
import type { FastifyRequest } from 'fastify';
import { pino, stdSerializers, type Logger, type LoggerOptions } from 'pino';
import { uuidPattern as uuid } from './lib/vocabulary.js';

export const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  // @fastify/multipart logs the options it gives busboy at trace level, the raw request headers
  // (the bearer token, cookies) among them.
  'busboyOptions.headers',
  'res.headers["set-cookie"]',
  '*.password',
  '*.client_secret',
  '*.clientSecret',
  '*.secret',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.givenName',
  '*.familyName',
  '*.birthDate',
  '*.phone',
  '*.email',
  '*.identifiers',
];

interface DatabaseErrorShape {
  code?: string;
  constraint?: string;
  constraint_name?: string;
  routine?: string;
}

/**
 * Database errors carry the statement's parameters (drizzle puts them in the message) and sometimes
 * values in the driver's message: log the SQL text, the SQLSTATE and the constraint, never values.
 */
export function serializeError(error: Error & { query?: string; params?: unknown; cause?: unknown }) {
  if (typeof error.query === 'string' && 'params' in error) {
    const cause = (error.cause ?? {}) as Error & DatabaseErrorShape;
    return {
      type: error.constructor.name,
      message: 'database query failed',
      query: error.query,
      cause: { type: cause.constructor?.name, code: cause.code, constraint: cause.constraint ?? cause.constraint_name, routine: cause.routine },
    };
  }
  const database = error as Error & DatabaseErrorShape;
  if (/^[0-9A-Z]{5}$/.test(database.code ?? '') && database.routine !== undefined) {
    return { type: error.constructor.name, message: 'database error', code: database.code, routine: database.routine };
  }
  return stdSerializers.err(error);
}

const routeWord = /^(v1|[a-z]+(-[a-z]+)*)$/;

/**
 * The request's path as far as it is safe to log: query strings can carry identifiers and a path
 * segment can carry anything a client typed (a patient's name where an id belongs). A matched
 * route logs its pattern with the ids filled in; any other path keeps only route-like words and ids.
 */
export function loggableUrl(request: Pick<FastifyRequest, 'url' | 'params'> & { routeOptions?: { url?: string | undefined } }): string {
  const pattern = request.routeOptions?.url;
  if (pattern) {
    const params = (request.params ?? {}) as Record<string, unknown>;
    return pattern.replace(/:([A-Za-z]+)/g, (placeholder, name: string) => {
      const value = params[name];
      return typeof value === 'string' && uuid.test(value) ? value : placeholder;
    });
  }
  const path = request.url.split('?')[0] ?? '';
  return path
    .split('/')
    .map((segment) => (segment === '' || routeWord.test(segment) || uuid.test(segment) ? segment : '*'))
    .join('/');
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: {
      err: serializeError,
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: loggableUrl(request),
        remoteAddress: request.ip,
      }),
    },
  };
}

/**
 * The process's logger: JSON lines for machines (log shippers, production), or pino-pretty's
 * coloured lines for someone reading a terminal. Both get the same redacted records: pino redacts
 * before it writes, and pino-pretty only reformats what it is given. pino-pretty is loaded only
 * when used.
 */
export async function createLogger({ logLevel, logFormat }: { logLevel: string; logFormat: 'json' | 'pretty' }): Promise<Logger> {
  if (logFormat === 'json') return pino(loggerOptions(logLevel));
  const { default: pretty } = await import('pino-pretty');
  return pino(loggerOptions(logLevel), pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
}
