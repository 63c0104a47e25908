// Hardening item 4: fields the server owns (ids, status, version, organization, owner, acceptance,
// timestamps, role, secrets) are never taken from a request. Every POST and PATCH of the OpenAPI
// document gets a valid body plus such fields: at the top level (together, then alone wherever a
// 400 does not name one), in other casings, inside the body's nested objects, in a wrapper, in the
// query string and through __proto__ (a multipart/form-data body, the document upload, gets them
// as form parts and in the file part's own headers: mass-assignment-multipart.ts). Either answer
// is fine (a 400 that names the field, or success with the field ignored), but in both cases the
// rows the request could touch are read back from the database, and the resource through its GET:
// no row created or changed by the attempt, and nothing the API shows, may hold a value we sent.
//
// Under /fhir/R4 (mass-assignment-fhir-operations.ts) the body is a FHIR resource sent as
// application/fhir+json, a refusal is an OperationOutcome, and a 400 names an element by its path.
//
// The cases are in mass-assignment-*-operations.ts, the world they act in in
// mass-assignment-world.ts, the ways of planting a field in mass-assignment-attempts.ts.
import t, { type Test } from 'tap';
import { buildTestApp, type Json } from '../helper.js';
import { recordFigure } from './figures.js';
import { attemptsFor, canonical, sameValue, single, type Attempt } from './mass-assignment-attempts.js';
import { careOperations } from './mass-assignment-care-operations.js';
import { clinicalOperations } from './mass-assignment-clinical-operations.js';
import { multipartAttemptsFor, multipartSingle } from './mass-assignment-multipart.js';
import { accountOperations, type Ctx, type Op, type Owned } from './mass-assignment-operations.js';
import { fhirOperations } from './mass-assignment-fhir-operations.js';
import { referralOperations } from './mass-assignment-referral-operations.js';
import { webhookOperations } from './mass-assignment-webhook-operations.js';
import { buildMassAssignmentWorld, type Rec } from './mass-assignment-world.js';
import { skipFileUnlessPostgres } from './postgres-only.js';

skipFileUnlessPostgres();

// The worker stays off: nothing is delivered anywhere, and pending deliveries stay as written.
const test = await buildTestApp(t, { env: { ROLE: 'api', REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const world = await buildMassAssignmentWorld(test);
const ops: Op[] = [...accountOperations(world), ...referralOperations(world), ...(await clinicalOperations(world)), ...careOperations(world), ...webhookOperations(world), ...(await fhirOperations(world))];

// ---------------------------------------------------------------------------------------------
// Attempts.


/**
 * The fields an OperationOutcome's issues name, as the attempts plant them: each issue's element path
 * (expression, or the head of details.text, "ServiceRequest.identifier: is not kept …") without the
 * resource type, so that `ServiceRequest.identifier` is the planted `identifier`.
 */
function outcomeFields(outcome: Json, resourceType: string): string[] {
  const prefix = `${resourceType}.`;
  return ((outcome.issue ?? []) as Json[])
    .flatMap((issue) => [...(issue.expression ?? []), ...(typeof issue.details?.text === 'string' ? [issue.details.text.split(':')[0]] : [])])
    .filter((path: string) => path.startsWith(prefix))
    .map((path: string) => path.slice(prefix.length));
}

const tally = { injected: 0, persisted: 0, requests: 0, ops: 0, serverErrors: 0 };
const persistedFindings: string[] = [];

/** Runs one attempt; `before` is the state the previous attempt left, when nothing ran since. */
async function run(t: Test, op: Op, ctx: Ctx, attempt: Attempt, previous?: Rec[]): Promise<{ succeeded: boolean; after: Rec[]; named: Set<string> }> {
  const before = previous ?? (await ctx.rows());
  const response = await test.request({
    method: op.method,
    url: attempt.query ? `${ctx.url}?${attempt.query}` : ctx.url,
    ...(ctx.token ? { token: ctx.token } : {}),
    ...(attempt.form
      ? { payload: attempt.form.payload, headers: { 'content-type': attempt.form.contentType } }
      : op.fhir
        ? {
            payload: typeof attempt.payload === 'string' ? attempt.payload : JSON.stringify(attempt.payload ?? {}),
            headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
          }
        : attempt.payload !== undefined
          ? { payload: attempt.payload as never, headers: { 'content-type': 'application/json' } }
          : {}),
  });
  tally.requests++;
  tally.injected += attempt.injected.length;
  const status = response.statusCode;
  const succeeded = status >= 200 && status < 300;
  const label = `${attempt.label}: ${status}`;

  if (status >= 500) tally.serverErrors++;
  t.ok(status < 500, `${label}: no server error`);
  const allowed = new Set([400, ...attempt.injected.flatMap((owned) => owned.statuses ?? [])]);
  t.ok(succeeded || allowed.has(status), `${label}: refused with 400 or taken with the field ignored (${response.body.slice(0, 160)})`);
  if (!succeeded && op.fhir) {
    t.match(response.headers['content-type'], /^application\/fhir\+json/, `${attempt.label}: application/fhir+json`);
    t.equal(response.json().resourceType, 'OperationOutcome', `${attempt.label}: an OperationOutcome`);
  } else if (!succeeded) {
    t.match(response.headers['content-type'], /^application\/problem\+json/, `${attempt.label}: problem+json`);
  }
  const named = new Set<string>(status !== 400 ? [] : op.fhir ? outcomeFields(response.json(), op.fhir.resourceType) : (response.json().errors ?? []).map((problem: Json) => problem.field));
  if (status === 400 && attempt.names.length > 0) {
    const unnamed = attempt.names.filter((name) => !named.has(name));
    t.same(unnamed, [], `${attempt.label}: the 400 names every planted field`);
  }

  const after = await ctx.rows();
  const beforeByKey = new Map(before.map((row) => [row.__key, JSON.stringify(canonical(row))]));
  const touched = after.filter((row) => beforeByKey.get(row.__key) !== JSON.stringify(canonical(row)));
  const gone = before.filter((row) => !after.some((other) => other.__key === row.__key));
  t.same(gone.map((row) => row.__key), [], `${attempt.label}: no row disappeared`);
  if (!succeeded) {
    t.same(touched.map((row) => row.__key), [], `${attempt.label}: refused, so nothing was created or changed`);
  } else if (op.creates) {
    t.ok(touched.length > 0, `${attempt.label}: the resource was created`);
  }

  const injected: Rec = Object.fromEntries(attempt.injected.map((owned) => [owned.field, owned.value]));
  // After a refusal the rows are unchanged: the API can only add a record found under a planted id.
  const shown = succeeded || 'id' in injected ? await ctx.api(response, injected) : [];
  const checks = (owned: Owned): Array<[string, unknown]> => [
    ...(owned.columns ?? [owned.field]).map((column): [string, unknown] => [column, owned.value]),
    ...Object.entries(owned.also ?? {}),
  ];
  const persisted = attempt.injected.filter((owned) =>
    [...touched, ...shown].some((record) => checks(owned).some(([column, value]) => column in record && sameValue(record[column], value))),
  );
  tally.persisted += persisted.length;
  for (const owned of persisted) persistedFindings.push(`${op.method} ${op.path} ${owned.field} (${attempt.label})`);
  t.same(
    persisted.map((owned) => owned.field),
    [],
    `${attempt.label}: no planted value in the database rows it touched or in what the API shows`,
  );
  return { succeeded, after, named };
}

// ---------------------------------------------------------------------------------------------

const document = test.app.swagger() as { paths: Record<string, Record<string, { requestBody?: unknown }>> };
const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
  Object.keys(methods)
    .filter((method) => method === 'post' || method === 'patch')
    .map((method) => `${method.toUpperCase()} ${path}`),
);

t.test('every POST and PATCH of the OpenAPI document has a case', async (t) => {
  const covered = new Set(ops.map((op) => `${op.method} ${op.path}`));
  t.ok(documented.length >= 20, `the document lists ${documented.length} POST/PATCH operations`);
  t.same(documented.filter((operation) => !covered.has(operation)), [], 'no documented operation without a case');
  t.same([...covered].filter((operation) => !documented.includes(operation)), [], 'no case for an operation the document lacks');
  t.equal(covered.size, ops.length, 'one case per operation');
});

for (const op of ops) {
  t.test(`${op.method} ${op.path}`, async (t) => {
    tally.ops++;
    let ctx = await op.setup();
    // Reads after an attempt change none of these rows, so its "after" is the next one's "before";
    // if one did, the next attempt would report a change it did not make, never hide one.
    let previous: Rec[] | undefined;
    const attempt = async (attempt: Attempt) => {
      const result = await run(t, op, ctx, attempt, previous);
      previous = result.after;
      if (result.succeeded && op.consumes) {
        ctx = await op.setup();
        previous = undefined;
      }
      return result;
    };
    // A route that declares no body never reads one: once the whole set is ignored, so is each field.
    const takesBody = document.paths[op.path]?.[op.method.toLowerCase()]?.requestBody !== undefined;
    const planned = op.multipart ? multipartAttemptsFor(op, () => ctx.form!(), op.multipart.declared) : attemptsFor(op, () => ctx.valid());
    const alone = (owned: Owned) => (op.multipart ? multipartSingle(owned, () => ctx.form!()) : single(owned, () => ctx.valid() ?? {}));
    for (const each of planned) {
      const { succeeded, named } = await attempt(each);
      if (!each.singlesAfter) continue;
      for (const owned of each.injected.filter((owned) => (succeeded ? takesBody : !named.has(owned.field)))) {
        await attempt(alone(owned));
      }
    }
  });
}

t.test('figure', async (t) => {
  const pass = tally.persisted === 0 && tally.serverErrors === 0 && tally.ops === documented.length;
  const figure = `${tally.persisted} of ${tally.injected} server-owned fields persisted across ${tally.ops} POST/PATCH operations (read back from the database); ${tally.requests} requests, ${tally.serverErrors} answered 5xx`;
  recordFigure({ item: 4, check: 'Mass assignment', figure, pass });
  t.comment(figure);
  for (const finding of persistedFindings) t.comment(`persisted: ${finding}`);
  t.equal(tally.persisted, 0, 'no planted value persisted');
  t.equal(tally.serverErrors, 0, 'no 5xx');
});
