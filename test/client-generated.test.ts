// The typed client's schema.d.ts is what openapi-typescript makes of the committed OpenAPI document:
// a contract change that was not regenerated into the client fails here (and a change that breaks
// the client or the example fails the type check).
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { clientTypesPath, renderClientTypes } from '../tools/openapi/client-types.js';

if (process.env.TEST_DATABASE_URL) {
  t.plan(0, 'the document does not depend on the database: checked once, in the embedded suite');
} else {
  t.test('clients/typescript/src/schema.d.ts is generated from openapi/openapi.json as committed', async (t) => {
    const document = await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8');
    const committed = await readFile(clientTypesPath, 'utf8');
    const generated = await renderClientTypes(document);
    // Not t.equal: that would print both megabyte-long files. The first line that differs says enough.
    const line = firstDifference(committed.split('\n'), generated.split('\n'));
    t.ok(line === undefined, line === undefined ? 'up to date' : `stale from line ${line.number} (run npm run openapi:write):\n  committed: ${line.committed}\n  generated: ${line.generated}`);
    t.match(generated, /^export type Referral = components\['schemas'\]\['Referral'\];$/m, 'schemas are exported by name');
  });
}

function firstDifference(committed: string[], generated: string[]) {
  for (let index = 0; index < Math.max(committed.length, generated.length); index++) {
    if (committed[index] !== generated[index]) {
      return { number: index + 1, committed: committed[index] ?? '(end of file)', generated: generated[index] ?? '(end of file)' };
    }
  }
  return undefined;
}
