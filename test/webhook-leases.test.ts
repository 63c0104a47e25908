// Issue 17: leases are short and renewed while a delivery is in flight. A killed worker's
// deliveries come back within a lease (seconds, not a minute), and a live worker's slow delivery,
// outlasting many leases, is never taken by another worker.
import { eq } from 'drizzle-orm';
import t from 'tap';
import { webhookDeliveries } from '../src/db/schema.js';
import { DeliveryQueue } from '../src/modules/webhooks/delivery-queue.js';
import { DeliveryWorker } from '../src/modules/webhooks/delivery-worker.js';
import { createOffice, createPractice } from './fixtures/network.js';
import { startReceiver } from './fixtures/partner-ehr.js';
import { buildWebhookApp, ping, registerEndpoint } from './fixtures/webhooks.js';
import type { TestApp } from './helper.js';

const leaseSeconds = 3;
const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_LEASE_SECONDS: String(leaseSeconds), WEBHOOK_POLL_MS: '100', WEBHOOK_TIMEOUT_MS: '20000' });
const admin = await test.loginAsAdmin();
const office = await createOffice(test, admin);
await createPractice(test, admin);

/** A worker as another process would run one: its own loop, its lease renewals. */
function startWorker(app: TestApp): DeliveryWorker {
  const worker = new DeliveryWorker(app.app.db, app.app.database, {
    config: app.config.webhooks,
    log: app.app.log,
    secretBox: app.app.dataEncryption,
    referralsTakenPartIn: (organization, referralIds) => app.app.referrals.referralsOrganizationTakesPartIn(organization, referralIds),
    units: app.app.unitOfWork,
    formats: app.app.webhookFormats,
  });
  return worker;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a killed worker: its claimed deliveries go out again within a lease', async (t) => {
  const hook = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventIds = [await ping(test, office.admin.token, endpoint.id), await ping(test, office.admin.token, endpoint.id)];
  // The killed worker: it claimed both and then nothing more, neither sending nor renewing.
  const killed = new DeliveryQueue(test.app.db, test.app.database, leaseSeconds);
  const claimed = await killed.claim({ limit: 10 });
  t.equal(claimed.length, 2, 'the killed worker held both');
  const claimedAt = performance.now();

  const survivor = startWorker(test);
  await survivor.start();
  t.teardown(() => survivor.stop());
  while (hook.requests.length < 2 && performance.now() - claimedAt < 15_000) await sleep(20);
  const recoveredAfter = performance.now() - claimedAt;
  t.same(hook.requests.map((request) => request.id).sort(), [...eventIds].sort(), 'both were delivered by the surviving worker');
  t.comment(`recovered ${Math.round(recoveredAfter)} ms after the claim (lease ${leaseSeconds} s)`);
  t.ok(recoveredAfter >= leaseSeconds * 1000 - 100, 'not before the lease ran out');
  t.ok(recoveredAfter < leaseSeconds * 1000 + 2_000, 'within two seconds of it');
  await survivor.stop(); // lets its finishes commit
  const rows = await Promise.all(eventIds.map(async (eventId) => (await test.app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId)))[0]!));
  t.same(rows.map((row) => ({ status: row.status, attempts: row.attempts })), [{ status: 'succeeded', attempts: 2 }, { status: 'succeeded', attempts: 2 }], 'each succeeded on the second claim');
});

t.test('a live worker renews its leases: a delivery slower than three leases is sent once, by it alone', async (t) => {
  const slowMs = leaseSeconds * 3 * 1000;
  const hook = await startReceiver(t, (_request, response) => {
    setTimeout(() => response.end('ok'), slowMs);
  });
  const endpoint = await registerEndpoint(t, test, office.admin.token, { url: hook.url, eventTypes: ['referral.sent'] });
  const eventId = await ping(test, office.admin.token, endpoint.id);
  const first = startWorker(test);
  const second = startWorker(test);
  await first.start();
  while (hook.requests.length === 0) await sleep(20);
  // The second worker looks for expired leases all the while the first is waiting on the receiver.
  await second.start();
  t.teardown(() => second.stop());
  await sleep(slowMs + 500);
  await first.stop();
  t.equal(hook.requests.length, 1, 'one request in all: the lease never ran out while the first worker waited');
  const [row] = await test.app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId));
  t.same({ status: row!.status, attempts: row!.attempts }, { status: 'succeeded', attempts: 1 }, 'succeeded on its one claim');
});
