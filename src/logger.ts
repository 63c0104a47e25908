// Pino options: JSON logs with the request id, and redaction so secrets, tokens and patient data never reach them.
import type { FastifyRequest } from 'fastify';
import type { LoggerOptions } from 'pino';

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

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: {
      // Query strings can carry identifiers; log the path only.
      req: (request: FastifyRequest) => ({
        method: request.method,
        url: request.url.split('?')[0],
        remoteAddress: request.ip,
      }),
    },
  };
}
