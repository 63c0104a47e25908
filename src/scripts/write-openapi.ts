// npm run openapi:write — regenerates openapi/openapi.json; a test fails when the committed file drifts.
import { writeFile } from 'node:fs/promises';
import { generateOpenApiDocument } from '../openapi-document.js';

const target = new URL('../../openapi/openapi.json', import.meta.url);
await writeFile(target, await generateOpenApiDocument());
process.stdout.write(`wrote ${target.pathname}\n`);
