// GET /v1/events (SPEC §14.7): the events webhooks carry, for apps that pull. Access is checked per
// event for the caller; the cursor is the caller's own and never skips an event committed out of
// order; `wait` holds the request until an event arrives; a referral's updatedAt and sync position
// move with its thread, and it shows the caller's activity.
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t from 'tap';
import { addTherapist } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, createOffice, createPractice, testDatabaseServer, type Json, type TestApp } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id);

type FeedAnswer = { data: { id: string; type: string; timestamp: string; data: Json }[]; nextCursor: string };

const feed = (app: TestApp, token: string, query = '') => app.request({ method: 'GET', url: `/v1/events${query}`, token });

async function page(token: string, query = '', app = test): Promise<FeedAnswer> {
  return requireStatus(await feed(app, token, query), 200, `GET /v1/events${query}`) as FeedAnswer;
}

/** Everything the caller's feed holds after `cursor`, followed page by page; and the cursor at its end. */
async function follow(token: string, cursor?: string, limit = 500, app = test): Promise<{ events: FeedAnswer['data']; cursor: string }> {
  const events: FeedAnswer['data'] = [];
  let after = cursor;
  for (;;) {
    const answer = await page(token, `?limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`, app);
    events.push(...answer.data);
    if (!answer.nextCursor) throw new Error(`GET /v1/events gave no cursor: ${JSON.stringify(answer)}`);
    after = answer.nextCursor;
    if (answer.data.length < limit) return { events, cursor: after };
  }
}

async function acceptedReferral(therapist = practice.therapist): Promise<Json> {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ send: true, therapistId: therapist.id }));
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: therapist.token, payload: {} }), 200, 'accept');
  return referral;
}

const say = (referralId: string, token: string, body = 'How is the patient doing?') => test.create(`/v1/referrals/${referralId}/messages`, token, { body });

t.test('an office and its therapist follow the events of their referral, in order, each once', async (t) => {
  const start = { office: (await follow(office.physician.token)).cursor, therapist: (await follow(practice.therapist.token)).cursor };
  const referral = await acceptedReferral();
  const message = await say(referral.id, office.physician.token);
  const note = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNoteBody());

  const seenByOffice = await follow(office.physician.token, start.office);
  t.same(
    seenByOffice.events.map((event) => event.type),
    ['referral.sent', 'referral.accepted', 'message.created', 'progress_report.created'],
    'the office sees each event of the referral once, in the order they happened',
  );
  const [sent, , said, noted] = seenByOffice.events;
  t.equal(sent!.data.referralId, referral.id, 'events name their referral');
  t.equal(said!.data.id, message.id, 'a message event names the message');
  t.equal(noted!.data.id, note.id, 'a visit note event names the note');
  t.notOk(JSON.stringify(seenByOffice.events).includes('How is the patient doing'), 'events are thin: no clinical text');
  t.match(sent!.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'timestamps are RFC 3339 UTC');

  const [delivered] = await test.app.database.rows<{ payload: Json }>(sql`select payload from webhook_events where id = ${said!.id}::uuid`);
  t.same({ type: said!.type, timestamp: said!.timestamp, data: said!.data }, delivered!.payload, 'each event is the payload webhooks carry, under the id webhooks send as webhook-id');

  const seenByTherapist = await follow(practice.therapist.token, start.therapist);
  t.same(seenByTherapist.events.map((event) => event.id), seenByOffice.events.map((event) => event.id), 'the accepting therapist sees the same events');

  const again = await page(office.physician.token, `?after=${encodeURIComponent(seenByOffice.cursor)}`);
  t.same(again.data, [], 'following the cursor, nothing is shown twice');
  t.ok(again.nextCursor, 'and the cursor to keep following is still given');
  const later = await say(referral.id, practice.therapist.token, 'Patient reports less pain.');
  const next = await page(office.physician.token, `?after=${encodeURIComponent(again.nextCursor)}`);
  t.same(next.data.map((event) => event.data.id), [later.id], 'the next event comes on the cursor of an empty answer');
});

t.test('each caller sees only the events of referrals they may see now', async (t) => {
  const start = {
    otherOffice: (await follow(otherOffice.physician.token)).cursor,
    colleague: (await follow(colleague.token)).cursor,
    admin: (await follow(practice.admin.token)).cursor,
  };
  const referral = await acceptedReferral();
  await say(referral.id, office.physician.token);

  t.same((await follow(otherOffice.physician.token, start.otherOffice)).events, [], 'another office sees none of them');
  t.same((await follow(colleague.token, start.colleague)).events, [], "a colleague therapist sees none of another therapist's referral (SPEC §6)");
  const admin = await follow(practice.admin.token, start.admin);
  t.same(admin.events.map((event) => event.type), ['referral.sent', 'referral.accepted', 'message.created'], 'the practice admin sees the practice’s referrals');
  t.ok(admin.events.every((event) => event.data.referralId === referral.id), 'and only that referral');

  const denied = await test.request({ method: 'GET', url: '/v1/events', token: networkAdmin });
  t.equal(denied.statusCode, 403, 'a network admin, who takes part in no referral, has no feed');
});

t.test('a referral moved away from a therapist leaves their feed', async (t) => {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ send: true, therapistId: colleague.id }));
  const before = await follow(colleague.token);
  t.ok(before.events.some((event) => event.data.referralId === referral.id), 'the targeted therapist sees the referral being sent');
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/decline`, token: colleague.token, payload: { reason: 'Fully booked' } }), 200, 'decline');
  requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/reroute`, token: office.physician.token, payload: { therapistId: practice.therapist.id } }),
    200,
    'reroute',
  );
  const after = await follow(colleague.token);
  t.notOk(after.events.some((event) => event.data.referralId === referral.id), 'once rerouted to someone else, its events are no longer shown to them, old ones included');
});

t.test('cursors are the caller’s own and cannot be altered', async (t) => {
  const { cursor } = await follow(office.physician.token);
  assertProblem(t, await feed(test, office.staff.token, `?after=${encodeURIComponent(cursor)}`), 400, ['query.after'], "a colleague's cursor");
  assertProblem(t, await feed(test, otherOffice.physician.token, `?after=${encodeURIComponent(cursor)}`), 400, ['query.after'], "another office's cursor");
  const tampered = cursor.slice(0, -3) + (cursor.endsWith('A') ? 'BBB' : 'AAA');
  assertProblem(t, await feed(test, office.physician.token, `?after=${encodeURIComponent(tampered)}`), 400, ['query.after'], 'an altered cursor');
  assertProblem(t, await feed(test, office.physician.token, `?after=${Buffer.from('["1","x"]').toString('base64url')}`), 400, ['query.after'], 'a made-up cursor');
  assertProblem(t, await feed(test, office.physician.token, '?types=referral.sent,nothing.here'), 400, ['query.types'], 'an unknown event type');
  assertProblem(t, await feed(test, office.physician.token, '?wait=31'), 400, ['query.wait'], 'a wait over 30 s');
  assertProblem(t, await feed(test, office.physician.token, '?limit=0'), 400, ['query.limit'], 'a limit of 0');
  assertProblem(t, await feed(test, office.physician.token, '?since=yesterday'), 400, ['query.since'], 'an unknown parameter');
});

t.test('types filters the feed, and the cursor moves past what it skips', async (t) => {
  const start = (await follow(office.physician.token)).cursor;
  const referral = await acceptedReferral();
  await say(referral.id, practice.therapist.token);
  const messagesOnly = await page(office.physician.token, `?types=message.created&after=${encodeURIComponent(start)}`);
  t.same(messagesOnly.data.map((event) => event.type), ['message.created'], 'only the types asked for');
  const rest = await page(office.physician.token, `?types=message.created&after=${encodeURIComponent(messagesOnly.nextCursor)}`);
  t.same(rest.data, [], 'the skipped events do not come back');
});

t.test('limit pages through the feed without losing or repeating an event', async (t) => {
  const start = (await follow(office.physician.token)).cursor;
  const referral = await acceptedReferral();
  for (let i = 0; i < 5; i += 1) await say(referral.id, office.physician.token, `Message ${i}`);
  const whole = await follow(office.physician.token, start);
  const paged = await follow(office.physician.token, start, 2);
  t.equal(whole.events.length, 7, 'sent, accepted and five messages');
  t.same(paged.events.map((event) => event.id), whole.events.map((event) => event.id), 'pages of two hold the same events in the same order');
});

t.test('wait holds the request until an event arrives', async (t) => {
  const referral = await acceptedReferral();
  const { cursor } = await follow(practice.therapist.token);
  const started = Date.now();
  const polled = feed(test, practice.therapist.token, `?wait=20&after=${encodeURIComponent(cursor)}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const message = await say(referral.id, office.physician.token, 'Please call me about the patient.');
  const answer = requireStatus(await polled, 200, 'long poll') as FeedAnswer;
  const waited = Date.now() - started;
  t.same(answer.data.map((event) => event.data.id), [message.id], 'the long poll answers with the new event');
  t.ok(waited < 5000, `as soon as it committed (${waited} ms, not the 20 s wait)`);

  const quiet = Date.now();
  const empty = await page(practice.therapist.token, `?wait=1&after=${encodeURIComponent(answer.nextCursor)}`);
  t.same(empty.data, [], 'with nothing new, an empty answer');
  t.ok(Date.now() - quiet >= 900, 'after the wait');
  t.ok(empty.nextCursor, 'with a cursor to go on');
});

t.test('a long poll held when the service closes ends at once', async (t) => {
  const own = await buildTestApp(t);
  const admin = await own.loginAsAdmin();
  const ownOffice = await createOffice(own, admin);
  const { cursor } = await follow(ownOffice.physician.token, undefined, 500, own);
  const started = Date.now();
  const polled = feed(own, ownOffice.physician.token, `?wait=30&after=${encodeURIComponent(cursor)}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const closed = own.app.close();
  const answer = await polled;
  await closed;
  t.equal(answer.statusCode, 200, 'the poll is answered, not cut off');
  t.ok(answer.json().nextCursor, 'with a cursor to resume from');
  t.ok(Date.now() - started < 5000, `within moments of the close (${Date.now() - started} ms), not after the 30 s wait`);
});

t.test('events older than EVENT_RETENTION_DAYS leave the feed', async (t) => {
  const own = await buildTestApp(t, { env: { EVENT_RETENTION_DAYS: '2' } });
  const admin = await own.loginAsAdmin();
  const ownOffice = await createOffice(own, admin);
  const ownPractice = await createPractice(own, admin);
  const old = await own.create('/v1/referrals', ownOffice.physician.token, referralBody({ send: true, therapistId: ownPractice.therapist.id }));
  await own.app.database.rows(sql`update event_feed set occurred_at = now() - interval '3 days' where referral_id = ${old.id}::uuid`);
  const fresh = await own.create('/v1/referrals', ownOffice.physician.token, referralBody({ send: true, therapistId: ownPractice.therapist.id }));
  const { events } = await follow(ownOffice.physician.token, undefined, 500, own);
  t.same(events.map((event) => event.data.referralId), [fresh.id], 'without a cursor the feed starts at the oldest event still kept');
  const [{ n }] = (await own.app.database.rows<{ n: number }>(sql`select count(*)::int as n from event_feed where referral_id = ${old.id}::uuid`)) as [{ n: number }];
  t.equal(n, 2, 'the expired entries (the office’s and the practice’s) are still stored until the sweep');
  t.equal(await own.app.eventsFeed.removeExpired(), 2, 'the sweep removes them');
  const left = await own.app.database.rows<{ referral_id: string }>(sql`select referral_id from event_feed`);
  t.ok(left.length > 0 && left.every((row) => row.referral_id === fresh.id), 'and only them');
  await own.app.close();
});

t.test('a referral’s updatedAt, sync position and activity move with its thread', async (t) => {
  const referral = await acceptedReferral();
  const get = async (token: string) => requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token }), 200, 'GET referral');
  const before = await get(office.physician.token);
  t.same(before.activity, { lastAt: null, unreadMessages: 0, unacknowledgedUrgent: 0 }, 'no activity yet');
  // The office's app, synced up to now: every page read, its last syncCursor kept.
  const syncPage = async (cursor?: string): Promise<Json> =>
    requireStatus(await test.request({ method: 'GET', url: `/v1/referrals?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token: office.physician.token }), 200, 'sync');
  let page = await syncPage();
  while (page.nextCursor) page = await syncPage(page.syncCursor);
  const syncedTo: string = page.syncCursor;
  const since = before.updatedAt;

  await new Promise((resolve) => setTimeout(resolve, 20));
  await say(referral.id, practice.therapist.token, 'Patient cancelled Tuesday.');
  const after = await get(office.physician.token);
  t.ok(after.updatedAt > before.updatedAt, 'a new message moves updatedAt');
  t.equal(after.version, before.version, 'but not the version: the order itself did not change');
  t.equal(after.activity.unreadMessages, 1, 'the office has one unread message');
  t.equal(after.activity.lastAt, after.updatedAt, 'activity.lastAt is when it was written');
  t.equal((await get(practice.therapist.token)).activity.unreadMessages, 0, "the author's own message is not unread for them");

  const updated = await test.request({ method: 'GET', url: `/v1/referrals?updatedSince=${encodeURIComponent(since)}&limit=200`, token: office.physician.token });
  t.ok(updated.json().data.some((row: Json) => row.id === referral.id), 'updatedSince finds the referral after a message');
  const synced = await syncPage(syncedTo);
  t.ok(synced.data.some((row: Json) => row.id === referral.id), 'the sync feed, from where the app left off, brings the referral again');

  await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages/read`, token: office.physician.token });
  t.equal((await get(office.physician.token)).activity.unreadMessages, 0, 'reading the thread clears the count');

  const note = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNoteBody());
  const beforeAddendum = await get(office.physician.token);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await test.create(`/v1/referrals/${referral.id}/progress-reports/${note.id}/addenda`, practice.therapist.token, { text: 'Pain was 5, not 6.' });
  const afterAddendum = await get(office.physician.token);
  t.ok(afterAddendum.updatedAt > beforeAddendum.updatedAt, 'an addendum moves updatedAt too (it sends no event)');
});

t.test('the feed under concurrent writers: every committed event once, none foreign', async (t) => {
  const referrals = await Promise.all([acceptedReferral(), acceptedReferral(), acceptedReferral()]);
  const foreign = await test.create('/v1/referrals', otherOffice.physician.token, referralBody({ send: true, therapistId: colleague.id }));
  const start = (await follow(office.physician.token)).cursor;
  const seen: string[] = [];
  let cursor = start;
  let writing = true;
  const reader = (async () => {
    while (writing) {
      const answer = await page(office.physician.token, `?limit=7&after=${encodeURIComponent(cursor)}`);
      seen.push(...answer.data.map((event) => event.id));
      cursor = answer.nextCursor;
      // As an app polls: between reads, timers (the audit log's group commit among them) get their turn.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  await Promise.all(
    [...referrals, foreign].map(async (referral, writer) => {
      for (let i = 0; i < 12; i += 1) {
        await say(referral.id, writer === 3 ? otherOffice.physician.token : i % 2 ? office.physician.token : practice.therapist.token, `Message ${writer}.${i}`);
      }
    }),
  );
  writing = false;
  await reader;
  seen.push(...(await follow(office.physician.token, cursor)).events.map((event) => event.id));
  const committed = await test.app.database.rows<{ id: string }>(sql`
    select e.id from webhook_events e where e.type = 'message.created' and e.referral_id = any(${sql.param(referrals.map((referral) => referral.id))}::uuid[])`);
  t.equal(seen.length, new Set(seen).size, 'no event shown twice');
  t.same(new Set(seen), new Set(committed.map((row) => row.id)), `every committed message event was shown (${committed.length})`);
});

t.test('an event committed after a later-numbered one is not skipped (PostgreSQL)', { skip: testDatabaseServer ? false : 'the embedded database has one connection: no two transactions overlap there' }, async (t) => {
  const referral = await acceptedReferral();
  const { cursor } = await follow(office.physician.token);
  const url = (test.config.databaseUrl ?? '') as string;
  const side = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => side.end());
  // A slow writer: its transaction takes its id first, writes an event for the office last.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let written!: () => void;
  const wrote = new Promise<void>((resolve) => (written = resolve));
  const slow = side.begin(async (tx) => {
    await tx`select pg_current_xact_id()`;
    const [event] = await tx`insert into webhook_events (type, referral_id, payload) values ('message.created', ${referral.id}, ${tx.json({ type: 'message.created', timestamp: '2026-12-06T00:00:00Z', data: { resource: 'message', id: referral.id, referralId: referral.id, status: 'accepted', organizations: [office.id], url: `/v1/referrals/${referral.id}/messages` } })}) returning id`;
    await tx`insert into event_feed (organization_id, event_id, referral_id, type) values (${office.id}, ${event!.id}, ${referral.id}, 'message.created')`;
    written();
    await released;
    return event!.id as string;
  });
  await wrote;
  const quick = await say(referral.id, office.physician.token, 'Written after the slow one began, committed before it.');
  const held = await page(office.physician.token, `?after=${encodeURIComponent(cursor)}`);
  t.same(held.data, [], 'while the older transaction runs, the newer event is held back');
  release();
  const slowId = await slow;
  const after = await page(office.physician.token, `?after=${encodeURIComponent(held.nextCursor)}`);
  t.same(after.data.map((event) => event.id), [slowId, (await test.app.database.rows<{ id: string }>(sql`select id from webhook_events where payload->'data'->>'id' = ${quick.id}`))[0]!.id], 'both come, the older transaction first');
});
