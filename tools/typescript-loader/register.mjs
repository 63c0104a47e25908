// Loads the project's TypeScript in a test process: `node --import ./tools/typescript-loader/register.mjs`
// (the tap config in package.json passes it). See hooks.mjs for why this is not tsx or ts-node.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
