// Inputs refused before validation, because they are attacks or would be stored other than sent:
// - text PostgreSQL cannot hold (NUL) or would alter (an unpaired surrogate becomes U+FFFD; the
//   embedded database drops a leading byte order mark);
// - bidirectional controls, which make a name or note display other than it reads (Trojan Source);
// - shapes no request of this API has, which would cost a lot to validate or hash: nesting deeper
//   than 32, arrays over 1,000 items (the largest any schema takes is 30), objects over 1,000
//   fields, more than 100 query parameters;
// - a JSON member name repeated within one object (see lib/duplicate-keys.ts).
// Ids in the path are lower-cased, since the database matches a uuid in any case and the audit
// log must file every attempt on a record under one spelling of its id.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { firstDuplicateKey } from '../lib/duplicate-keys.js';
import { validationFailed } from '../lib/errors.js';
import { uuidPattern } from '../lib/vocabulary.js';

const maxDepth = 32;
const maxArrayItems = 1000;
const maxObjectFields = 1000;
const maxQueryParameters = 100;
// U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates, U+FEFF byte order mark.
const refusedCharacters = /[\u0000\u202A-\u202E\u2066-\u2069\uFEFF]/;
// In a /u pattern a well-formed pair is one code point, so only an unpaired half is a surrogate.
const unpairedSurrogate = /\p{Surrogate}/u;

function textProblem(text: string): string | undefined {
  if (unpairedSurrogate.test(text)) return 'must not contain unpaired surrogate characters';
  const refused = refusedCharacters.exec(text)?.[0];
  if (refused === undefined) return undefined;
  if (refused === '\u0000') return 'must not contain NUL characters';
  if (refused === '\uFEFF') return 'must not contain a byte order mark (U+FEFF)';
  return 'must not contain bidirectional control characters';
}

/** The first problem in a parsed value, with the dotted path where it is. */
export function findInputProblem(value: unknown, path: string, depth = 0): { field: string; message: string } | undefined {
  if (typeof value === 'string') {
    const message = textProblem(value);
    return message ? { field: path, message } : undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (depth >= maxDepth) return { field: path, message: `is nested too deeply (at most ${maxDepth} levels)` };
  if (Array.isArray(value)) {
    if (value.length > maxArrayItems) return { field: path, message: `has too many items (at most ${maxArrayItems})` };
  } else if (Object.keys(value).length > maxObjectFields) {
    return { field: path, message: `has too many fields (at most ${maxObjectFields})` };
  }
  for (const [key, child] of Object.entries(value)) {
    const childPath = Array.isArray(value) ? `${path}[${key}]` : path ? `${path}.${key}` : key;
    const keyMessage = textProblem(key);
    if (keyMessage) return { field: childPath, message: keyMessage };
    const found = findInputProblem(child, childPath, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * The JSON body parser of every JSON media type the API takes (application/json, the FHIR façade's
 * application/fhir+json): Fastify's own parser (prototype-poisoning checks included) reads the body;
 * only a body it accepts is scanned again for a repeated name.
 */
export function safeJsonParser(app: FastifyInstance) {
  const parseJson = app.getDefaultJsonParser('error', 'ignore');
  return (request: FastifyRequest, body: string | Buffer, done: (error: Error | null, parsed?: unknown) => void) => {
    parseJson(request, body as string, (error, parsed) => {
      if (error) return done(error, undefined);
      const duplicate = firstDuplicateKey(body as string);
      if (duplicate !== undefined) return done(validationFailed([{ field: duplicate, message: 'appears more than once in the object; send each field once' }]), undefined);
      done(null, parsed);
    });
  };
}

export default fp(
  async (app) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, safeJsonParser(app));

    app.addHook('preValidation', async (request) => {
      const query = request.query as Record<string, unknown> | undefined;
      if (query && Object.keys(query).length > maxQueryParameters) {
        throw validationFailed([{ field: 'query', message: `has too many parameters (at most ${maxQueryParameters})` }]);
      }
      const problem =
        findInputProblem(request.body, '') ??
        findInputProblem(request.query, 'query') ??
        findInputProblem(request.params, 'params');
      if (problem !== undefined) throw validationFailed([{ field: problem.field || 'body', message: problem.message }]);
      const params = request.params as Record<string, unknown> | undefined;
      for (const [name, value] of Object.entries(params ?? {})) {
        if (typeof value === 'string' && uuidPattern.test(value)) params![name] = value.toLowerCase();
      }
    });
  },
  { name: 'input-safety' },
);
