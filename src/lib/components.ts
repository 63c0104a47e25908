// Names a schema for the OpenAPI document: a schema passed through component() is emitted once under
// components.schemas and referred to by $ref wherever a route uses it (plugins/openapi-components.ts).
// Fastify validates and serializes the same schema inline, so a name changes nothing on the wire.
import type { TSchema } from 'typebox';

/** The keyword carrying the name; it never reaches the document. */
export const componentKeyword = 'x-component';
/** What a generated client turns into a type name: PascalCase, letters and digits. */
const componentName = /^[A-Z][A-Za-z0-9]+$/;

export function component<T extends TSchema>(name: string, schema: T): T {
  if (!componentName.test(name)) throw new Error(`Component name ${name} is not PascalCase letters and digits`);
  return { ...schema, [componentKeyword]: name };
}
