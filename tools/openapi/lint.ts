// npm run openapi:lint — lints openapi/openapi.json with Redocly's recommended rules and ours
// (redocly.yaml); test/openapi-lint.test.ts holds CI to no finding at all.
import { fileURLToPath } from 'node:url';
import { formatProblems, getTotals, lint, loadConfig, type NormalizedProblem } from '@redocly/openapi-core';

const root = new URL('../../', import.meta.url);
export const documentPath = fileURLToPath(new URL('openapi/openapi.json', root));

export async function lintOpenApiDocument(): Promise<NormalizedProblem[]> {
  const config = await loadConfig({ configPath: fileURLToPath(new URL('redocly.yaml', root)) });
  return lint({ ref: documentPath, config });
}

/** One line per finding, for a test's diagnostics: rule, where, what. */
export const describeProblem = (problem: NormalizedProblem) =>
  `${problem.severity} ${problem.ruleId} ${problem.location[0]?.pointer ?? ''}: ${problem.message}`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = await lintOpenApiDocument();
  formatProblems(problems, { format: 'stylish', totals: getTotals(problems), version: 'openapi-core' });
  process.stdout.write(problems.length === 0 ? `${documentPath}: no findings\n` : '');
  process.exitCode = problems.length === 0 ? 0 : 1;
}
