// Audit fails closed: a change's audit events are chained into the log as its transaction commits
// (migration 0005); should that write fail, the commit fails and the change is not made.
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { buildTestApp, createOffice, createPractice, type Json, type TestApp } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const referralBody = (familyName: string): Json => ({
  patient: { givenName: 'Maria', familyName, birthDate: '1978-04-02', sex: 'female' },
  diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
  reason: 'Chronic low back pain with lumbar paraspinal trigger points',
  techniques: ['trigger_point'],
  bodyRegions: ['lower_back'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 60,
  therapistId: practice.therapist.id,
  send: true,
});

async function count(table: 'referrals' | 'patients' | 'messages' | 'webhook_events' | 'audit_pending' | 'audit_events'): Promise<number> {
  const [row] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.raw(table)}`);
  return row!.n;
}

/** Makes the audit log refuse one action, as a full disk or a broken trigger would. */
async function refuseAudit(action: string) {
  const name = `refuse_${action.replace('.', '_')}`;
  await test.app.database.rows(sql.raw(`alter table audit_events add constraint ${name} check (action <> '${action}') not valid`));
  return () => test.app.database.rows(sql.raw(`alter table audit_events drop constraint ${name}`));
}

function assertFailedCleanly(t: Test, response: Awaited<ReturnType<TestApp['request']>>) {
  t.equal(response.statusCode, 500, 'the change is refused as a server error');
  t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
  t.notMatch(response.body, /audit_events|constraint|refuse_|insert|select/i, 'naming no table, constraint or SQL');
}

t.test('a referral whose audit event cannot be written is not created, nor its patient, nor its webhook event', async (t) => {
  const created = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody('Before') });
  t.equal(created.statusCode, 201, 'with the audit log working, the same request creates the referral');

  const before = { referrals: await count('referrals'), patients: await count('patients'), events: await count('webhook_events'), audit: await count('audit_events') };
  const restore = await refuseAudit('referral.create');
  const refused = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody('Refused') });
  assertFailedCleanly(t, refused);
  t.same(
    { referrals: await count('referrals'), patients: await count('patients'), events: await count('webhook_events'), pending: await count('audit_pending') },
    { referrals: before.referrals, patients: before.patients, events: before.events, pending: 0 },
    'no referral, no patient, no outbox event, nothing left waiting',
  );
  await restore();

  const again = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody('After') });
  t.equal(again.statusCode, 201, 'once the audit log works again, so do creates');
  t.ok((await count('audit_events')) > before.audit, 'and they are audited');
});

t.test('a message whose audit event cannot be written is not posted', async (t) => {
  const referral = await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody('Thread') });
  const url = `/v1/referrals/${referral.json().id}/messages`;
  const before = await count('messages');
  const restore = await refuseAudit('message.create');
  const refused = await test.request({ method: 'POST', url, token: office.physician.token, payload: { body: 'Please call the patient before the first session.' } });
  assertFailedCleanly(t, refused);
  t.equal(await count('messages'), before, 'no message');
  const thread = await test.request({ method: 'GET', url, token: office.physician.token });
  t.same(thread.json().data, [], 'the thread is still empty');
  await restore();
});
