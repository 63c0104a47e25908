// Hardening item 12, serialization and deadlock retries: a transaction that fails with 40001
// (serialization_failure) or 40P01 (deadlock_detected) is run again, at most 3 attempts in all,
// and if the last fails too the answer is 503 with Retry-After, never 500; either way nothing is
// half-written. (a) Deterministic: a trigger raises the error the first K times; (b) natural: many
// callers change the same referrals at once.
// Runs on the shared PostgreSQL server with a database of its own; the service is in-process.
// Run: npx tap test-faults/transaction-retries.test.ts --disable-coverage --timeout 600
import postgres from 'postgres';
import t, { type Test } from 'tap';

process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
// helper.ts reads TEST_DATABASE_URL when it is loaded, so it is imported after the line above.
const { buildTestApp, createOffice, createPractice, defaultPassword } = await import('../test/helper.js');
const { recordFigure } = await import('../test/hardening/figures.js');
type Json = Record<string, any>;

const maxAttempts = 3; // src/db/transaction-retry.ts
const concurrentRequests = 200;
const referralsInTheRace = 10;

const test = await buildTestApp(t, { env: { DATABASE_POOL_SIZE: '20' } });
const side = postgres(test.config.databaseUrl!, { max: 2, onnotice: () => {} });
t.teardown(() => side.end({ timeout: 1 }));
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const other = await createPractice(test, networkAdmin);

let tagSequence = 0;
const uniqueTag = () => `Retry${Date.now().toString(36)}${tagSequence++}`;
const referralBody = (familyName: string, target: Json = { therapistId: practice.therapist.id }): Json => ({
  patient: { givenName: 'Maria', familyName, birthDate: '1978-04-02', sex: 'female' },
  diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
  reason: 'Chronic low back pain',
  techniques: ['trigger_point'],
  bodyRegions: ['lower_back'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  send: true,
  ...target,
});

// The fault: a BEFORE trigger that raises the planned SQLSTATE while the sequence (which a
// rollback does not rewind) is within the planned number of failures. One plan at a time.
await side.unsafe(`
  create sequence fault_attempts;
  create table fault_plan (target_table text not null, target_id uuid, errcode text not null, failures int not null);
  create function fault_inject() returns trigger language plpgsql as $$
  declare
    plan fault_plan;
    row jsonb := to_jsonb(new);
  begin
    select * into plan from fault_plan where target_table = tg_table_name;
    if found and (plan.target_id is null or (row->>'id')::uuid = plan.target_id or (row->>'referral_id')::uuid = plan.target_id) then
      if nextval('fault_attempts') <= plan.failures then
        raise exception 'injected fault %', plan.errcode using errcode = plan.errcode;
      end if;
    end if;
    return new;
  end $$;
  create trigger fault_inject before insert or update on referrals for each row execute function fault_inject();
  create trigger fault_inject before insert on messages for each row execute function fault_inject();
`);

async function planFaults(table: 'referrals' | 'messages', errcode: '40001' | '40P01', failures: number, targetId: string | null = null) {
  await side.begin(async (tx) => {
    await tx`delete from fault_plan`;
    await tx`insert into fault_plan ${tx({ target_table: table, target_id: targetId, errcode, failures })}`;
    await tx`alter sequence fault_attempts restart with 1`;
  });
}

/** How many times the trigger fired since the plan: one per attempt of the transaction. */
async function attemptsMade(): Promise<number> {
  const [row] = await side<{ lastValue: string; isCalled: boolean }[]>`select last_value as "lastValue", is_called as "isCalled" from fault_attempts`;
  return row!.isCalled ? Number(row!.lastValue) : 0;
}

async function clearFaults() {
  await side`delete from fault_plan`;
}

const count = async (query: PromiseLike<readonly Record<string, unknown>[]>) => Number((await query)[0]!.n);

async function auditChain(): Promise<{ valid: boolean; treeSize?: number }> {
  const response = await test.request({ method: 'GET', url: '/v1/audit-events/verify', token: networkAdmin });
  if (response.statusCode !== 200) throw new Error(`verify answered ${response.statusCode} ${response.body}`);
  return response.json();
}

function assertUnavailable(t: Test, response: Awaited<ReturnType<typeof test.request>>) {
  t.equal(response.statusCode, 503, `answers 503, not 500${response.statusCode === 503 ? '' : `: ${response.body.slice(0, 300)}`}`);
  t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
  t.ok(response.headers['retry-after'], `with Retry-After (${response.headers['retry-after']})`);
  t.notMatch(response.body, /injected|fault_|40001|40P01|serializ|deadlock/i, 'naming no SQL, trigger or error code');
}

const deterministic: { name: string; attempts: number; status: number }[] = [];

t.test('deterministic: a trigger raises the conflict the first K times', async (t) => {
  t.teardown(clearFaults);

  t.test('create: 40001 twice, then success on the third attempt; one referral, one patient, one of each record', async (t) => {
    const familyName = uniqueTag();
    await planFaults('referrals', '40001', 2);
    const response = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody(familyName) });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'create, 40001 × 2', attempts, status: response.statusCode });
    t.equal(response.statusCode, 201, `created${response.statusCode === 201 ? '' : `: ${response.body.slice(0, 300)}`}`);
    t.equal(attempts, 3, 'in three attempts');
    const id = response.json().id as string;
    t.equal(await count(side`select count(*) as n from patients where family_name = ${familyName}`), 1, 'one patient registered');
    t.equal(await count(side`select count(*) as n from referrals r join patients p on p.id = r.patient_id where p.family_name = ${familyName}`), 1, 'one referral');
    t.same(
      (await side<{ action: string }[]>`select action from referral_events where referral_id = ${id} order by id`).map((row) => row.action),
      ['create', 'send'],
      'its history: create and send, once each',
    );
    t.equal(await count(side`select count(*) as n from webhook_events where referral_id = ${id}`), 1, 'one outbox event (referral.sent)');
    t.equal(await count(side`select count(*) as n from audit_events where resource_id = ${id} and action = 'referral.create' and outcome = 'success'`), 1, 'one audit event of the create');
    t.equal(await count(side`select count(*) as n from audit_unsequenced u where not exists (select 1 from audit_events e where e.id = u.event_id)`), 0, 'no audit event left waiting');
  });

  t.test('create: 40001 on every attempt; 503 with Retry-After after three, nothing written', async (t) => {
    const familyName = uniqueTag();
    const auditBefore = await count(side`select count(*) as n from audit_events where action in ('referral.create', 'patient.create') and outcome = 'success'`);
    const eventsBefore = await count(side`select count(*) as n from webhook_events`);
    await planFaults('referrals', '40001', 100);
    const response = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody(familyName) });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'create, 40001 always', attempts, status: response.statusCode });
    assertUnavailable(t, response);
    t.equal(attempts, maxAttempts, `gave up after ${maxAttempts} attempts (${attempts})`);
    t.equal(await count(side`select count(*) as n from patients where family_name = ${familyName}`), 0, 'no patient');
    t.equal(await count(side`select count(*) as n from webhook_events`), eventsBefore, 'no outbox event');
    t.equal(
      await count(side`select count(*) as n from audit_events where action in ('referral.create', 'patient.create') and outcome = 'success'`),
      auditBefore,
      'no audit event of a change that was not made',
    );
    t.equal(await count(side`select count(*) as n from audit_unsequenced u where not exists (select 1 from audit_events e where e.id = u.event_id)`), 0, 'nothing left waiting');
  });

  t.test('accept: 40P01 twice, then accepted; one transition, one event, one audit record', async (t) => {
    const referral = await test.create('/v1/referrals', office.physician.token, referralBody(uniqueTag()));
    await planFaults('referrals', '40P01', 2, referral.id);
    const response = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'accept, 40P01 × 2', attempts, status: response.statusCode });
    t.equal(response.statusCode, 200, `accepted${response.statusCode === 200 ? '' : `: ${response.body.slice(0, 300)}`}`);
    t.equal(attempts, 3, 'in three attempts');
    t.match(response.json(), { status: 'accepted', version: referral.version + 1 }, 'one version further');
    t.same(
      (await side<{ action: string }[]>`select action from referral_events where referral_id = ${referral.id} order by id`).map((row) => row.action),
      ['create', 'send', 'accept'],
      'one accept in its history',
    );
    t.equal(await count(side`select count(*) as n from webhook_events where referral_id = ${referral.id} and type = 'referral.accepted'`), 1, 'one referral.accepted event');
    t.equal(await count(side`select count(*) as n from audit_events where resource_id = ${referral.id} and action = 'referral.accept' and outcome = 'success'`), 1, 'one audit event of the accept');
  });

  t.test('accept: 40P01 on every attempt; 503 with Retry-After, the referral untouched', async (t) => {
    const referral = await test.create('/v1/referrals', office.physician.token, referralBody(uniqueTag()));
    await planFaults('referrals', '40P01', 100, referral.id);
    const response = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'accept, 40P01 always', attempts, status: response.statusCode });
    assertUnavailable(t, response);
    t.equal(attempts, maxAttempts, `gave up after ${maxAttempts} attempts (${attempts})`);
    const [row] = await side<{ status: string; version: number }[]>`select status, version from referrals where id = ${referral.id}`;
    t.same(row, { status: 'sent', version: referral.version }, 'still sent, same version');
    t.equal(await count(side`select count(*) as n from referral_events where referral_id = ${referral.id} and action = 'accept'`), 0, 'no accept in its history');
    t.equal(await count(side`select count(*) as n from webhook_events where referral_id = ${referral.id} and type = 'referral.accepted'`), 0, 'no referral.accepted event');
    t.equal(await count(side`select count(*) as n from audit_events where resource_id = ${referral.id} and action = 'referral.accept' and outcome = 'success'`), 0, 'no audit event of an accept');
    const retry = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} });
    t.equal(retry.statusCode, 200, 'the retry the client was asked for succeeds');
  });

  t.test('message: 40001 twice, then posted once', async (t) => {
    const referral = await test.create('/v1/referrals', office.physician.token, referralBody(uniqueTag()));
    await planFaults('messages', '40001', 2, referral.id);
    const response = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: office.physician.token, payload: { body: 'Please call the patient first.' } });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'message, 40001 × 2', attempts, status: response.statusCode });
    t.equal(response.statusCode, 201, `posted${response.statusCode === 201 ? '' : `: ${response.body.slice(0, 300)}`}`);
    t.equal(attempts, 3, 'in three attempts');
    t.equal(await count(side`select count(*) as n from messages where referral_id = ${referral.id}`), 1, 'one message');
    t.equal(await count(side`select count(*) as n from webhook_events where referral_id = ${referral.id} and type = 'message.created'`), 1, 'one message.created event');
    t.equal(await count(side`select count(*) as n from audit_events where action = 'message.create' and outcome = 'success' and resource_id = ${response.json().id}`), 1, 'one audit event');
  });

  t.test('message: 40P01 on every attempt; 503 with Retry-After, no message', async (t) => {
    const referral = await test.create('/v1/referrals', office.physician.token, referralBody(uniqueTag()));
    await planFaults('messages', '40P01', 100, referral.id);
    const response = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: office.physician.token, payload: { body: 'Please call the patient first.' } });
    const attempts = await attemptsMade();
    await clearFaults();
    deterministic.push({ name: 'message, 40P01 always', attempts, status: response.statusCode });
    assertUnavailable(t, response);
    t.equal(attempts, maxAttempts, `gave up after ${maxAttempts} attempts (${attempts})`);
    t.equal(await count(side`select count(*) as n from messages where referral_id = ${referral.id}`), 0, 'no message');
    t.equal(await count(side`select count(*) as n from webhook_events where referral_id = ${referral.id} and type = 'message.created'`), 0, 'no message.created event');
  });

  t.test('the audit log verifies', async (t) => {
    const chain = await auditChain();
    t.equal(chain.valid, true, `verify: ${JSON.stringify(chain)}`);
  });
});

t.test(`natural: ${concurrentRequests} conflicting state changes of ${referralsInTheRace} referrals at once`, async (t) => {
  // A second therapist in each practice, so that an open offer has rivals within a practice too.
  const addTherapist = async (practiceId: string, tag: string) => {
    const email = `${tag}.${uniqueTag().toLowerCase()}@practice.example`;
    const user = await test.create(`/v1/organizations/${practiceId}/users`, networkAdmin, {
      role: 'therapist',
      email,
      password: defaultPassword,
      name: `Therapist ${tag}`,
      license: { number: `MT-${tag}`, state: 'OR', expiresOn: '2028-12-31' },
      techniques: ['trigger_point'],
      acceptingReferrals: true,
      serviceRadiusKm: 25,
    });
    return { id: user.id as string, token: await test.login(email) };
  };
  const therapists = [
    { id: practice.therapist.id, token: practice.therapist.token },
    await addTherapist(practice.id, 'rival-a'),
    { id: other.therapist.id, token: other.therapist.token },
    await addTherapist(other.id, 'rival-b'),
  ];
  const network = { network: { techniques: ['trigger_point'], near: { lat: 45.5231, lng: -122.6765 }, radiusKm: 50 } };
  const referrals: Json[] = [];
  for (let i = 0; i < referralsInTheRace; i++) {
    // Half open network offers (every therapist may accept), half to one practice (its admin may decline, then the office reroutes).
    referrals.push(await test.create('/v1/referrals', office.physician.token, referralBody(uniqueTag(), i % 2 === 0 ? network : { practiceId: practice.id })));
  }

  type Call = { referralId: string; kind: string; run: () => ReturnType<typeof test.request> };
  const calls: Call[] = [];
  const pick = <T,>(list: T[]) => list[Math.floor(Math.random() * list.length)]!;
  const post = (url: string, token: string, payload?: Json, headers: Record<string, string> = {}) => () => test.request({ method: 'POST', url, token, headers, ...(payload ? { payload } : {}) });
  for (let i = 0; i < concurrentRequests; i++) {
    const referral = referrals[i % referrals.length]!;
    const base = `/v1/referrals/${referral.id}`;
    const therapist = pick(therapists);
    const choices: [string, () => ReturnType<typeof test.request>][] = [
      ['accept', post(`${base}/accept`, therapist.token, {})],
      ['accept', post(`${base}/accept`, practice.admin.token, { therapistId: practice.therapist.id })],
      ['accept-if-match', post(`${base}/accept`, therapist.token, {}, { 'if-match': `"${referral.version}"` })],
      ['decline', post(`${base}/decline`, therapist.token, { reason: 'No availability this month' })],
      ['decline', post(`${base}/decline`, practice.admin.token, { reason: 'Fully booked' })],
      ['cancel', post(`${base}/cancel`, office.physician.token, { reason: 'Patient moved away' })],
      ['reroute', post(`${base}/reroute`, office.physician.token, { practiceId: other.id })],
      ['amend', () => test.request({ method: 'PATCH', url: base, token: office.physician.token, payload: { visitsAuthorized: 13 + Math.floor(Math.random() * 80) } })],
      ['message', post(`${base}/messages`, office.physician.token, { body: `Note ${i}` })],
      ['message', post(`${base}/messages`, therapist.token, { body: `Reply ${i}` })],
    ];
    const [kind, run] = pick(choices);
    calls.push({ referralId: referral.id, kind, run });
  }

  const [deadlocksBefore] = await side<{ n: string }[]>`select deadlocks as n from pg_stat_database where datname = current_database()`;
  const started = Date.now();
  const responses = await Promise.all(calls.map(async (call) => ({ call, response: await call.run() })));
  const elapsed = Date.now() - started;
  const [deadlocksAfter] = await side<{ n: string }[]>`select deadlocks as n from pg_stat_database where datname = current_database()`;

  const byStatus = new Map<number, number>();
  for (const { response } of responses) byStatus.set(response.statusCode, (byStatus.get(response.statusCode) ?? 0) + 1);
  const allowed = new Set([200, 201, 404, 409, 412, 422, 503]);
  const unexpected = responses.filter(({ response }) => !allowed.has(response.statusCode));
  const serverErrors = responses.filter(({ response }) => response.statusCode >= 500 && response.statusCode !== 503);
  const unavailable = responses.filter(({ response }) => response.statusCode === 503);
  t.comment(`${responses.length} requests in ${elapsed} ms: ${JSON.stringify(Object.fromEntries(byStatus))}; deadlocks PostgreSQL detected: ${Number(deadlocksAfter!.n) - Number(deadlocksBefore!.n)}`);
  // Refusals that depend only on what a concurrent change did to the referral (an amendment now
  // below the current visitsAuthorized; an accept for a therapist whose share of the offer is gone).
  const stateDependent = (response: { statusCode: number; body: string }) =>
    response.statusCode === 400 && /must be higher than the current \d+|this referral was not sent to this therapist/.test(response.body);
  t.equal(serverErrors.length, 0, `0 surfaced 500s${serverErrors.length ? `: ${serverErrors.slice(0, 3).map(({ call, response }) => `${call.kind} ${response.statusCode} ${response.body.slice(0, 200)}`).join(' | ')}` : ''}`);
  // Decided (issue 6): a value judged against the referral as it now is (an amendment no longer above
  // the current visitsAuthorized; an accept for a therapist the referral is no longer offered to)
  // stays a 400 naming the field and the current value. A client that needs to know its view was
  // stale sends If-Match and gets 412.
  const unexplained = unexpected.filter(({ response }) => !stateDependent(response));
  t.equal(
    unexplained.length,
    0,
    `every answer is 2xx, 404, 409, 412, 422, 503 or a state-dependent 400${unexplained.length ? `: ${unexplained.slice(0, 3).map(({ call, response }) => `${call.kind} ${response.statusCode} ${response.body.slice(0, 240)}`).join(' | ')}` : ''}`,
  );
  t.ok(unavailable.every(({ response }) => response.headers['retry-after']), 'every 503 carries Retry-After');

  // Invariants, per referral.
  const legal = new Set(['draft', 'sent', 'accepted', 'declined', 'in_progress', 'completed', 'cancelled', 'expired']);
  const eventOf: Record<string, string> = { accept: 'referral.accepted', decline: 'referral.declined', cancel: 'referral.cancelled', amend: 'referral.amended' };
  const broken: string[] = [];
  for (const referral of referrals) {
    const [row] = await side<{ status: string; version: number; acceptedTherapistId: string | null }[]>`
      select status, version, accepted_therapist_id as "acceptedTherapistId" from referrals where id = ${referral.id}`;
    const history = await side<{ action: string; fromStatus: string | null; toStatus: string; version: number; changes: Json | null }[]>`
      select action, from_status as "fromStatus", to_status as "toStatus", version, changes from referral_events where referral_id = ${referral.id} order by id`;
    const problem = (what: string) => broken.push(`${referral.id}: ${what}`);
    if (!legal.has(row!.status)) problem(`status ${row!.status}`);
    if (history[0]?.action !== 'create' || history[0].toStatus !== 'draft') problem('history does not start with create');
    for (let i = 1; i < history.length; i++) {
      if (history[i]!.fromStatus !== history[i - 1]!.toStatus) problem(`event ${i} (${history[i]!.action}) from ${history[i]!.fromStatus} after ${history[i - 1]!.toStatus}`);
      // create and send of a referral sent at once share version 1; every later move is one version on.
      const expected = history[i]!.action === 'send' && i === 1 ? 1 : history[i - 1]!.version + 1;
      if (history[i]!.version !== expected) problem(`event ${i} (${history[i]!.action}) has version ${history[i]!.version}, expected ${expected}`);
    }
    const last = history.at(-1)!;
    if (last.toStatus !== row!.status || last.version !== row!.version) problem(`history ends at ${last.toStatus} v${last.version}, the referral is ${row!.status} v${row!.version}`);
    const accepts = history.filter((event) => event.action === 'accept');
    if (accepts.length > 1) problem(`${accepts.length} accepts`);
    if ((row!.acceptedTherapistId !== null) !== (accepts.length === 1)) problem(`accepted therapist ${row!.acceptedTherapistId} with ${accepts.length} accepts`);
    if (accepts[0] && (accepts[0].changes as { therapistId?: string } | null)?.therapistId !== row!.acceptedTherapistId) problem('the accepted therapist is not the one of the accept');

    // The outbox and the audit log saw each change exactly once.
    const events = await side<{ type: string; n: number }[]>`select type, count(*)::int as n from webhook_events where referral_id = ${referral.id} and type like 'referral.%' group by type`;
    const eventCount = (type: string) => events.find((event) => event.type === type)?.n ?? 0;
    for (const [action, type] of Object.entries(eventOf)) {
      const made = history.filter((event) => event.action === action).length;
      if (eventCount(type) !== made) problem(`${made} × ${action} but ${eventCount(type)} × ${type}`);
    }
    const sends = history.filter((event) => event.action === 'send' || event.action === 'reroute').length;
    if (eventCount('referral.sent') !== sends) problem(`${sends} sends and reroutes but ${eventCount('referral.sent')} × referral.sent`);
    const audited = await side<{ action: string; n: number }[]>`
      select action, count(*)::int as n from audit_events where resource_id = ${referral.id} and outcome = 'success' and action like 'referral.%' group by action`;
    const auditCount = (action: string) => audited.find((entry) => entry.action === action)?.n ?? 0;
    for (const action of ['accept', 'cancel', 'amend', 'reroute']) {
      const made = history.filter((event) => event.action === action).length;
      if (auditCount(`referral.${action}`) !== made) problem(`${made} × ${action} but ${auditCount(`referral.${action}`)} audited`);
    }
    const declines = history.filter((event) => event.action === 'decline' || event.action === 'decline_offer').length;
    if (auditCount('referral.decline') !== declines) problem(`${declines} declines but ${auditCount('referral.decline')} audited`);
    const posted = responses.filter(({ call, response }) => call.referralId === referral.id && call.kind === 'message' && response.statusCode === 201).length;
    const stored = await count(side`select count(*) as n from messages where referral_id = ${referral.id}`);
    if (posted !== stored) problem(`${posted} messages acknowledged, ${stored} stored`);
  }
  t.same(broken, [], 'each referral in one legal state, its history consistent with it, one accepted therapist at most, each change in the outbox and the audit log once');
  const chain = await auditChain();
  t.equal(chain.valid, true, `audit log valid (${chain.treeSize} events checked)`);

  const deterministicPass = deterministic.every(({ name, attempts, status }) => attempts === maxAttempts && (name.includes('always') ? status === 503 : status < 300));
  // The item's target is no surfaced 500 and intact invariants; the status a state-dependent
  // refusal gets is its own finding (the todo above), named in the figure.
  const pass =
    deterministicPass &&
    deterministic.length === 6 &&
    serverErrors.length === 0 &&
    unexpected.every(({ response }) => stateDependent(response)) &&
    broken.length === 0 &&
    chain.valid;
  recordFigure({
    item: 12,
    check: 'Serialization and deadlock retries',
    figure:
      `injected 40001/40P01: ${deterministic.map(({ name, attempts, status }) => `${name} → ${status} after ${attempts} attempts`).join('; ')}; ` +
      `${responses.length} concurrent conflicting changes of ${referrals.length} referrals: ${serverErrors.length} surfaced 500s, ${unavailable.length} × 503, ` +
      `${JSON.stringify(Object.fromEntries(byStatus))} (${unexpected.length} × 400 to a state-dependent refusal), ` +
      `${Number(deadlocksAfter!.n) - Number(deadlocksBefore!.n)} deadlocks detected by PostgreSQL; ${broken.length} invariant violations; audit chain ${chain.valid ? 'valid' : 'BROKEN'}`,
    pass,
  });
});
