// Module hooks that compile the project's .ts files with esbuild, for the tests.
//
// Why not the usual loaders: ts-node (tap's default) costs about 4 s of CPU per test process, as
// it loads the TypeScript compiler and transpiles every file with it; tsx writes each file's
// output on one line, which V8 coverage cannot map back to lines (untested functions show as
// covered). esbuild's plain output keeps the coverage exact. Outputs are cached on disk, keyed by
// file, source, esbuild version and options, so later test processes skip esbuild.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transform, version } from 'esbuild';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
const cacheDir = join(projectRoot, 'node_modules/.cache/typescript-loader');
const options = {
  loader: 'ts',
  format: 'esm',
  target: `node${process.versions.node}`,
  // The compiler options that change emitted code (class fields, kept imports) are the ones the
  // type check uses.
  tsconfigRaw: readFileSync(join(projectRoot, 'tsconfig.json'), 'utf8'),
  sourcemap: 'inline',
  sourcesContent: true,
};
const optionsKey = JSON.stringify({ ...options, version });

const typeScriptPath = (url) => {
  if (!url?.startsWith('file:')) return undefined;
  const file = new URL(url);
  file.search = '';
  return file.pathname.endsWith('.ts') ? fileURLToPath(file) : undefined;
};

/** In TypeScript source (NodeNext), a relative `./x.js` names `./x.ts`. */
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !typeScriptPath(context.parentURL) || !/^\.\.?\/.*\.js$/.test(specifier)) throw error;
    return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
  }
}

export async function load(url, context, nextLoad) {
  const path = typeScriptPath(url);
  if (!path) return nextLoad(url, context);
  // The source still comes through the rest of the chain (tap's coverage and mock hooks).
  const loaded = await nextLoad(url, { ...context, format: 'module' });
  return { ...loaded, format: 'module', source: await compiled(path, String(loaded.source)) };
}

async function compiled(path, source) {
  const key = createHash('sha256').update(optionsKey).update('\0').update(path).update('\0').update(source).digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  try {
    return readFileSync(cached, 'utf8');
  } catch {
    const { code } = await transform(source, { ...options, sourcefile: path });
    // Written aside and renamed, so a test process starting alongside never reads half a file.
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${cached}.${process.pid}.partial`;
    writeFileSync(partial, code);
    renameSync(partial, cached);
    return code;
  }
}
