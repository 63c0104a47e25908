// Messages reach webhooks in thread order (issue 12, item 13): many messages posted at once to
// one referral's thread are numbered in the thread and queued in the outbox in one and the same
// order, so a partner receives message.created in the order GET .../messages shows them. On
// PostgreSQL the posts really run side by side on the pool's connections; on the embedded
// database they take turns, and the test still holds.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { createOffice, createPractice } from './fixtures/network.js';
import { startReceiver } from './fixtures/partner-ehr.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { buildTestApp, type Json } from './helper.js';

const messageCount = 120;

// The worker runs only when the test calls runOnce, and may deliver to the loopback receiver.
// Posts wait their turn for a connection and for the thread's lock: a 2-core machine shared with
// other tests must not turn that wait into 503s.
const test = await buildTestApp(t, {
  env: { ROLE: 'api', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', DATABASE_POOL_SIZE: '20', DATABASE_POOL_WAIT_MS: '60000', DATABASE_STATEMENT_TIMEOUT_MS: '60000' },
});
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);

/** A partner EHR on 127.0.0.1; what counts is the message ids of the message.created events it gets. */
const partner = await startReceiver(t);
const received = () => partner.requests.filter((request) => request.payload.type === 'message.created').map((request) => request.payload.data.id);

t.test('POST /v1/referrals/{id}/messages › concurrent messages are queued and delivered to webhooks in thread order', async (t) => {
  const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, { url: partner.url, eventTypes: ['message.created'] });
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ send: true, practiceId: practice.id }));
  const accepted = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} });
  t.equal(accepted.statusCode, 200, 'the therapist accepts');

  // Both sides of the thread write at once.
  const authors = [office.physician.token, practice.therapist.token];
  const posted = await Promise.all(
    Array.from({ length: messageCount }, (_, index) =>
      test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: authors[index % 2]!, payload: { body: `Message ${index}` } }),
    ),
  );
  t.same(
    posted.filter((response) => response.statusCode !== 201).map((response) => `${response.statusCode} ${response.body}`),
    [],
    `all ${messageCount} messages are taken`,
  );

  const thread: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/messages?limit=200${cursor ? `&cursor=${cursor}` : ''}`, token: office.physician.token });
    const body: Json = page.json();
    thread.push(...body.data.map((message: Json) => message.id));
    cursor = body.nextCursor;
  } while (cursor);
  t.equal(thread.length, messageCount, 'the thread holds every message');

  // The outbox: the endpoint's deliveries of this referral, in the order the worker takes them.
  const queued = await test.app.database.rows<{ id: string }>(sql`
    select e.payload -> 'data' ->> 'id' as id from webhook_deliveries d join webhook_events e on e.id = d.event_id
    where d.endpoint_id = ${endpoint.id}::uuid and d.referral_id = ${referral.id}::uuid and e.type = 'message.created'
    order by d.seq`);
  const position = new Map(thread.map((id, index) => [id, index]));
  const inversions = queued.filter((row, index) => index > 0 && position.get(row.id)! < position.get(queued[index - 1]!.id)!).length;
  t.equal(inversions, 0, `the outbox queues the events in thread order (${inversions} of ${queued.length} queued before an earlier message)`);
  t.same(
    queued.map((row) => row.id),
    thread,
    'outbox order = thread order',
  );

  // And the partner receives them so.
  for (let round = 0; round < messageCount * 2 && (await test.app.webhookWorker.runOnce()) > 0; round++);
  t.same(received(), thread, 'the receiver got message.created in thread order');
});
