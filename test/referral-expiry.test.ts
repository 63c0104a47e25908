// Expiry of referrals (SPEC §3): a referral whose expiresOn has passed expires on the sweep, by the
// system, audited; it can no longer be accepted or sent before the sweep runs; and overdue
// referrals expire when the service starts again, without calling the sweep.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { referrals as referralsTable } from '../src/db/schema.js';
import { auditEvents } from './fixtures/database.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { isoDate } from './fixtures/referral-bodies.js';
import { assertMoved, referralMoves } from './fixtures/referral-moves.js';
import { buildTestApp, testConfig, testDatabaseServer, TestApp } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

const { read, history, request, must, makeOverdue, inStatus } = referralMoves(test, office, practice);

/** "a sent", "an accepted": the article for a status in test names. */
const a = (status: string) => `${/^[aeiou]/.test(status) ? 'an' : 'a'} ${status}`;

t.test('expiry', async (t) => {
  for (const status of ['sent', 'accepted', 'in_progress'] as const) {
    t.test(`${a(status)} referral whose expiresOn has passed expires on the sweep, by the system, audited`, async (t) => {
      const referral = await inStatus(status);
      await makeOverdue(referral.id);
      t.equal((await read(referral.id)).status, status, 'not yet expired before the sweep');
      t.ok((await test.app.expireReferrals()) >= 1, 'the sweep reports what it expired');
      const expired = await read(referral.id);
      t.match(expired, { status: 'expired', version: referral.version + 1 });
      t.match((await history(referral.id)).at(-1), {
        action: 'expire',
        fromStatus: status,
        toStatus: 'expired',
        version: referral.version + 1,
        actor: { type: 'system', id: null, organizationId: null },
      });
      const audited = await auditEvents(test, { action: 'referral.expire', resourceId: referral.id });
      t.equal(audited.length, 1, 'one referral.expire audit event');
      t.match(audited[0], { actorType: 'system', outcome: 'success', patientId: referral.patientId });
      t.equal(await test.app.expireReferrals(), 0, 'a second sweep finds nothing');
    });
  }

  for (const status of ['draft', 'declined'] as const) {
    t.test(`${a(status)} referral past its expiresOn is left alone by the sweep`, async (t) => {
      const referral = await inStatus(status);
      await makeOverdue(referral.id);
      await test.app.expireReferrals();
      const now = await read(referral.id);
      t.match(now, { status, version: referral.version });
    });
  }

  t.test('a sent referral past its expiresOn cannot be accepted while the sweep has not run yet', async (t) => {
    const referral = await inStatus('sent');
    await makeOverdue(referral.id);
    const response = await request(referral.id, 'accept', practice.therapist.token, {});
    t.equal(response.statusCode, 409, 'answers 409');
    t.not((await read(referral.id)).status, 'accepted', 'the overdue referral was not accepted');
    await test.app.expireReferrals();
  });

  t.test('a draft past its expiresOn cannot be sent until the expiry is extended', async (t) => {
    const referral = await inStatus('draft');
    await makeOverdue(referral.id);
    const response = await request(referral.id, 'send', office.physician.token);
    t.equal(response.statusCode, 409, `answers 409 (got ${response.statusCode})`);
    t.equal((await read(referral.id)).status, 'draft', 'still a draft');
    if ((await read(referral.id)).status === 'draft') {
      await must(referral.id, 'amend', office.physician.token, { expiresOn: isoDate(30) });
      t.equal(assertMoved(t, await request(referral.id, 'send', office.physician.token)).status, 'sent', 'sent once the expiry is extended');
    }
    await test.app.expireReferrals();
  });

  t.test('a referral expiring today is still open', async (t) => {
    const referral = await inStatus('sent');
    await test.app.db.update(referralsTable).set({ startDate: isoDate(-40), expiresOn: isoDate(0) }).where(eq(referralsTable.id, referral.id));
    await test.app.expireReferrals();
    t.equal((await read(referral.id)).status, 'sent');
  });

  t.test('overdue referrals expire when the service starts again, without calling the sweep', async (t) => {
    const referral = await inStatus('accepted');
    await makeOverdue(referral.id);
    const [row] = await test.app.db.select({ status: referralsTable.status }).from(referralsTable).where(eq(referralsTable.id, referral.id));
    t.equal(row!.status, 'accepted', 'overdue but not expired before the restart');

    let restarted: Awaited<ReturnType<typeof buildApp>>;
    if (testDatabaseServer) {
      // PostgreSQL: a second process on the same database.
      restarted = await buildApp({ config: testConfig({ DATABASE_URL: test.config.databaseUrl! }) });
    } else {
      // PGlite: a copy of the data folder as it is now, opened by a fresh app.
      const dump = await test.app.database.dumpDataDir!();
      const [again] = await test.app.db.select({ status: referralsTable.status }).from(referralsTable).where(eq(referralsTable.id, referral.id));
      t.equal(again!.status, 'accepted', 'the copy was taken before any sweep');
      restarted = await buildApp({ config: testConfig({ DATA_DIR: 'memory://' }), pgliteTemplate: dump });
    }
    t.teardown(() => restarted.close());
    const fresh = new TestApp(restarted, test.config);
    const token = await fresh.login(office.physician.email);
    const response = await fresh.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token });
    t.equal(response.statusCode, 200);
    t.match(response.json(), { status: 'expired', version: referral.version + 1 });
    const events = (await fresh.request({ method: 'GET', url: `/v1/referrals/${referral.id}/history`, token })).json().data;
    t.match(events.at(-1), { action: 'expire', fromStatus: 'accepted', toStatus: 'expired', actor: { type: 'system' } });
    const audited = await auditEvents(fresh, { action: 'referral.expire', resourceId: referral.id });
    t.equal(audited.length, 1, 'audited by the restarted service');
  });
});
