// Request validation: bodies are taken exactly as sent (no coercion, unknown fields rejected);
// query strings and params are coerced from text, since everything in a URL is text.
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { uuidPattern } from './vocabulary.js';

function createAjv(options: Options) {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    strict: false,
    ...options,
  });
  addFormats.default(ajv);
  // ajv-formats also takes a urn:uuid: prefix, which PostgreSQL's uuid type refuses.
  ajv.addFormat('uuid', uuidPattern);
  // RFC 3339 allows a leap second (23:59:60), which no JavaScript or PostgreSQL time can hold.
  const rfc3339 = ajv.formats['date-time'] as { validate: (value: string) => boolean } | ((value: string) => boolean);
  const isRfc3339 = typeof rfc3339 === 'function' ? rfc3339 : rfc3339.validate;
  // Year 0000 is valid ISO 8601 but PostgreSQL has no year zero.
  const notYearZero = (value: string) => !value.startsWith('0000');
  ajv.addFormat('date-time', { type: 'string', validate: (value: string) => isRfc3339(value) && !Number.isNaN(Date.parse(value)) && notYearZero(value) });
  const isoDate = ajv.formats.date as { validate: (value: string) => boolean } | ((value: string) => boolean);
  const isDate = typeof isoDate === 'function' ? isoDate : isoDate.validate;
  ajv.addFormat('date', { type: 'string', validate: (value: string) => isDate(value) && notYearZero(value) });
  return ajv;
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = createAjv({ coerceTypes: false });
  const coercing = createAjv({ coerceTypes: 'array' });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
