// The audit log (SPEC §7): append-only in the database, a verifiable hash chain that names the
// first broken link, gapless under concurrent writers, filterable, exportable as NDJSON, "who saw
// this patient" in one query, readable only by admins, and never holding clinical text.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { systemAuditContext } from '../src/modules/audit/audit-log.js';
import { auditEvents, buildTestApp, createOffice, createPractice, defaultPassword, type Json, type OfficeFixture, type TestApp } from './helper.js';

type Response = Awaited<ReturnType<TestApp['request']>>;

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const foreignPractice = await createPractice(test, networkAdmin);

const get = (url: string, token: string, headers: Record<string, string> = {}) => test.request({ method: 'GET', url, token, headers });
const run = <T extends Record<string, unknown> = Json>(app: TestApp, query: ReturnType<typeof sql>) => app.app.database.rows<T>(query);

function referralBody(overrides: Json = {}): Json {
  return {
    patient: { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' },
    diagnoses: [{ code: 'M54.50', display: 'Low back pain' }],
    reason: 'Chronic low back pain',
    techniques: ['trigger_point'],
    bodyRegions: ['lower_back'],
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    practiceId: practice.id,
    send: true,
    ...overrides,
  };
}

/** A referral sent at once by the office's physician to `practice`. */
const sentReferral = (office: OfficeFixture = officeA, overrides: Json = {}) => test.create('/v1/referrals', office.physician.token, referralBody(overrides));

async function expectStatus(response: Response, status: number, what: string): Promise<Json> {
  if (response.statusCode !== status) throw new Error(`${what}: expected ${status}, got ${response.statusCode} ${response.body}`);
  return response.json();
}

/** Asserts a problem+json answer with this status whose errors[] names each of the fields. */
function assertProblem(t: Test, response: Response, status: number, fields: string[] = []) {
  t.equal(response.statusCode, status, `answers ${status} (${response.body.slice(0, 300)})`);
  t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
  const named = (response.json().errors ?? []).map((problem: Json) => problem.field);
  for (const field of fields) t.ok(named.includes(field), `errors[] names ${field} (got ${named.join(', ')})`);
}

/** Every event a caller may read with this query, walked page by page. */
async function listAll(token: string, query = '', app: TestApp = test): Promise<Json[]> {
  const events: Json[] = [];
  let cursor: string | null = null;
  do {
    const response: Response = await app.request({ method: 'GET', url: `/v1/audit-events?limit=200${query}${cursor ? `&cursor=${cursor}` : ''}`, token });
    const page = await expectStatus(response, 200, 'GET /v1/audit-events');
    events.push(...page.data);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return events;
}

async function verify(app: TestApp, token: string): Promise<Json> {
  return expectStatus(await app.request({ method: 'GET', url: '/v1/audit-events/verify', token }), 200, 'verify');
}

/** The ids of the chain, in order, straight from the database. */
async function chainIds(app: TestApp = test): Promise<number[]> {
  return (await run<{ id: string | number }>(app, sql`select id from audit_events order by id`)).map((row) => Number(row.id));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

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

const failedLogin = (app: TestApp, username: string, requestId?: string) =>
  app.request({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', username, password: 'definitely-not-the-password' },
    headers: requestId ? { 'x-request-id': requestId } : {},
  });

const unknownEmail = () => `nobody.${randomBytes(4).toString('hex')}@nowhere.example`;

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
  t.same(await verify(test, networkAdmin), { valid: true, checked: before }, 'and the chain still verifies');
});

t.test('the hash chain: verify says valid over every row, ids are gapless and each row links to the one before', async (t) => {
  const referral = await sentReferral();
  await expectStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'read');
  await failedLogin(test, unknownEmail());

  const rows = await run<{ id: string | number; prev_hash: string; hash: string; recomputed: string }>(
    test,
    sql`select id, prev_hash, hash, audit_event_hash(a) as recomputed from audit_events a order by id`,
  );
  const result = await verify(test, networkAdmin);
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
    const baseline = await verify(app, token);
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
      t.same(await verify(app, token), { valid: false, checked: count, firstBrokenId: target, problem: 'modified' }, `${column} edited: modified at ${target}`);
      await tamper(app, restore);
      t.same(await verify(app, token), { valid: true, checked: count + 1 }, `${column} restored: valid again`);
    }
  });

  t.test('a deleted row: missing, naming the deleted id (also the first row)', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const target = ids[Math.floor(ids.length / 2)]!;
    const [deleted] = await run<{ json: string }>(app, sql`select row_to_json(a)::text as json from audit_events a where id = ${target}`);
    await tamper(app, sql`delete from audit_events where id = ${target}`);
    t.same(await verify(app, token), { valid: false, checked: ids.length - 1, firstBrokenId: target, problem: 'missing' });

    // Put the very row back (with the chain trigger off): the chain is whole again.
    await tamper(app, sql`insert into audit_events select * from json_populate_record(null::audit_events, ${deleted!.json}::json)`);
    const whole = await chainIds(app);
    t.same(await verify(app, token), { valid: true, checked: whole.length }, 'restored: valid again');

    await tamper(app, sql`delete from audit_events where id = 1`);
    t.same(await verify(app, token), { valid: false, checked: whole.length, firstBrokenId: 1, problem: 'missing' }, 'the first row deleted: missing at 1');
  });

  t.test('deleted last rows: truncated, naming the first deleted id', async (t) => {
    const { app, token, ids } = await chainOfEvents(t);
    const firstDeleted = ids.at(-2)!;
    await tamper(app, sql`delete from audit_events where id >= ${firstDeleted}`);
    const result = await verify(app, token);
    t.same(result, { valid: false, checked: ids.length - 2, firstBrokenId: firstDeleted, problem: 'truncated' });

    t.test('and the chain stays broken as new events arrive after the hole', async (t) => {
      const again = await verify(app, token);
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
    t.same(await verify(app, token), { valid: false, checked: ids.length, firstBrokenId: target + 1, problem: 'relinked' });
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
  t.same(await verify(test, networkAdmin), { valid: true, checked: after });
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
      payload: referralBody({ practiceId: undefined, network: { techniques: ['craniosacral'], near: { lat: 0, lng: 0 }, radiusKm: 5 } }),
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
    const ids = await chainIds();
    t.same(ids, range(1, ids.length), 'gapless');
    t.same(await verify(test, networkAdmin), { valid: true, checked: ids.length });
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
    t.same(await chainIds(), range(1, before + 1), 'gapless');
    t.same(await verify(test, networkAdmin), { valid: true, checked: before + 1 });
  });
});

t.test('GET /v1/audit-events filters', async (t) => {
  const office = await createOffice(test, networkAdmin);
  const first = await sentReferral(office);
  const second = await sentReferral(office);
  await expectStatus(await get(`/v1/referrals/${first.id}`, practice.therapist.token), 200, 'therapist read');
  await expectStatus(await get(`/v1/referrals/${first.id}`, foreignPractice.therapist.token), 404, 'foreign read');
  const physicianIds = (await run(test, sql`select id from audit_events where actor_id = ${office.physician.id} order by id`)).map((row) => Number(row.id));
  const ids = (events: Json[]) => events.map((event) => event.id);

  t.test('actorId: exactly that actor\'s events, oldest first', async (t) => {
    const events = await listAll(networkAdmin, `&actorId=${office.physician.id}`);
    t.same(ids(events), physicianIds);
    t.same(
      events.map((event) => event.action),
      ['auth.login', 'patient.create', 'referral.create', 'patient.create', 'referral.create'],
    );
    t.ok(events.every((event) => event.actor.id === office.physician.id && event.actor.organizationId === office.id && event.actor.role === 'physician'));
  });

  t.test('patientId: every event on that patient, whoever the actor', async (t) => {
    const events = await listAll(networkAdmin, `&patientId=${first.patientId}`);
    const expected = (await run(test, sql`select id from audit_events where patient_id = ${first.patientId} order by id`)).map((row) => Number(row.id));
    t.same(ids(events), expected);
    t.ok(events.every((event) => event.patientId === first.patientId));
    t.same(
      events.filter((event) => event.outcome === 'success').map((event) => [event.action, event.actor.id]),
      [
        ['patient.create', office.physician.id],
        ['referral.create', office.physician.id],
        ['referral.read', practice.therapist.id],
      ],
    );
  });

  t.test('resourceType and resourceId', async (t) => {
    const patients = await listAll(networkAdmin, `&resourceType=patient&actorId=${office.physician.id}`);
    t.same(patients.map((event) => event.resourceId), [first.patientId, second.patientId]);
    const onFirst = await listAll(networkAdmin, `&resourceId=${first.id}`);
    t.same(
      onFirst.map((event) => [event.action, event.outcome, event.actor.id]),
      [
        ['referral.create', 'success', office.physician.id],
        ['referral.read', 'success', practice.therapist.id],
        ['referral.read', 'denied', foreignPractice.therapist.id],
      ],
    );
    t.ok(onFirst.every((event) => event.resourceId === first.id && event.resourceType === 'referral'));
  });

  t.test('action: exact, or a prefix ending in a dot', async (t) => {
    t.same(
      (await listAll(networkAdmin, `&action=referral.create&actorId=${office.physician.id}`)).map((event) => event.resourceId),
      [first.id, second.id],
    );
    const referralActions = await listAll(networkAdmin, `&action=referral.&actorId=${practice.therapist.id}`);
    t.ok(referralActions.length > 0);
    t.ok(referralActions.every((event) => event.action.startsWith('referral.')), 'only referral.* actions');
    const expected = (await run(test, sql`select id from audit_events where actor_id = ${practice.therapist.id} and action like 'referral.%' order by id`)).map((row) => Number(row.id));
    t.same(ids(referralActions), expected, 'and all of them');
    t.same(await listAll(networkAdmin, `&action=referral&actorId=${office.physician.id}`), [], 'without the dot it is an exact action, matching none');
    t.same(await listAll(networkAdmin, `&action=${encodeURIComponent('r_ferral.')}`), [], 'an underscore is no wildcard');
    t.same(await listAll(networkAdmin, `&action=${encodeURIComponent('%.')}`), [], 'a percent sign is no wildcard');
  });

  t.test('outcome', async (t) => {
    const denied = await listAll(networkAdmin, `&outcome=denied&resourceId=${first.id}`);
    t.same(denied.map((event) => [event.action, event.actor.id, event.httpStatus]), [['referral.read', foreignPractice.therapist.id, 404]]);
    const succeeded = await listAll(networkAdmin, `&outcome=success&actorId=${office.physician.id}`);
    t.same(ids(succeeded), physicianIds);
  });

  t.test('from (inclusive) and to (exclusive) split the events at a time without losing or repeating one', async (t) => {
    const all = await listAll(networkAdmin, `&actorId=${office.physician.id}`);
    const pivot = all.find((event) => event.resourceId === second.id)!.occurredAt as string;
    const from = await listAll(networkAdmin, `&actorId=${office.physician.id}&from=${pivot}`);
    const to = await listAll(networkAdmin, `&actorId=${office.physician.id}&to=${pivot}`);
    const inRange = (rows: Json[]) => rows.map((row) => Number(row.id));
    t.same(ids(from), inRange(await run(test, sql`select id from audit_events where actor_id = ${office.physician.id} and occurred_at >= ${pivot}::timestamptz order by id`)));
    t.same(ids(to), inRange(await run(test, sql`select id from audit_events where actor_id = ${office.physician.id} and occurred_at < ${pivot}::timestamptz order by id`)));
    t.ok(from.length > 0 && to.length > 0, 'the pivot splits the events');
    t.same([...ids(to), ...ids(from)].sort((a, b) => a - b), ids(all), 'together, every event exactly once');
    t.ok(from.every((event) => event.occurredAt >= pivot) && to.every((event) => event.occurredAt <= pivot));
    t.ok(from.some((event) => event.resourceId === second.id), 'the event at the pivot is in from');
    t.same(await listAll(networkAdmin, `&actorId=${office.physician.id}&from=${encodeURIComponent('2999-01-01T00:00:00Z')}`), []);
    t.same(await listAll(networkAdmin, `&actorId=${office.physician.id}&to=${encodeURIComponent('2000-01-01T00:00:00Z')}`), []);
    t.same(ids(await listAll(networkAdmin, `&actorId=${office.physician.id}&from=${encodeURIComponent('2000-01-01T00:00:00Z')}&to=${encodeURIComponent('2999-01-01T00:00:00Z')}`)), ids(all));
  });

  t.test('cursor pagination: limit=2 walks every event once, ascending', async (t) => {
    const big = (await expectStatus(await get('/v1/audit-events?limit=200&action=auth.', networkAdmin), 200, 'big page')).data as Json[];
    t.ok(big.length > 4 && big.length < 200, `${big.length} sign-in events`);
    const walked: Json[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Json = await expectStatus(await get(`/v1/audit-events?limit=2&action=auth.${cursor ? `&cursor=${cursor}` : ''}`, networkAdmin), 200, 'page');
      t.ok(page.data.length <= 2);
      walked.push(...page.data);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages <= big.length);
    t.same(ids(walked), ids(big), 'the same events as one big page');
    t.equal(new Set(ids(walked)).size, walked.length, 'no duplicates');
    t.ok(ids(walked).every((id, index, all) => index === 0 || id > all[index - 1]!), 'ascending ids');
  });

  const forgedCursor = Buffer.from(JSON.stringify(['1', 'x'])).toString('base64url');
  const rejected: [string, string, string][] = [
    ['an actorId that is not a uuid', 'actorId=123', 'query.actorId'],
    ['a patientId that is not a uuid', 'patientId=abc', 'query.patientId'],
    ['an outcome that is none of the three', 'outcome=x', 'query.outcome'],
    ['a from that is not a date-time', 'from=yesterday', 'query.from'],
    ['a to that is a bare date', 'to=2026-01-01', 'query.to'],
    ['a limit of 0', 'limit=0', 'query.limit'],
    ['a limit over 200', 'limit=201', 'query.limit'],
    ['a forged cursor', `cursor=${forgedCursor}`, 'query.cursor'],
    ['a cursor that is not base64 JSON', 'cursor=%21%21%21', 'query.cursor'],
  ];
  for (const [what, query, field] of rejected) {
    t.test(`rejects ${what} with 400 naming ${field}`, async (t) => {
      assertProblem(t, await get(`/v1/audit-events?${query}`, networkAdmin), 400, [field]);
    });
  }
  t.test('rejects a cursor whose id is not a safe integer (1.5, 1e20) with 400 naming query.cursor', async (t) => {
    for (const key of [[1.5], [1e20]]) {
      const cursor = Buffer.from(JSON.stringify(key)).toString('base64url');
      const response = await get(`/v1/audit-events?cursor=${cursor}`, networkAdmin);
      t.equal(response.statusCode, 400, `cursor ${JSON.stringify(key)}: answers 400 (got ${response.statusCode})`);
      const named = (response.json().errors ?? []).map((problem: Json) => problem.field);
      t.ok(named.includes('query.cursor'), 'naming query.cursor');
    }
  });

  t.test('a leap-second time (valid RFC 3339, no JavaScript date) is answered, or refused with 400 naming the field, never a 500', async (t) => {
    const cases: [string, string][] = [
      ['/v1/audit-events?from=2016-12-31T23:59:60Z', 'query.from'],
      ['/v1/audit-events?to=2016-12-31T23:59:60Z', 'query.to'],
      ['/v1/audit-events/export?from=2016-12-31T23:59:60Z', 'query.from'],
    ];
    for (const [url, field] of cases) {
      const response = await get(url, networkAdmin);
      t.ok(response.statusCode === 200 || response.statusCode === 400, `GET ${url}: 200 or 400 (got ${response.statusCode})`);
      if (response.statusCode === 400) assertProblem(t, response, 400, [field]);
    }
  });

  t.test('the export rejects bad filters the same way', async (t) => {
    assertProblem(t, await get('/v1/audit-events/export?outcome=x', networkAdmin), 400, ['query.outcome']);
    assertProblem(t, await get('/v1/audit-events/export?actorId=123', networkAdmin), 400, ['query.actorId']);
  });
  t.test('viewers requires a uuid patientId', async (t) => {
    assertProblem(t, await get('/v1/audit-events/viewers?patientId=abc', networkAdmin), 400, ['query.patientId']);
    assertProblem(t, await get('/v1/audit-events/viewers', networkAdmin), 400, ['query.patientId']);
  });
});

t.test('GET /v1/audit-events/export: NDJSON of the same events as the list', async (t) => {
  const referral = await sentReferral();
  await expectStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'read');

  async function exported(t: Test, token: string, query: string): Promise<{ response: Response; events: Json[] }> {
    const response = await get(`/v1/audit-events/export?${query}`, token);
    t.equal(response.statusCode, 200, `export ${query}`);
    const lines = response.body.split('\n');
    t.equal(lines.pop(), '', 'every line ends with a newline');
    return { response, events: lines.map((line) => JSON.parse(line)) };
  }

  t.test('content type, one parseable event per line, each with id, actor, action and hash', async (t) => {
    const { response, events } = await exported(t, networkAdmin, `patientId=${referral.patientId}`);
    t.match(response.headers['content-type'], /^application\/x-ndjson/);
    t.match(response.headers['content-disposition'], /attachment/);
    t.ok(events.length >= 3);
    for (const event of events) {
      t.ok(Number.isInteger(event.id) && typeof event.actor === 'object' && typeof event.action === 'string' && /^[0-9a-f]{64}$/.test(event.hash), `line ${event.id} is a full event`);
    }
    t.same(events, await listAll(networkAdmin, `&patientId=${referral.patientId}`), 'the same events, in the same shape, as the list');
  });

  const filters = [
    `actorId=${practice.therapist.id}`,
    'action=referral.',
    'outcome=denied',
    `resourceId=${referral.id}`,
    `resourceType=patient&from=${encodeURIComponent('2000-01-01T00:00:00Z')}`,
  ];
  for (const filter of filters) {
    t.test(`with ${filter}: the count and ids equal the list's`, async (t) => {
      const listed = await listAll(networkAdmin, `&${filter}`);
      const { events } = await exported(t, networkAdmin, filter);
      t.ok(listed.length > 0, `${listed.length} events`);
      t.same(events.map((event) => event.id), listed.map((event) => event.id));
    });
  }

  t.test("an office admin's export holds only what the list shows them", async (t) => {
    const listed = await listAll(officeA.admin.token, `&actorId=${practice.therapist.id}`);
    const { events } = await exported(t, officeA.admin.token, `actorId=${practice.therapist.id}`);
    t.ok(listed.length > 0);
    t.same(events.map((event) => event.id), listed.map((event) => event.id));
  });

  t.test('an export larger than one internal batch (1000) arrives whole and in order', async (t) => {
    const [{ n }] = (await run(test, sql`select count(*)::int as n from audit_events`)) as [{ n: number }];
    const missing = 1100 - n;
    if (missing > 0) {
      await test.app.auditLog.recordMany(
        systemAuditContext('export-test'),
        Array.from({ length: missing }, () => ({ action: 'test.filler', outcome: 'success' as const })),
      );
    }
    const { events } = await exported(t, networkAdmin, '');
    t.ok(events.length > 1000, `${events.length} events`);
    t.same(events.map((event) => event.id), range(1, events.length), 'every event once, ascending');
    const total = (await chainIds()).length;
    t.same(await verify(test, networkAdmin), { valid: true, checked: total });
  });
});

t.test("who saw this patient: GET /v1/audit-events/viewers", async (t) => {
  const referral = await sentReferral(officeA, { practiceId: practice.id });
  const patientId = referral.patientId as string;
  await expectStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'therapist read');
  await expectStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
  await expectStatus(await get(`/v1/referrals/${referral.id}`, foreignPractice.therapist.token), 404, 'foreign read');
  await expectStatus(await get(`/v1/referrals/${referral.id}`, officeB.physician.token), 404, 'other office read');

  const viewers = async (token: string, id = patientId) => expectStatus(await get(`/v1/audit-events/viewers?patientId=${id}`, token), 200, 'viewers');

  t.test('names exactly the actors who read or changed the record, with their actions and counts', async (t) => {
    const answer = await viewers(networkAdmin);
    t.equal(answer.patientId, patientId);
    t.same(
      answer.data.map((viewer: Json) => ({ actor: viewer.actor, actions: viewer.actions, accesses: viewer.accesses })),
      [
        { actor: { type: 'user', id: officeA.physician.id, organizationId: officeA.id, role: 'physician' }, actions: ['patient.create', 'referral.create'], accesses: 2 },
        { actor: { type: 'user', id: practice.therapist.id, organizationId: practice.id, role: 'therapist' }, actions: ['referral.accept', 'referral.read'], accesses: 2 },
      ],
    );
    for (const viewer of answer.data) {
      t.ok(viewer.firstAt <= viewer.lastAt, 'firstAt ≤ lastAt');
      t.ok(!Number.isNaN(Date.parse(viewer.firstAt)) && viewer.lastAt.endsWith('Z'));
    }
    t.ok(answer.data[0].firstAt <= answer.data[1].firstAt, 'ordered by first access');
  });

  t.test('more accesses raise the count and lastAt, and asking does not make the asker a viewer', async (t) => {
    const before = (await viewers(networkAdmin)).data.find((viewer: Json) => viewer.actor.id === practice.therapist.id);
    await expectStatus(await get(`/v1/referrals/${referral.id}/history`, practice.therapist.token), 200, 'history');
    const after = (await viewers(networkAdmin)).data;
    t.equal(after.length, 2, 'still two viewers');
    const therapist = after.find((viewer: Json) => viewer.actor.id === practice.therapist.id);
    t.equal(therapist.accesses, before.accesses + 1);
    t.same(therapist.actions, ['referral.accept', 'referral.history', 'referral.read']);
    t.ok(therapist.lastAt >= before.lastAt);
    t.equal(therapist.firstAt, before.firstAt);
  });

  t.test('denied attempts are not viewers, but are in the log against the referral', async (t) => {
    const denied = await listAll(networkAdmin, `&resourceId=${referral.id}&outcome=denied`);
    t.same(
      denied.map((event) => [event.action, event.actor.id, event.httpStatus]),
      [
        ['referral.read', foreignPractice.therapist.id, 404],
        ['referral.read', officeB.physician.id, 404],
      ],
    );
    const onPatient = await listAll(networkAdmin, `&patientId=${patientId}&outcome=denied`);
    t.same(onPatient.map((event) => event.id), denied.map((event) => event.id), 'the attempts name the patient too');
    const viewerIds = (await viewers(networkAdmin)).data.map((viewer: Json) => viewer.actor.id);
    t.notOk(viewerIds.includes(foreignPractice.therapist.id));
    t.notOk(viewerIds.includes(officeB.physician.id));
  });

  t.test("the patient's office admin sees the same viewers; another office's admin sees none", async (t) => {
    t.same((await viewers(officeA.admin.token)).data, (await viewers(networkAdmin)).data);
    t.same((await viewers(officeB.admin.token)).data, []);
  });

  t.test("the practice admin sees only its own people among the viewers", async (t) => {
    const seen = (await viewers(practice.admin.token)).data;
    t.same(seen.map((viewer: Json) => viewer.actor.id), [practice.therapist.id]);
  });

  t.test('an unknown patient has no viewers', async (t) => {
    t.same((await viewers(networkAdmin, '00000000-0000-4000-8000-000000000000')).data, []);
  });
});

t.test('who may read the audit log', async (t) => {
  const ownPatient = await sentReferral(officeA, { practiceId: practice.id });
  const foreignPatient = await sentReferral(officeB, { practiceId: practice.id });
  await expectStatus(await get(`/v1/referrals/${ownPatient.id}`, practice.therapist.token), 200, 'read own');
  await expectStatus(await get(`/v1/referrals/${foreignPatient.id}`, practice.therapist.token), 200, 'read foreign');
  const officePatientIds = async (officeId: string) =>
    new Set((await run(test, sql`select id from patients where organization_id = ${officeId}`)).map((row) => row.id as string));

  t.test('a network admin reads every organization\'s events and anonymous ones', async (t) => {
    for (const actor of [officeA.physician, officeB.physician, practice.therapist, foreignPractice.therapist]) {
      t.ok((await listAll(networkAdmin, `&actorId=${actor.id}`)).length > 0, `events of ${actor.email}`);
    }
    const anonymous = (await listAll(networkAdmin, '&action=auth.login_failed')).filter((event) => event.actor.type === 'anonymous');
    t.ok(anonymous.length > 0, 'failed logins with an unknown email');
  });

  t.test("an office admin reads its own people's events and every event on its patients, nothing else", async (t) => {
    const own = await officePatientIds(officeA.id);
    const events = await listAll(officeA.admin.token);
    t.ok(events.length > 0);
    const outside = events.filter((event) => event.actor.organizationId !== officeA.id && !own.has(event.patientId));
    t.same(outside, [], 'every event is by its people or on its patients');
    t.ok(events.some((event) => event.actor.id === officeA.physician.id), "its physician's events");
    t.ok(
      events.some((event) => event.actor.id === practice.therapist.id && event.action === 'referral.read' && event.patientId === ownPatient.patientId),
      "the therapist's read of its patient",
    );
    t.notOk(events.some((event) => event.patientId === foreignPatient.patientId), "nothing on another office's patient");
    const otherPhysician = await listAll(officeA.admin.token, `&actorId=${officeB.physician.id}`);
    t.ok(otherPhysician.every((event) => own.has(event.patientId)), "another office's physician: only attempts on its patients");
    t.notOk(otherPhysician.some((event) => event.action === 'auth.login' || event.action === 'referral.create'), "none of that physician's own work");
    t.same(await listAll(officeA.admin.token, `&patientId=${foreignPatient.patientId}`), [], "another office's patient: nothing");
    const therapistSeen = await listAll(officeA.admin.token, `&actorId=${practice.therapist.id}`);
    t.ok(therapistSeen.length > 0 && therapistSeen.every((event) => own.has(event.patientId)), "the therapist's events only where they touch its patients");
  });

  t.test("a practice admin reads its people's events, on any office's patient", async (t) => {
    const events = await listAll(practice.admin.token, `&actorId=${practice.therapist.id}`);
    t.ok(events.some((event) => event.patientId === ownPatient.patientId));
    t.ok(events.some((event) => event.patientId === foreignPatient.patientId));
    t.same(await listAll(practice.admin.token, `&actorId=${officeA.physician.id}`), [], "not an office physician's events");
  });

  t.test("an office admin does not learn another office's patient from its own people's refused attempts", async (t) => {
    const foreign = await sentReferral(officeB, { practiceId: practice.id });
    const missingId = '00000000-0000-4000-8000-00000000abcd';
    await expectStatus(await get(`/v1/referrals/${foreign.id}`, officeA.staff.token), 404, 'foreign read');
    await expectStatus(await get(`/v1/referrals/${missingId}`, officeA.staff.token), 404, 'missing read');

    const seenByOwnAdmin = await listAll(officeA.admin.token, `&actorId=${officeA.staff.id}&outcome=denied`);
    const onForeign = seenByOwnAdmin.find((event) => event.resourceId === foreign.id);
    const onMissing = seenByOwnAdmin.find((event) => event.resourceId === missingId);
    t.ok(onForeign && onMissing, "its admin sees both of its staff's refused attempts");
    t.equal(onForeign?.patientId, null, "the other office's patient is not named to it");
    t.equal(onForeign?.patientId, onMissing?.patientId, 'an existing and a missing referral look alike');

    const seenByOwner = (await listAll(officeB.admin.token, `&resourceId=${foreign.id}&outcome=denied`)).find((event) => event.actor.id === officeA.staff.id);
    t.equal(seenByOwner?.patientId, foreign.patientId, "the patient's own office sees the attempt on its patient");
    const seenByNetwork = (await listAll(networkAdmin, `&resourceId=${foreign.id}&outcome=denied`)).find((event) => event.actor.id === officeA.staff.id);
    t.equal(seenByNetwork?.patientId, foreign.patientId, 'the network admin sees which patient was tried');
  });

  const routes = [
    ['/v1/audit-events', 'audit.read'],
    ['/v1/audit-events/export', 'audit.export'],
    ['/v1/audit-events/verify', 'audit.verify'],
    [`/v1/audit-events/viewers?patientId=${ownPatient.patientId}`, 'audit.viewers'],
  ] as const;
  const outsiders = {
    'a physician': officeA.physician,
    'office staff': officeA.staff,
    'a therapist': practice.therapist,
  };
  for (const [who, caller] of Object.entries(outsiders)) {
    t.test(`${who} gets 403 on all four audit routes, each refusal audited`, async (t) => {
      for (const [url, action] of routes) {
        assertProblem(t, await get(url, caller.token), 403);
        const denied = await auditEvents(test, { action, outcome: 'denied', actorId: caller.id });
        t.equal(denied.length, 1, `${action} denied once`);
        t.match(denied[0], { httpStatus: 403 });
      }
    });
  }

  t.test('verify is for network admins only', async (t) => {
    for (const admin of [officeA.admin, practice.admin]) {
      assertProblem(t, await get('/v1/audit-events/verify', admin.token), 403);
      t.equal((await auditEvents(test, { action: 'audit.verify', outcome: 'denied', actorId: admin.id })).length, 1);
    }
  });

  t.test('without a token: 401', async (t) => {
    for (const [url] of routes) assertProblem(t, await test.request({ method: 'GET', url }), 401);
  });

  t.test('reading the audit log is itself audited', async (t) => {
    for (const [url, action] of routes) {
      const before = await auditEvents(test, { action, outcome: 'success', actorId: networkAdminId });
      t.equal((await get(url, networkAdmin)).statusCode, 200, `GET ${url}`);
      const after = (await auditEvents(test, { action, outcome: 'success', actorId: networkAdminId })).sort((a, b) => a.id - b.id);
      t.equal(after.length, before.length + 1, `one more ${action} event`);
      t.match(after.at(-1), { actorType: 'user', actorRole: 'network_admin', resourceType: 'audit_log', httpStatus: 200 });
      if (action === 'audit.viewers') t.equal(after.at(-1)!.resourceId, ownPatient.patientId, 'naming the patient asked about');
    }
    const before = await auditEvents(test, { action: 'audit.read', actorId: officeA.admin.id });
    await get('/v1/audit-events?limit=1', officeA.admin.token);
    t.equal((await auditEvents(test, { action: 'audit.read', actorId: officeA.admin.id })).length, before.length + 1, "an office admin's read too");
  });
});

t.test('failed sign-ins are audited', async (t) => {
  t.test('a wrong password: auth.login_failed, denied, against the account', async (t) => {
    const requestId = `wrong-password-${randomBytes(4).toString('hex')}`;
    const response = await failedLogin(test, practice.admin.email, requestId);
    t.equal(response.statusCode, 400);
    const rows = await run(test, sql`select * from audit_events where request_id = ${requestId}`);
    t.equal(rows.length, 1);
    t.match(rows[0], {
      action: 'auth.login_failed',
      outcome: 'denied',
      http_status: 400,
      actor_type: 'user',
      actor_id: practice.admin.id,
      actor_organization_id: practice.id,
      resource_type: 'user',
      resource_id: practice.admin.id,
    });
    await test.login(practice.admin.email, defaultPassword);
  });

  t.test('an unknown email: auth.login_failed, denied, by an anonymous actor', async (t) => {
    const requestId = `unknown-email-${randomBytes(4).toString('hex')}`;
    const response = await failedLogin(test, unknownEmail(), requestId);
    t.equal(response.statusCode, 400);
    const rows = await run(test, sql`select * from audit_events where request_id = ${requestId}`);
    t.equal(rows.length, 1);
    t.match(rows[0], { action: 'auth.login_failed', outcome: 'denied', http_status: 400, actor_type: 'anonymous', actor_id: null });
    t.ok(rows[0]!.client_address, 'with the client address');
  });

  t.test('a bad client secret: auth.client_failed, denied', async (t) => {
    const client = await test.create(`/v1/organizations/${officeA.id}/api-clients`, officeA.admin.token, { name: 'EHR', scopes: ['referrals:read'] });
    const requestId = `bad-secret-${randomBytes(4).toString('hex')}`;
    const response = await test.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'cs_wrong' },
      headers: { 'x-request-id': requestId },
    });
    t.equal(response.statusCode, 401);
    const rows = await run(test, sql`select * from audit_events where request_id = ${requestId}`);
    t.equal(rows.length, 1);
    t.match(rows[0], { action: 'auth.client_failed', outcome: 'denied', http_status: 401, resource_type: 'api_client', resource_id: client.id });
  });

  t.test('network admins find them with action and outcome filters', async (t) => {
    const events = await listAll(networkAdmin, `&action=auth.login_failed&outcome=denied&actorId=${practice.admin.id}`);
    t.equal(events.length, 1);
  });
});

t.test('audit rows never hold clinical text or patient names', async (t) => {
  const tag = randomBytes(4).toString('hex');
  const secrets = {
    givenName: `Zenobia${tag}`,
    familyName: `Quillfeather${tag}`,
    reason: `Sciatica after a fall from a ladder ${tag}`,
    goal: `Walk the dog again ${tag}`,
    precaution: `Avoid pressure on the left hip ${tag}`,
    diagnosis: `Radiculopathy lumbar region ${tag}`,
    message: `Patient mentioned numbness in the toes ${tag}`,
    subjective: `Reports pain 8 of 10 after gardening ${tag}`,
    addendum: `Correction: numbness on the right foot ${tag}`,
  };
  const referral = await test.create('/v1/referrals', officeA.physician.token, referralBody({
    patient: { givenName: secrets.givenName, familyName: secrets.familyName, birthDate: '1961-07-04', sex: 'male' },
    diagnoses: [{ code: 'M54.16', display: secrets.diagnosis }],
    reason: secrets.reason,
    goals: [secrets.goal],
    precautions: [secrets.precaution],
  }));
  await expectStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
  await test.create(`/v1/referrals/${referral.id}/messages`, officeA.physician.token, { body: secrets.message });
  const report = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, {
    visitDate: new Date().toISOString().slice(0, 10),
    subjective: secrets.subjective,
    objective: 'Taut bands',
    assessment: 'Improving',
    plan: 'Continue',
    painBefore: 8,
    painAfter: 5,
    techniquesApplied: ['trigger_point'],
    minutes: 60,
  });
  await test.create(`/v1/referrals/${referral.id}/progress-reports/${report.id}/addenda`, practice.therapist.token, { text: secrets.addendum });
  await expectStatus(await get(`/v1/referrals/${referral.id}/messages`, practice.therapist.token), 200, 'messages');
  await expectStatus(await get(`/v1/patients/${referral.patientId}`, officeA.physician.token), 200, 'patient');

  const events = await listAll(networkAdmin, `&patientId=${referral.patientId}`);
  t.same(
    [...new Set(events.map((event) => event.action))].sort(),
    ['message.create', 'message.list', 'patient.create', 'patient.read', 'progress_report.addendum', 'progress_report.create', 'referral.accept', 'referral.create'],
    'every step was audited against the patient',
  );
  const rows = (await run<{ text: string }>(test, sql`select a::text as text from audit_events a`)).map((row) => row.text);
  for (const [what, secret] of Object.entries(secrets)) {
    t.notOk(rows.some((row) => row.includes(secret)), `no audit row contains the ${what}`);
  }
});
