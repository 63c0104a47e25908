// The typed client's types (clients/typescript/src/schema.d.ts), generated from the OpenAPI
// document: npm run openapi:write writes them, test/client-generated.test.ts fails when they drift.
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';

export const clientTypesPath = fileURLToPath(new URL('../../clients/typescript/src/schema.d.ts', import.meta.url));

const header = `/**
 * Generated from openapi/openapi.json by openapi-typescript (npm run openapi:write).
 * Do not edit: test/client-generated.test.ts fails when this file differs from a fresh generation.
 */

`;

/** schema.d.ts for the document (its JSON text): paths, components, webhooks, and every schema by name (Referral, FeedEvent, …). */
export async function renderClientTypes(document: string): Promise<string> {
  const ast = await openapiTS(JSON.parse(document) as OpenAPI3, {
    rootTypes: true,
    rootTypesNoSchemaPrefix: true,
    // Only request bodies have defaults (final, send, priority, …): they stay optional to send.
    // openapi-typescript's default would make every defaulted member required.
    defaultNonNullable: false,
  });
  return header + astToString(ast);
}
