// PostgreSQL text cannot hold NUL characters; refuse them up front as a validation error rather than fail in SQL.
import fp from 'fastify-plugin';
import { validationFailed } from '../lib/errors.js';

const maxDepth = 32;

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
    });
  },
  { name: 'input-safety' },
);
