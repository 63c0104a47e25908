// Inputs PostgreSQL would read differently from us: NUL characters (text cannot hold them) are
// refused up front, and ids in the path are lower-cased, since the database matches a uuid in
// any case and the audit log must file every attempt on a record under one spelling of its id.
import fp from 'fastify-plugin';
import { validationFailed } from '../lib/errors.js';

const maxDepth = 32;
const uuidInAnyCase = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The dotted path of the first string (or key) holding a NUL character, if any. */
export function findNulCharacter(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object' || depth > maxDepth) return undefined;
  for (const [key, child] of Object.entries(value)) {
    const childPath = Array.isArray(value) ? `${path}[${key}]` : path ? `${path}.${key}` : key;
    if (key.includes('\u0000')) return childPath;
    const found = findNulCharacter(child, childPath, depth + 1);
    if (found) return found;
  }
  return undefined;
}

export default fp(
  async (app) => {
    app.addHook('preValidation', async (request) => {
      const field =
        findNulCharacter(request.body, '') ??
        findNulCharacter(request.query, 'query') ??
        findNulCharacter(request.params, 'params');
      if (field !== undefined) throw validationFailed([{ field: field || 'body', message: 'must not contain NUL characters' }]);
      const params = request.params as Record<string, unknown> | undefined;
      for (const [name, value] of Object.entries(params ?? {})) {
        if (typeof value === 'string' && uuidInAnyCase.test(value)) params![name] = value.toLowerCase();
      }
    });
  },
  { name: 'input-safety' },
);
