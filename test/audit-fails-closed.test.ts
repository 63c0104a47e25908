// Audit fails closed: a change's audit events are written in its transaction (and queued for the
// sequencer there, migration 0019); should that write fail, the change is not made.
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { recordFigure } from './hardening/figures.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

/** A referral for a patient of this family name, sent to the practice's therapist at once. */
const referralFor = (familyName: string): Json =>
  referralBody({ patient: { givenName: 'Maria', familyName, birthDate: '1978-04-02', sex: 'female' }, therapistId: practice.therapist.id, send: true });

async function count(table: 'referrals' | 'patients' | 'messages' | 'webhook_events' | 'audit_events'): Promise<number> {
  const [row] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.raw(table)}`);
  return row!.n;
}

/** Entries queued for the sequencer whose event does not exist: what a half-written audit would leave. */
async function orphanedQueueEntries(): Promise<number> {
  const [row] = await test.app.database.rows<{ n: number }>(
    sql`select count(*)::int as n from audit_unsequenced u where not exists (select 1 from audit_events e where e.id = u.event_id)`,
  );
  return row!.n;
}

/** Makes the audit log refuse one action, as a full disk or a broken trigger would. */
async function refuseAudit(action: string) {
  const name = `refuse_${action.replace('.', '_')}`;
  await test.app.database.rows(sql.raw(`alter table audit_events add constraint ${name} check (action <> '${action}') not valid`));
  return () => test.app.database.rows(sql.raw(`alter table audit_events drop constraint ${name}`));
}

/** Changes attempted with their audit write failing, and those that landed all the same. */
const tally = { attempted: 0, refused: 0, landed: 0 };

function assertFailedCleanly(t: Test, response: TestResponse) {
  tally.attempted++;
  if (response.statusCode === 500) tally.refused++;
  t.equal(response.statusCode, 500, 'the change is refused as a server error');
  t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
  t.notMatch(response.body, /audit_events|constraint|refuse_|insert|select/i, 'naming no table, constraint or SQL');
}

t.test('a referral whose audit event cannot be written is not created, nor its patient, nor its webhook event', async (t) => {
  const created = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralFor('Before') });
  t.equal(created.statusCode, 201, 'with the audit log working, the same request creates the referral');

  const before = { referrals: await count('referrals'), patients: await count('patients'), events: await count('webhook_events'), audit: await count('audit_events') };
  const restore = await refuseAudit('referral.create');
  const refused = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralFor('Refused') });
  assertFailedCleanly(t, refused);
  t.same(
    { referrals: await count('referrals'), patients: await count('patients'), events: await count('webhook_events'), pending: await orphanedQueueEntries() },
    { referrals: before.referrals, patients: before.patients, events: before.events, pending: 0 },
    'no referral, no patient, no outbox event, nothing left waiting',
  );
  if ((await count('referrals')) !== before.referrals) tally.landed++;
  await restore();

  const again = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralFor('After') });
  t.equal(again.statusCode, 201, 'once the audit log works again, so do creates');
  t.ok((await count('audit_events')) > before.audit, 'and they are audited');
});

t.test('a message whose audit event cannot be written is not posted', async (t) => {
  const referral = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralFor('Thread') });
  const url = `/v1/referrals/${referral.json().id}/messages`;
  const before = await count('messages');
  const restore = await refuseAudit('message.create');
  const refused = await test.request({ method: 'POST', url, token: office.physician.token, payload: { body: 'Please call the patient before the first session.' } });
  assertFailedCleanly(t, refused);
  t.equal(await count('messages'), before, 'no message');
  if ((await count('messages')) !== before) tally.landed++;
  const thread = await test.request({ method: 'GET', url, token: office.physician.token });
  t.same(thread.json().data, [], 'the thread is still empty');
  await restore();
});

// Every kind of change, made with its audit write failing: none may land (issue 6, item 14).
t.test('no kind of change lands when its audit event cannot be written', async (t) => {
  const referralOf = async (familyName: string, send = true) =>
    (await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: { ...referralFor(familyName), send } })).json();
  const statusOf = async (id: string) => {
    const [row] = await test.app.database.rows<{ status: string }>(sql`select status from referrals where id = ${id}`);
    return row?.status;
  };
  const countWhere = async (table: string, column: string, value: string) => {
    const [row] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.raw(table)} where ${sql.raw(column)} = ${value}`);
    return row!.n;
  };
  const accepted = await referralOf('Accepted');
  await test.request({ method: 'POST', url: `/v1/referrals/${accepted.id}/accept`, token: practice.therapist.token, payload: {} });
  // Something unread for the therapist to mark read.
  await test.request({ method: 'POST', url: `/v1/referrals/${accepted.id}/messages`, token: office.physician.token, payload: { body: 'First visit booked?' } });

  const changes: Array<{ action: string; method: 'POST' | 'PATCH'; url: () => Promise<string>; token: string; payload: Json; landed: () => Promise<boolean> }> = [];
  const draft = await referralOf('Draft', false);
  const sent = await referralOf('Sent');
  changes.push(
    { action: 'patient.create', method: 'POST', url: async () => '/v1/patients', token: office.physician.token,
      payload: { givenName: 'Audit', familyName: 'Refused', birthDate: '1980-01-01', sex: 'female' },
      landed: async () => (await countWhere('patients', 'family_name', 'Refused')) > 0 },
    { action: 'referral.amend', method: 'PATCH', url: async () => `/v1/referrals/${draft.id}`, token: office.physician.token,
      payload: { visitsAuthorized: 20 },
      landed: async () => (await countWhere('referrals', 'id', draft.id)) > 0 && (await test.app.database.rows<{ v: number }>(sql`select visits_authorized as v from referrals where id = ${draft.id}`))[0]!.v === 20 },
    { action: 'referral.send', method: 'POST', url: async () => `/v1/referrals/${draft.id}/send`, token: office.physician.token, payload: {},
      landed: async () => (await statusOf(draft.id)) !== 'draft' },
    { action: 'referral.accept', method: 'POST', url: async () => `/v1/referrals/${sent.id}/accept`, token: practice.therapist.token, payload: {},
      landed: async () => (await statusOf(sent.id)) !== 'sent' },
    { action: 'referral.cancel', method: 'POST', url: async () => `/v1/referrals/${sent.id}/cancel`, token: office.physician.token, payload: { reason: 'No longer needed' },
      landed: async () => (await statusOf(sent.id)) !== 'sent' },
    { action: 'progress_report.create', method: 'POST', url: async () => `/v1/referrals/${accepted.id}/progress-reports`, token: practice.therapist.token,
      payload: visitNoteBody(),
      landed: async () => (await countWhere('progress_reports', 'referral_id', accepted.id)) > 0 },
    { action: 'message.mark_read', method: 'POST', url: async () => `/v1/referrals/${accepted.id}/messages/read`, token: practice.therapist.token, payload: {},
      landed: async () => (await countWhere('message_read_markers', 'referral_id', accepted.id)) > 0 },
  );

  for (const change of changes) {
    const restore = await refuseAudit(change.action);
    const response = await test.request({ method: change.method, url: await change.url(), token: change.token, payload: change.payload });
    await restore();
    tally.attempted++;
    if (response.statusCode === 500) tally.refused++;
    t.equal(response.statusCode, 500, `${change.action}: refused (${response.body.slice(0, 160)})`);
    if (await change.landed()) {
      tally.landed++;
      t.fail(`${change.action} landed without its audit event`);
    }
  }
  t.equal(await orphanedQueueEntries(), 0, 'nothing left queued for the sequencer without its event');
  recordFigure({
    item: 14,
    check: 'Audit fails closed',
    figure: `${tally.attempted} kinds of change made with their audit write failing: ${tally.refused} refused, ${tally.landed} landed without their audit row`,
    pass: tally.landed === 0 && tally.refused === tally.attempted && tally.attempted === changes.length + 2,
  });
});
