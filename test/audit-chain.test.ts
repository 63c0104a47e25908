// The audit log's integrity (SPEC §7): append-only in the database, a hash chain that verifies
// and names the first broken link when rows are edited, deleted or relinked, gapless under
// concurrent writers, and without a trace of a change that rolled back. Who reads the log, and
// what it holds: audit-log.test.ts.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { systemAuditContext } from '../src/modules/audit/audit-log.js';
import { chainIds, failedLogin, listAuditEvents, verifyChain } from './fixtures/audit-log.js';
import { auditEvents } from './fixtures/database.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, type Json, type TestApp, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const officeA = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const get = (url: string, token: string) => test.request({ method: 'GET', url, token });
const run = <T extends Record<string, unknown> = Json>(app: TestApp, query: ReturnType<typeof sql>) => app.app.database.rows<T>(query);
const referralOrder = (overrides: Json = {}) => referralBody({ practiceId: practice.id, send: true, ...overrides });
/** A referral sent at once by office A's physician to `practice`. */
const sentReferral = () => test.create('/v1/referrals', officeA.physician.token, referralOrder());
const listAll = (token: string, query = '') => listAuditEvents(test, token, query);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);
const unknownEmail = () => `nobody.${randomBytes(4).toString('hex')}@nowhere.example`;

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

t.test('the database refuses to change audit rows', async (t) => {
  const [first] = await run(test, sql`select id::int as id, action, hash from audit_events order by id limit 1`);
  t.ok(first, 'there is an event to tamper with');
  const count = async () => Number((await run(test, sql`select count(*)::int as n from audit_events`))[0]!.n);
  const before = await count();

  const attempts: [string, ReturnType<typeof sql>][] = [
    ['an update', sql`update audit_events set action = 'auth.login' where id = ${first!.id}`],
    ['an update of every row', sql`update audit_events set patient_id = null`],
    ['a delete', sql`delete from audit_events where id = ${first!.id}`],
    ['a delete of every row', sql`delete from audit_events`],
    ['a truncate', sql`truncate audit_events`],
    ['a delete of the chain head', sql`delete from audit_chain_head`],
    ['a truncate of the chain head', sql`truncate audit_chain_head`],
  ];
  for (const [what, statement] of attempts) {
    const error = await refused(run(test, statement));
    t.ok(error, `${what} throws`);
    t.match(error ?? '', /append-only/, `${what} is refused by the append-only trigger`);
  }
  t.equal(await count(), before, 'no row went away');
  const [after] = await run(test, sql`select id::int as id, action, hash from audit_events where id = ${first!.id}`);
  t.same(after, first, 'the first row is unchanged');
  t.same(await verifyChain(test, networkAdmin), { valid: true, checked: before }, 'and the chain still verifies');
});

t.test('the hash chain: verify says valid over every row, ids are gapless and each row links to the one before', async (t) => {
  const referral = await sentReferral();
  requireStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'read');
  await failedLogin(test, unknownEmail());

  const rows = await run<{ id: string | number; prev_hash: string; hash: string; recomputed: string }>(
    test,
    sql`select id, prev_hash, hash, audit_event_hash(a) as recomputed from audit_events a order by id`,
  );
  const result = await verifyChain(test, networkAdmin);
  t.same(result, { valid: true, checked: rows.length }, 'valid, having checked every row');
  t.same(rows.map((row) => Number(row.id)), range(1, rows.length), 'ids are 1..N without gaps');
  t.equal(rows[0]!.prev_hash, '', 'the first row links to nothing');
  for (let index = 1; index < rows.length; index++) {
    if (rows[index]!.prev_hash !== rows[index - 1]!.hash) t.fail(`row ${rows[index]!.id} does not link to row ${rows[index - 1]!.id}`);
  }
  t.ok(rows.every((row) => row.hash === row.recomputed && /^[0-9a-f]{64}$/.test(row.hash)), "each row's hash is sha256 over its content");
  const [head] = await run(test, sql`select last_id, last_hash from audit_chain_head`);
  // verify appended its own audit.verify event after checking.
  const [last] = await run(test, sql`select id, hash from audit_events order by id desc limit 1`);
  t.same([Number(head!.last_id), head!.last_hash], [Number(last!.id), last!.hash], 'the chain head names the last row');

  t.test('the API serves the same links', async (t) => {
    const events = await listAll(networkAdmin);
    t.ok(events.length >= rows.length);
    t.same(events.map((event) => event.id), range(1, events.length), 'listed ascending, gapless');
    for (let index = 1; index < events.length; index++) {
      if (events[index]!.prevHash !== events[index - 1]!.hash) t.fail(`event ${events[index]!.id} does not link`);
    }
  });
});

t.test('tamper detection: verify names the first broken link', async (t) => {
  /**
   * A fresh app whose chain has a dozen events, with an admin signed in before any tampering.
   * Made of cheap requests (no password hashing), as each case needs an app of its own.
   */
  async function chainOfEvents(t: Test): Promise<{ app: TestApp; token: string; ids: number[] }> {
    const app = await buildTestApp(t);
    const token = await app.loginAsAdmin();
    for (let index = 0; index < 4; index++) {
      await app.create('/v1/organizations', token, {
        kind: 'therapy_practice',
        name: `Practice ${index}`,
        address: { line1: '2 Test Ave', city: 'Portland', state: 'OR', postalCode: '97204' },
        location: { lat: 45.5, lng: -122.6 },
      });
      // A network admin may not list patients: a denied event.
      await app.request({ method: 'GET', url: '/v1/patients', token });
    }
    await app.app.auditLog.record(systemAuditContext('tamper-test'), {
      action: 'patient.read',
      outcome: 'success',
      resourceType: 'patient',
      resourceId: '11111111-1111-4111-8111-111111111111',
      patientId: '11111111-1111-4111-8111-111111111111',
    });
    await app.request({ method: 'GET', url: '/v1/patients', token });
    const baseline = await verifyChain(app, token);
    t.equal(baseline.valid, true, 'the untouched chain verifies');
    const ids = await chainIds(app);
    t.ok(ids.length >= 10, `${ids.length} events to tamper with`);
    return { app, token, ids };
  }

  /** Runs statements with the append-only triggers off, as someone with direct database access could. */
  const tamper = (app: TestApp, ...statements: ReturnType<typeof sql>[]) =>
    app.app.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      for (const statement of statements) await tx.execute(statement);
    });

  t.test('an edited row (action, patient_id or occurred_at): modified, naming that row', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const middle = ids[Math.floor(ids.length / 2)]!;
    const [withPatient] = await run(app, sql`select id::int as id, patient_id from audit_events where patient_id is not null order by id limit 1`);
    const [original] = await run(app, sql`select action from audit_events where id = ${middle}`);
    const edits: [string, number, ReturnType<typeof sql>, ReturnType<typeof sql>][] = [
      [
        'action',
        middle,
        sql`update audit_events set action = 'auth.logout' where id = ${middle}`,
        sql`update audit_events set action = ${original!.action} where id = ${middle}`,
      ],
      [
        'patient_id',
        withPatient!.id as number,
        sql`update audit_events set patient_id = '00000000-0000-4000-8000-000000000000' where id = ${withPatient!.id}`,
        sql`update audit_events set patient_id = ${withPatient!.patient_id} where id = ${withPatient!.id}`,
      ],
      [
        'occurred_at (by one microsecond)',
        ids[2]!,
        sql`update audit_events set occurred_at = occurred_at - interval '1 microsecond' where id = ${ids[2]!}`,
        sql`update audit_events set occurred_at = occurred_at + interval '1 microsecond' where id = ${ids[2]!}`,
      ],
    ];
    for (const [column, target, edit, restore] of edits) {
      await tamper(app, edit);
      const count = (await chainIds(app)).length;
      t.same(await verifyChain(app, token), { valid: false, checked: count, firstBrokenId: target, problem: 'modified' }, `${column} edited: modified at ${target}`);
      await tamper(app, restore);
      t.same(await verifyChain(app, token), { valid: true, checked: count + 1 }, `${column} restored: valid again`);
    }
  });

  t.test('a deleted row: missing, naming the deleted id (also the first row)', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const target = ids[Math.floor(ids.length / 2)]!;
    const [deleted] = await run<{ json: string }>(app, sql`select row_to_json(a)::text as json from audit_events a where id = ${target}`);
    await tamper(app, sql`delete from audit_events where id = ${target}`);
    t.same(await verifyChain(app, token), { valid: false, checked: ids.length - 1, firstBrokenId: target, problem: 'missing' });

    // Put the very row back (with the chain trigger off): the chain is whole again.
    await tamper(app, sql`insert into audit_events select * from json_populate_record(null::audit_events, ${deleted!.json}::json)`);
    const whole = await chainIds(app);
    t.same(await verifyChain(app, token), { valid: true, checked: whole.length }, 'restored: valid again');

    await tamper(app, sql`delete from audit_events where id = 1`);
    t.same(await verifyChain(app, token), { valid: false, checked: whole.length, firstBrokenId: 1, problem: 'missing' }, 'the first row deleted: missing at 1');
  });

  t.test('deleted last rows: truncated, naming the first deleted id', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const firstDeleted = ids.at(-2)!;
    await tamper(app, sql`delete from audit_events where id >= ${firstDeleted}`);
    const result = await verifyChain(app, token);
    t.same(result, { valid: false, checked: ids.length - 2, firstBrokenId: firstDeleted, problem: 'truncated' });

    t.test('and the chain stays broken as new events arrive after the hole', async (t) => {
      const again = await verifyChain(app, token);
      t.same(again, { valid: false, checked: ids.length - 1, firstBrokenId: firstDeleted, problem: 'missing' });
    });
  });

  t.test('an edited row whose own hash was recomputed: the next row is named, relinked', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const target = ids[Math.floor(ids.length / 2)]!;
    await tamper(
      app,
      sql`update audit_events set action = 'auth.logout', outcome = 'success' where id = ${target}`,
      sql`update audit_events a set hash = audit_event_hash(a) where id = ${target}`,
    );
    const [row] = await run(app, sql`select hash = audit_event_hash(a) as consistent from audit_events a where id = ${target}`);
    t.equal(row!.consistent, true, 'the edited row on its own looks fine');
    t.same(await verifyChain(app, token), { valid: false, checked: ids.length, firstBrokenId: target + 1, problem: 'relinked' });
  });
});

t.test('concurrent writers: 61 audited requests at once keep the chain valid and gapless', async (t) => {
  const referral = await sentReferral();
  const readers = [officeA.physician, officeA.staff, officeA.admin, practice.therapist, practice.admin];
  const [{ max: before }] = (await run(test, sql`select max(id)::int as max from audit_events`)) as [{ max: number }];

  const requests: Promise<Response>[] = [];
  for (let round = 0; round < 11; round++) {
    for (const reader of readers) requests.push(get(`/v1/referrals/${referral.id}`, reader.token));
    if (round % 2 === 0) requests.push(failedLogin(test, unknownEmail()));
  }
  const responses = await Promise.all(requests);
  t.equal(responses.filter((response) => response.statusCode === 200).length, 55, 'every read succeeded');
  t.equal(responses.filter((response) => response.statusCode === 400).length, 6, 'every bad login failed');

  const [{ max: after, n }] = (await run(test, sql`select max(id)::int as max, count(*)::int as n from audit_events`)) as [{ max: number; n: number }];
  t.equal(after - before, 61, 'one event per request');
  t.equal(n, after, 'ids are gapless: as many rows as the highest id');
  const reads = await auditEvents(test, { action: 'referral.read', resourceId: referral.id });
  t.equal(reads.length, 55, 'every read was audited');
  t.same(await verifyChain(test, networkAdmin), { valid: true, checked: after });
});

t.test('a rolled-back change leaves no audit event and no gap in the chain', async (t) => {
  t.test('a referral whose network offer matches nobody: 409, the create rolled back with all its events', async (t) => {
    const [{ max: before }] = (await run(test, sql`select max(id)::int as max from audit_events`)) as [{ max: number }];
    const [{ n: referralsBefore }] = (await run(test, sql`select count(*)::int as n from referrals`)) as [{ n: number }];
    const [{ n: patientsBefore }] = (await run(test, sql`select count(*)::int as n from patients`)) as [{ n: number }];

    const requestId = `rolled-back-${randomBytes(4).toString('hex')}`;
    const response = await test.request({
      method: 'POST',
      url: '/v1/referrals',
      token: officeA.physician.token,
      headers: { 'x-request-id': requestId },
      payload: referralOrder({ practiceId: undefined, network: { techniques: ['craniosacral'], near: { lat: 0, lng: 0 }, radiusKm: 5 } }),
    });
    assertProblem(t, response, 409);
    t.equal(response.json().code, 'no-matching-therapist');

    t.equal(((await run(test, sql`select count(*)::int as n from referrals`)) as [{ n: number }])[0].n, referralsBefore, 'no referral row');
    t.equal(((await run(test, sql`select count(*)::int as n from patients`)) as [{ n: number }])[0].n, patientsBefore, 'no patient row');
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
    const ids = await chainIds(test);
    t.same(ids, range(1, ids.length), 'gapless');
    t.same(await verifyChain(test, networkAdmin), { valid: true, checked: ids.length });
  });

  t.test('an event appended inside a transaction that rolls back releases its id to the next event', async (t) => {
    const [{ max: before }] = (await run(test, sql`select max(id)::int as max from audit_events`)) as [{ max: number }];
    const error = await refused(
      test.app.db.transaction(async (tx) => {
        await test.app.auditLog.record(systemAuditContext('rollback-test'), { action: 'test.rolled_back', outcome: 'success' }, tx);
        throw new Error('roll back');
      }),
    );
    t.match(error, /roll back/);
    t.equal((await auditEvents(test, { action: 'test.rolled_back' })).length, 0, 'the event is gone with its transaction');
    await test.app.auditLog.record(systemAuditContext('rollback-test'), { action: 'test.committed', outcome: 'success' });
    const [committed] = await auditEvents(test, { action: 'test.committed' });
    t.equal(committed!.id, before + 1, 'the next event takes the id the rolled-back one had');
    t.same(await chainIds(test), range(1, before + 1), 'gapless');
    t.same(await verifyChain(test, networkAdmin), { valid: true, checked: before + 1 });
  });
});
