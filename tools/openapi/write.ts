// npm run openapi:write — regenerates openapi/openapi.json and what is written from it (the typed
// client's schema.d.ts, the README's webhook catalog); tests fail when a committed copy drifts.
import { readFile, writeFile } from 'node:fs/promises';
import { clientTypesPath, renderClientTypes } from './client-types.js';
import { withWebhookCatalog } from './readme-catalog.js';
import { generateOpenApiDocument } from '../../src/openapi-document.js';

const target = new URL('../../openapi/openapi.json', import.meta.url);
const document = await generateOpenApiDocument();
await writeFile(target, document);
process.stdout.write(`wrote ${target.pathname}\n`);

await writeFile(clientTypesPath, await renderClientTypes(document));
process.stdout.write(`wrote ${clientTypesPath}\n`);

const readme = new URL('../../README.md', import.meta.url);
await writeFile(readme, withWebhookCatalog(await readFile(readme, 'utf8'), JSON.parse(document)));
process.stdout.write(`wrote the webhook catalog of ${readme.pathname}\n`);
