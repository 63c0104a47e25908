// The security suite's most expensive files (the authorization matrices, the property test, the
// fuzzer, mass assignment, response exposure) run on PostgreSQL only: in CI (.ci/run) and with
// `npm run test:hardening`. What they test is the API's own logic, and the embedded database is
// the same PostgreSQL engine; run on it too, they would push CI past its time budget. The rest of
// the suite, the other hardening files included, runs on both databases.
import t from 'tap';

/** Ends the file as skipped, with the reason, unless the suite runs against a PostgreSQL server. */
export function skipFileUnlessPostgres(): void {
  if (process.env.TEST_DATABASE_URL) return;
  t.plan(0, 'PostgreSQL only: set TEST_DATABASE_URL, or run npm run test:hardening');
  process.exit(0);
}
