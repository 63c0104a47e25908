// Pino options: JSON logs with the request id, and redaction so secrets, tokens and patient data never reach them.
import type { FastifyRequest } from 'fastify';
import { stdSerializers, type LoggerOptions } from 'pino';

export const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
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

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: {
      err: serializeError,
      // Query strings can carry identifiers; log the path only.
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: request.url.split('?')[0],
        remoteAddress: request.ip,
      }),
    },
  };
}
