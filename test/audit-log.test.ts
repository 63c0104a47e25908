// Reading the audit log (SPEC §7): filters, the NDJSON export, "who saw this patient" in one
// query, who may read what (admins only, each their own organization's), failed sign-ins, and no
// clinical text or patient name in any row. The chain's integrity: audit-chain.test.ts.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { systemAuditContext } from '../src/modules/audit/audit-log.js';
import { chainIds, failedLogin, listAuditEvents, sequenceAuditLog, verifyChain } from './fixtures/audit-log.js';
import { auditEvents } from './fixtures/database.js';
import { createOffice, createPractice, type OfficeFixture } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, defaultPassword, type Json, type TestApp, type TestResponse as Response } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const officeA = await createOffice(test, networkAdmin);
const officeB = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const foreignPractice = await createPractice(test, networkAdmin);

const get = (url: string, token: string, headers: Record<string, string> = {}) => test.request({ method: 'GET', url, token, headers });
const run = <T extends Record<string, unknown> = Json>(app: TestApp, query: ReturnType<typeof sql>) => app.app.database.rows<T>(query);
const referralOrder = (overrides: Json = {}) => referralBody({ practiceId: practice.id, send: true, ...overrides });
/** A referral sent at once by the office's physician to `practice`. */
const sentReferral = (office: OfficeFixture = officeA, overrides: Json = {}) => test.create('/v1/referrals', office.physician.token, referralOrder(overrides));
const listAll = (token: string, query = '') => listAuditEvents(test, token, query);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);
const unknownEmail = () => `nobody.${randomBytes(4).toString('hex')}@nowhere.example`;

// Seven failed sign-ins with unknown emails, as the chain's tests (audit-chain.test.ts) leave in a
// log: anonymous events for the network admin to read, among the sign-in events the cursor walks.
for (let attempt = 0; attempt < 7; attempt++) await failedLogin(test, unknownEmail());

t.test('GET /v1/audit-events filters', async (t) => {
  const office = await createOffice(test, networkAdmin);
  const first = await sentReferral(office);
  const second = await sentReferral(office);
  requireStatus(await get(`/v1/referrals/${first.id}`, practice.therapist.token), 200, 'therapist read');
  requireStatus(await get(`/v1/referrals/${first.id}`, foreignPractice.therapist.token), 404, 'foreign read');
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
    const big = (requireStatus(await get('/v1/audit-events?limit=200&action=auth.', networkAdmin), 200, 'big page')).data as Json[];
    t.ok(big.length > 4 && big.length < 200, `${big.length} sign-in events`);
    const walked: Json[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Json = requireStatus(await get(`/v1/audit-events?limit=2&action=auth.${cursor ? `&cursor=${cursor}` : ''}`, networkAdmin), 200, 'page');
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
  requireStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'read');

  async function exported(t: Test, token: string, query: string): Promise<{ response: Response; events: Json[] }> {
    const response = await get(`/v1/audit-events/export?${query}`, token);
    t.equal(response.statusCode, 200, `export ${query}`);
    const lines = response.body.split('\n');
    t.equal(lines.pop(), '', 'every line ends with a newline');
    return { response, events: lines.map((line) => JSON.parse(line)) };
  }

  t.test('content type, one parseable event per line, each with id, actor, action and leafIndex', async (t) => {
    await sequenceAuditLog(test);
    const { response, events } = await exported(t, networkAdmin, `patientId=${referral.patientId}`);
    t.match(response.headers['content-type'], /^application\/x-ndjson/);
    t.match(response.headers['content-disposition'], /attachment/);
    t.ok(events.length >= 3);
    for (const event of events) {
      t.ok(Number.isInteger(event.id) && typeof event.actor === 'object' && typeof event.action === 'string' && Number.isInteger(event.leafIndex), `line ${event.id} is a full event`);
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
    await sequenceAuditLog(test);
    const total = (await chainIds(test)).length;
    t.strictSame(await verifyChain(test, networkAdmin), { valid: true, treeSize: total, unsequenced: 0 });
  });
});

t.test("who saw this patient: GET /v1/audit-events/viewers", async (t) => {
  const referral = await sentReferral(officeA, { practiceId: practice.id });
  const patientId = referral.patientId as string;
  requireStatus(await get(`/v1/referrals/${referral.id}`, practice.therapist.token), 200, 'therapist read');
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
  requireStatus(await get(`/v1/referrals/${referral.id}`, foreignPractice.therapist.token), 404, 'foreign read');
  requireStatus(await get(`/v1/referrals/${referral.id}`, officeB.physician.token), 404, 'other office read');

  const viewers = async (token: string, id = patientId) => requireStatus(await get(`/v1/audit-events/viewers?patientId=${id}`, token), 200, 'viewers');

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
    requireStatus(await get(`/v1/referrals/${referral.id}/history`, practice.therapist.token), 200, 'history');
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
  requireStatus(await get(`/v1/referrals/${ownPatient.id}`, practice.therapist.token), 200, 'read own');
  requireStatus(await get(`/v1/referrals/${foreignPatient.id}`, practice.therapist.token), 200, 'read foreign');
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
    requireStatus(await get(`/v1/referrals/${foreign.id}`, officeA.staff.token), 404, 'foreign read');
    requireStatus(await get(`/v1/referrals/${missingId}`, officeA.staff.token), 404, 'missing read');

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
  const referral = await test.create('/v1/referrals', officeA.physician.token, referralOrder({
    patient: { givenName: secrets.givenName, familyName: secrets.familyName, birthDate: '1961-07-04', sex: 'male' },
    diagnoses: [{ code: 'M54.16', display: secrets.diagnosis }],
    reason: secrets.reason,
    goals: [secrets.goal],
    precautions: [secrets.precaution],
  }));
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: { acknowledgedPrecautions: true } }), 200, 'accept');
  await test.create(`/v1/referrals/${referral.id}/messages`, officeA.physician.token, { body: secrets.message });
  const report = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNoteBody({ subjective: secrets.subjective }));
  await test.create(`/v1/referrals/${referral.id}/progress-reports/${report.id}/addenda`, practice.therapist.token, { text: secrets.addendum });
  requireStatus(await get(`/v1/referrals/${referral.id}/messages`, practice.therapist.token), 200, 'messages');
  requireStatus(await get(`/v1/patients/${referral.patientId}`, officeA.physician.token), 200, 'patient');

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
