// The service's build, for `npm run build` (so `npm start` and the Dockerfile) and for the tests that
// start the service as a process: esbuild compiles src/ file by file, and copies beside it the files
// the service reads at run time. One list of those, so a new kind is added once.
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** TypeScript to compile, then what is read at run time: migrations, FHIR definitions, OpenAPI examples. */
const inputs = ['src/**/*.ts', 'src/db/migrations/**/*', 'src/modules/fhir/definitions/*.json', 'src/openapi-examples/*.json'];

/** Builds the service into `outdir` (the layout of src/, as dist/src). */
export async function buildService(outdir: string): Promise<void> {
  await build({
    entryPoints: inputs.map((input) => join(projectRoot, input)),
    outdir,
    outbase: join(projectRoot, 'src'),
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    loader: { '.sql': 'copy', '.json': 'copy' },
    logLevel: 'warning',
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await buildService(join(projectRoot, 'dist/src'));
