// The audit log's integrity in the database (SPEC §7, §15): append-only tables, every event of
// concurrent writers in the tree exactly once, and no trace of a change that rolled back. Proofs,
// checkpoints and tampering by the database's owner: audit-transparency.test.ts. Who reads the
// log, and what it holds: audit-log.test.ts.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { systemAuditContext } from '../src/modules/audit/audit-log.js';
import { failedLogin, sequenceAuditLog, verifyChain } from './fixtures/audit-log.js';
import { auditEvents } from './fixtures/database.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { buildTestApp, type Json, type TestApp, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const officeA = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const get = (url: string, token: string) => test.request({ method: 'GET', url, token });
const run = <T extends Record<string, unknown> = Json>(app: TestApp, query: ReturnType<typeof sql>) => app.app.database.rows<T>(query);
const referralOrder = (overrides: Json = {}) => referralBody({ practiceId: practice.id, send: true, ...overrides });
const sentReferral = () => test.create('/v1/referrals', officeA.physician.token, referralOrder());
const unknownEmail = () => `nobody.${randomBytes(4).toString('hex')}@nowhere.example`;
const count = async (table: string) => Number((await run(test, sql`select count(*)::int as n from ${sql.raw(table)}`))[0]!.n);

/** The text of an error and of its cause (drizzle wraps the driver's error). */
function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let current = error as { message?: string; cause?: unknown } | undefined; current; current = current.cause as typeof current) {
    parts.push(String(current.message));
  }
  return parts.join(' <- ');
}

async function refused(work: Promise<unknown>): Promise<string | undefined> {
  try {
    await work;
    return undefined;
  } catch (error) {
    return errorText(error);
  }
}

/** Every event is in exactly one leaf, and the leaves are 0..n-1. */
async function eachEventOnceInTheTree(t: Test): Promise<number> {
  const [row] = await run<{ events: number; leaves: number; distinct_events: number; max_leaf: number | null; waiting: number }>(
    test,
    sql`select (select count(*)::int from audit_events) as events, (select count(*)::int from audit_log_leaves) as leaves,
               (select count(distinct event_id)::int from audit_log_leaves) as distinct_events,
               (select max(leaf_index)::int from audit_log_leaves) as max_leaf, (select count(*)::int from audit_unsequenced) as waiting`,
  );
  t.equal(row!.waiting, 0, 'nothing left waiting');
  t.equal(row!.leaves, row!.events, 'as many leaves as events');
  t.equal(row!.distinct_events, row!.events, 'no event in two leaves');
  t.equal(row!.max_leaf, row!.leaves - 1, 'leaf indexes without a gap');
  return row!.events;
}

t.test('the database refuses to change or remove the log', async (t) => {
  await sentReferral();
  await sequenceAuditLog(test);
  const [first] = await run(test, sql`select id::int as id, action from audit_events order by id limit 1`);
  t.ok(first, 'there is an event to tamper with');
  const before = { events: await count('audit_events'), leaves: await count('audit_log_leaves'), nodes: await count('audit_log_nodes'), checkpoints: await count('audit_checkpoints') };

  const attempts: [string, ReturnType<typeof sql>][] = [
    ['an update of an event', sql`update audit_events set action = 'auth.login' where id = ${first!.id}`],
    ['an update of every event', sql`update audit_events set patient_id = null`],
    ['a delete of an event', sql`delete from audit_events where id = ${first!.id}`],
    ['a truncate of the events', sql`truncate audit_events`],
    ['a move of a leaf', sql`update audit_log_leaves set event_id = event_id + 1 where leaf_index = 0`],
    ['a delete of a leaf', sql`delete from audit_log_leaves where leaf_index = 0`],
    ['a truncate of the leaves', sql`truncate audit_log_leaves`],
    ['a rewrite of a tree hash', sql`update audit_log_nodes set hash = sha256(hash) where level = 0 and index = 0`],
    ['a delete of tree hashes', sql`delete from audit_log_nodes`],
    ['a truncate of the tree', sql`truncate audit_log_nodes`],
    ['a rewrite of a checkpoint', sql`update audit_checkpoints set tree_size = tree_size + 1`],
    ['a delete of a checkpoint', sql`delete from audit_checkpoints`],
    ['a truncate of the checkpoints', sql`truncate audit_checkpoints`],
    ["a delete of the tree's state", sql`delete from audit_log_state`],
  ];
  for (const [what, statement] of attempts) {
    const error = await refused(run(test, statement));
    t.match(error ?? '', /append-only/, `${what} is refused by the append-only trigger`);
  }
  t.same(
    { events: await count('audit_events'), leaves: await count('audit_log_leaves'), nodes: await count('audit_log_nodes'), checkpoints: await count('audit_checkpoints') },
    before,
    'nothing went away',
  );
  const [after] = await run(test, sql`select id::int as id, action from audit_events where id = ${first!.id}`);
  t.same(after, first, 'the first event is unchanged');
  t.match(await verifyChain(test, networkAdmin), { valid: true }, 'and the log still verifies');
});

t.test('concurrent writers: 61 audited requests at once, each event in the tree once', async (t) => {
  const referral = await sentReferral();
  const readers = [officeA.physician, officeA.staff, officeA.admin, practice.therapist, practice.admin];
  const eventsBefore = await count('audit_events');

  const requests: Promise<Response>[] = [];
  for (let round = 0; round < 11; round++) {
    for (const reader of readers) requests.push(get(`/v1/referrals/${referral.id}`, reader.token));
    if (round % 2 === 0) requests.push(failedLogin(test, unknownEmail()));
  }
  // The worker's sequencer runs beside them; a second one is started by hand in the middle.
  const [responses] = await Promise.all([Promise.all(requests), test.app.auditSequencer.run()]);
  t.equal(responses.filter((response) => response.statusCode === 200).length, 55, 'every read succeeded');
  t.equal(responses.filter((response) => response.statusCode === 400).length, 6, 'every bad login failed');
  t.equal((await count('audit_events')) - eventsBefore, 61, 'one event per request');
  t.equal((await auditEvents(test, { action: 'referral.read', resourceId: referral.id })).length, 55, 'every read was audited');

  await sequenceAuditLog(test);
  const total = await eachEventOnceInTheTree(t);
  t.strictSame(await verifyChain(test, networkAdmin), { valid: true, treeSize: total, unsequenced: 0 });
});

t.test('a rolled-back change leaves no audit event', async (t) => {
  t.test('a referral whose network offer matches nobody: 409, the create rolled back with all its events', async (t) => {
    const [{ max: before }] = (await run(test, sql`select coalesce(max(id), 0)::int as max from audit_events`)) as [{ max: number }];
    const referralsBefore = await count('referrals');
    const patientsBefore = await count('patients');

    const response = await test.request({
      method: 'POST',
      url: '/v1/referrals',
      token: officeA.physician.token,
      payload: referralOrder({ practiceId: undefined, network: { techniques: ['craniosacral'], near: { lat: 0, lng: 0 }, radiusKm: 5 } }),
    });
    assertProblem(t, response, 409);
    t.equal(response.json().code, 'no-matching-therapist');

    t.equal(await count('referrals'), referralsBefore, 'no referral row');
    t.equal(await count('patients'), patientsBefore, 'no patient row');
    const appended = await run(test, sql`select id::int as id, action, outcome, http_status, resource_id, patient_id from audit_events where id > ${before} order by id`);
    t.same(
      appended.filter((event) => event.outcome === 'success'),
      [],
      'neither the patient.create nor the referral.create event of the rolled-back transaction exists',
    );
    // What remains is at most the record of the refusal itself, made after the rollback.
    t.ok(
      appended.every((event) => event.action === 'referral.create' && event.outcome === 'error' && event.http_status === 409 && event.resource_id === null && event.patient_id === null),
      `only the refusal is recorded (${JSON.stringify(appended)})`,
    );
    await sequenceAuditLog(test);
    const total = await eachEventOnceInTheTree(t);
    t.strictSame(await verifyChain(test, networkAdmin), { valid: true, treeSize: total, unsequenced: 0 });
  });

  t.test('an event written inside a transaction that rolls back never reaches the tree', async (t) => {
    const error = await refused(
      test.app.db.transaction(async (tx) => {
        await test.app.auditLog.record(systemAuditContext('rollback-test'), { action: 'test.rolled_back', outcome: 'success' }, tx);
        throw new Error('roll back');
      }),
    );
    t.match(error, /roll back/);
    t.equal((await auditEvents(test, { action: 'test.rolled_back' })).length, 0, 'the event is gone with its transaction');
    await test.app.auditLog.record(systemAuditContext('rollback-test'), { action: 'test.committed', outcome: 'success' });
    t.equal((await auditEvents(test, { action: 'test.committed' })).length, 1, 'the next one is written');
    await sequenceAuditLog(test);
    const total = await eachEventOnceInTheTree(t);
    t.strictSame(await verifyChain(test, networkAdmin), { valid: true, treeSize: total, unsequenced: 0 });
  });
});
