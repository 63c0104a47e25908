// The OpenAPI document passes Redocly's recommended rules and ours (redocly.yaml) with no finding,
// warnings included: a generated client or a partner's linter sees what this one sees.
import t from 'tap';
import { describeProblem, lintOpenApiDocument } from '../tools/openapi/lint.js';

if (process.env.TEST_DATABASE_URL) {
  t.plan(0, 'the document does not depend on the database: linted once, in the embedded suite');
} else {
  t.test('openapi/openapi.json lints clean (npm run openapi:lint shows each finding)', async (t) => {
    const problems = await lintOpenApiDocument();
    t.same(problems.map(describeProblem), [], 'no errors and no warnings');
  });
}
