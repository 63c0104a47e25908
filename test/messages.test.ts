// /v1/referrals/{id}/messages: one thread per referral between the prescribing office and the
// therapist side, with per-user read markers (SPEC §5, §6, §7).
import { sql } from 'drizzle-orm';
import t from 'tap';
import { createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, type Json, type TestResponse as Response } from './helper.js';
type Caller = { id: string; token: string };

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);

/** A referral from `office`, sent to `practice` unless another target is given. */
async function sentReferral(target: Json = { practiceId: practice.id }, send = true): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ send, ...target }));
}

async function accept(referralId: string, token: string): Promise<Json> {
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/accept`, token, payload: {} }), 200, 'accept');
}

/** A referral to `practice`, accepted by practice.therapist. */
async function acceptedReferral(): Promise<Json> {
  const referral = await sentReferral();
  return accept(referral.id, practice.therapist.token);
}

const messagesUrl = (referralId: string) => `/v1/referrals/${referralId}/messages`;
const postMessage = (referralId: string, token: string, payload: Json) => test.request({ method: 'POST', url: messagesUrl(referralId), token, payload });
const listMessages = (referralId: string, token: string, query = '') => test.request({ method: 'GET', url: `${messagesUrl(referralId)}${query}`, token });
const markRead = (referralId: string, token: string, payload?: Json) =>
  test.request({ method: 'POST', url: `${messagesUrl(referralId)}/read`, token, ...(payload === undefined ? {} : { payload }) });

/** Posts a message that must be taken and returns it. */
async function say(referralId: string, caller: Caller, body: string): Promise<Json> {
  const response = await postMessage(referralId, caller.token, { body });
  if (response.statusCode !== 201) throw new Error(`posting a message failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

/** The whole thread and the caller's unread count, in one big page. */
async function thread(referralId: string, caller: Caller): Promise<{ data: Json[]; unread: number }> {
  const response = await listMessages(referralId, caller.token, '?limit=200');
  if (response.statusCode !== 200) throw new Error(`GET messages failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

const unreadOf = async (referralId: string, caller: Caller) => (await thread(referralId, caller)).unread;
const run = (query: ReturnType<typeof sql>) => test.app.database.rows(query);

t.test('POST /v1/referrals/{id}/messages', async (t) => {
  const referral = await acceptedReferral();
  const participants = {
    'the prescribing physician': { ...office.physician, organizationId: office.id },
    'office staff of the prescribing office': { ...office.staff, organizationId: office.id },
    'the accepting therapist': { ...practice.therapist, organizationId: practice.id },
    'the admin of the targeted practice': { ...practice.admin, organizationId: practice.id },
  };
  for (const [who, caller] of Object.entries(participants)) {
    t.test(`${who} posts to the thread`, async (t) => {
      const body = `Hello from ${who}`;
      const response = await postMessage(referral.id, caller.token, { body });
      t.equal(response.statusCode, 201);
      const message = response.json();
      t.match(message, { referralId: referral.id, body, author: { type: 'user', id: caller.id, organizationId: caller.organizationId } });
      t.ok(Date.parse(message.createdAt) <= Date.now());
      const listed = await thread(referral.id, office.physician);
      t.same(listed.data.at(-1), message, 'the message is the newest of the thread');
    });
  }

  t.test('the targeted practice takes part before anyone accepts', async (t) => {
    const pending = await sentReferral();
    t.equal((await postMessage(pending.id, practice.therapist.token, { body: 'When would the patient like to start?' })).statusCode, 201);
    t.equal((await postMessage(pending.id, practice.admin.token, { body: 'We can book next week.' })).statusCode, 201);
    t.equal((await thread(pending.id, office.staff)).data.length, 2);
  });

  t.test('takes a body of 1 and of 5000 characters', async (t) => {
    t.equal((await postMessage(referral.id, office.staff.token, { body: 'k' })).statusCode, 201);
    const long = 'x'.repeat(5000);
    const response = await postMessage(referral.id, office.staff.token, { body: long });
    t.equal(response.statusCode, 201);
    t.equal(response.json().body, long);
  });

  const rejected: [string, Json, string][] = [
    ['an empty body', { body: '' }, 'body'],
    ['a body of 5001 characters', { body: 'x'.repeat(5001) }, 'body'],
    ['a missing body', {}, 'body'],
    ['a body that is not text', { body: 42 }, 'body'],
    ['an unknown field', { body: 'hi', urgent: true }, 'urgent'],
    ['a server-owned id', { body: 'hi', id: '00000000-0000-4000-8000-000000000000' }, 'id'],
    ['a server-owned author', { body: 'hi', author: { type: 'user', id: office.physician.id } }, 'author'],
    ['a server-owned createdAt', { body: 'hi', createdAt: '2020-01-01T00:00:00Z' }, 'createdAt'],
  ];
  for (const [what, payload, field] of rejected) {
    t.test(`rejects ${what} with 400 naming ${field}, posting nothing`, async (t) => {
      const before = (await thread(referral.id, office.physician)).data.length;
      assertProblem(t, await postMessage(referral.id, practice.therapist.token, payload), 400, [field]);
      t.equal((await thread(referral.id, office.physician)).data.length, before, 'nothing was posted');
    });
  }
});

t.test('GET /v1/referrals/{id}/messages', async (t) => {
  const referral = await acceptedReferral();
  const posted: Json[] = [];
  const speakers = [office.physician, practice.therapist, office.staff, practice.admin, practice.therapist];
  for (const [index, speaker] of speakers.entries()) posted.push(await say(referral.id, speaker, `message ${index + 1}`));

  t.test('every participant reads the whole thread, oldest first', async (t) => {
    for (const reader of [office.physician, office.staff, office.admin, practice.therapist, practice.admin]) {
      const { data } = await thread(referral.id, reader);
      t.same(data.map((message) => message.id), posted.map((message) => message.id));
      t.same(data.map((message) => message.body), ['message 1', 'message 2', 'message 3', 'message 4', 'message 5']);
    }
  });

  t.test('limit=2 walks every message once, in order', async (t) => {
    const walked: Json[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await listMessages(referral.id, office.physician.token, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      t.equal(response.statusCode, 200);
      const page: Json = response.json();
      t.ok(page.data.length <= 2, 'at most two a page');
      t.type(page.unread, 'number', 'each page carries the unread count');
      walked.push(...page.data);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages <= 5);
    t.equal(pages, 3);
    t.same(walked.map((message) => message.id), posted.map((message) => message.id));
  });

  t.test('rejects a forged cursor with 400 naming query.cursor', async (t) => {
    const cursor = Buffer.from(JSON.stringify(['not-a-number'])).toString('base64url');
    assertProblem(t, await listMessages(referral.id, office.physician.token, `?cursor=${cursor}`), 400, ['query.cursor']);
  });

  t.test('rejects limit=0 and limit=201 with 400 naming query.limit', async (t) => {
    assertProblem(t, await listMessages(referral.id, office.physician.token, '?limit=0'), 400, ['query.limit']);
    assertProblem(t, await listMessages(referral.id, office.physician.token, '?limit=201'), 400, ['query.limit']);
  });

  t.test('each read of the thread is audited as message.list with the patient id', async (t) => {
    await thread(referral.id, office.admin);
    const reads = await auditEvents(test, { action: 'message.list', actorId: office.admin.id, resourceId: referral.id });
    t.ok(reads.length >= 1);
    t.match(reads.at(-1), { outcome: 'success', resourceType: 'referral', patientId: referral.patientId, httpStatus: 200 });
  });
});

t.test('read markers and unread counts', async (t) => {
  // Subtests run after this body's awaits, so every message they rely on is posted here first.
  const empty = await acceptedReferral();
  const referral = await acceptedReferral();
  const m1 = await say(referral.id, practice.therapist, 'Session 1 went well');
  const m2 = await say(referral.id, practice.therapist, 'Patient reports numbness after session 2');
  const m3 = await say(referral.id, practice.therapist, 'Please advise');

  t.test('an empty thread: nothing unread, nothing read', async (t) => {
    t.equal(await unreadOf(empty.id, office.physician), 0);
    const response = await markRead(empty.id, office.physician.token);
    t.equal(response.statusCode, 200);
    t.same(response.json(), { unread: 0, lastReadMessageId: null });
  });

  t.test('a message is unread for everyone but its author', async (t) => {
    t.equal(await unreadOf(referral.id, practice.therapist), 0, 'the author');
    t.equal(await unreadOf(referral.id, office.physician), 3);
    t.equal(await unreadOf(referral.id, office.staff), 3);
    t.equal(await unreadOf(referral.id, office.admin), 3);
    t.equal(await unreadOf(referral.id, practice.admin), 3, 'the practice admin, on the author’s side');
  });

  t.test('{upTo} marks read up to and including that message, for the caller only', async (t) => {
    const response = await markRead(referral.id, office.physician.token, { upTo: m1.id });
    t.equal(response.statusCode, 200);
    t.same(response.json(), { unread: 2, lastReadMessageId: m1.id });
    t.equal(await unreadOf(referral.id, office.physician), 2);
    t.equal(await unreadOf(referral.id, office.staff), 3, 'office staff keep their own count');
    t.equal(await unreadOf(referral.id, practice.admin), 3);
    const events = await auditEvents(test, { action: 'message.mark_read', actorId: office.physician.id });
    t.match(events.at(-1), { outcome: 'success', resourceId: referral.id, patientId: referral.patientId });
  });

  t.test('an empty body marks the whole thread read', async (t) => {
    const response = await markRead(referral.id, office.physician.token);
    t.equal(response.statusCode, 200);
    t.same(response.json(), { unread: 0, lastReadMessageId: m3.id });
    t.equal(await unreadOf(referral.id, office.physician), 0);
    t.equal(await unreadOf(referral.id, office.staff), 3, 'office staff keep their own count');
  });

  t.test('{} marks the whole thread read too', async (t) => {
    const response = await markRead(referral.id, practice.admin.token, {});
    t.same(response.json(), { unread: 0, lastReadMessageId: m3.id });
  });

  t.test('markers never move back', async (t) => {
    const response = await markRead(referral.id, office.physician.token, { upTo: m1.id });
    t.equal(response.statusCode, 200);
    t.same(response.json(), { unread: 0, lastReadMessageId: m3.id });
    t.equal(await unreadOf(referral.id, office.physician), 0);
    const again = await markRead(referral.id, office.physician.token, { upTo: m2.id });
    t.same(again.json(), { unread: 0, lastReadMessageId: m3.id });
  });

  t.test('a new message is unread for all but its author; the caller’s own messages never count', async (t) => {
    const m4 = await say(referral.id, office.staff, 'Seen, thanks — physician will call');
    t.equal(await unreadOf(referral.id, office.physician), 1);
    t.equal(await unreadOf(referral.id, practice.therapist), 1);
    t.equal(await unreadOf(referral.id, practice.admin), 1);
    const read = await markRead(referral.id, practice.therapist.token);
    t.same(read.json(), { unread: 0, lastReadMessageId: m4.id });
    t.equal(await unreadOf(referral.id, office.physician), 1, 'the physician still has it unread');
  });

  t.test('rejects upTo of a message of another referral with 400 naming upTo, moving nothing', async (t) => {
    const other = await acceptedReferral();
    const foreign = await say(other.id, practice.therapist, 'Another patient');
    const before = await unreadOf(referral.id, office.staff);
    assertProblem(t, await markRead(referral.id, office.staff.token, { upTo: foreign.id }), 400, ['upTo']);
    t.equal(await unreadOf(referral.id, office.staff), before);
    t.equal(await unreadOf(other.id, office.staff), 1, 'nor in the other thread');
  });

  t.test('rejects an upTo that names no message, or is not an id, with 400 naming upTo', async (t) => {
    assertProblem(t, await markRead(referral.id, office.staff.token, { upTo: '00000000-0000-4000-8000-000000000000' }), 400, ['upTo']);
    assertProblem(t, await markRead(referral.id, office.staff.token, { upTo: 'latest' }), 400, ['upTo']);
  });

  t.test('rejects an unknown field with 400 naming it', async (t) => {
    assertProblem(t, await markRead(referral.id, office.staff.token, { all: true }), 400, ['all']);
  });
});

t.test(
  'posting a message does not mark the earlier messages of others read',
  async (t) => {
    const referral = await acceptedReferral();
    const fromTherapist = await say(referral.id, practice.therapist, 'Urgent: patient reports new numbness in the left leg');
    await say(referral.id, office.physician, 'Please send the visit notes when you can');
    t.equal(await unreadOf(referral.id, office.physician), 1, "the therapist's message is still unread for the physician");
    const state = await markRead(referral.id, office.physician.token, { upTo: fromTherapist.id });
    t.same(state.json(), { unread: 0, lastReadMessageId: fromTherapist.id });
  },
);

t.test('only participants have the thread', async (t) => {
  const referral = await acceptedReferral();
  await say(referral.id, office.physician, 'Welcome aboard');

  const strangers: Record<string, Caller> = {
    'a therapist of another practice': otherPractice.therapist,
    'the admin of another practice': otherPractice.admin,
    'a physician of another office': otherOffice.physician,
    'office staff of another office': otherOffice.staff,
    'a network admin': { id: networkAdminId, token: networkAdmin },
  };
  for (const [who, caller] of Object.entries(strangers)) {
    t.test(`answers ${who} with 404 on every message route, each audited as denied`, async (t) => {
      const calls: [string, Response][] = [
        ['message.create', await postMessage(referral.id, caller.token, { body: 'Let me in' })],
        ['message.list', await listMessages(referral.id, caller.token)],
        ['message.mark_read', await markRead(referral.id, caller.token)],
      ];
      for (const [action, response] of calls) {
        assertProblem(t, response, 404);
        const denied = await auditEvents(test, { action, outcome: 'denied', actorId: caller.id, resourceId: referral.id });
        t.equal(denied.length, 1, `${action} audited as denied`);
        t.match(denied[0], { httpStatus: 404, resourceType: 'referral' });
      }
      t.equal((await thread(referral.id, office.physician)).data.length, 1, 'nothing was posted');
    });
  }

  t.test('answers a referral that does not exist with 404', async (t) => {
    assertProblem(t, await listMessages('00000000-0000-4000-8000-000000000000', office.physician.token), 404);
  });

  t.test('an open network offer: a matched therapist reads the referral but has no thread until they accept', async (t) => {
    const nearby = await createPractice(test, networkAdmin);
    const offer = await sentReferral({ network: { near: { lat: 45.5231, lng: -122.6765 }, radiusKm: 50 } });
    t.equal(offer.status, 'sent');
    await say(offer.id, office.physician, 'Looking for someone this week');

    t.equal((await test.request({ method: 'GET', url: `/v1/referrals/${offer.id}`, token: nearby.therapist.token })).statusCode, 200, 'the offer is visible');
    assertProblem(t, await listMessages(offer.id, nearby.therapist.token), 404);
    assertProblem(t, await postMessage(offer.id, nearby.therapist.token, { body: 'I could take this' }), 404);
    assertProblem(t, await markRead(offer.id, nearby.therapist.token), 404);
    t.equal((await thread(offer.id, office.physician)).data.length, 1, 'nothing was posted');

    await accept(offer.id, nearby.therapist.token);
    const response = await postMessage(offer.id, nearby.therapist.token, { body: 'Accepted — first visit on Tuesday' });
    t.equal(response.statusCode, 201, 'after accepting they post');
    const { data } = await thread(offer.id, nearby.therapist);
    t.same(data.map((message) => message.body), ['Looking for someone this week', 'Accepted — first visit on Tuesday'], 'they read the whole thread');

    // Another therapist the offer was made to loses it once someone accepts.
    t.equal((await test.request({ method: 'GET', url: `/v1/referrals/${offer.id}`, token: practice.therapist.token })).statusCode, 404);
    assertProblem(t, await listMessages(offer.id, practice.therapist.token), 404);
  });

  t.test(
    "a draft's thread is the office's alone until the referral is sent",
    async (t) => {
      const draft = await sentReferral({ practiceId: practice.id }, false);
      t.equal(draft.status, 'draft');
      t.equal((await postMessage(draft.id, office.physician.token, { body: 'Note to self before sending' })).statusCode, 201);
      assertProblem(t, await listMessages(draft.id, practice.therapist.token), 404);
      assertProblem(t, await postMessage(draft.id, practice.admin.token, { body: 'Seen it early' }), 404);
      t.equal((await test.request({ method: 'GET', url: `/v1/referrals/${draft.id}`, token: practice.therapist.token })).statusCode, 404);
    },
  );
});

t.test('audit of messages', async (t) => {
  const referral = await acceptedReferral();
  const secret = 'Patient disclosed HIV status and asked about lymphatic drainage QX7-unique-marker';
  const message = await say(referral.id, practice.therapist, secret);
  await thread(referral.id, office.physician);
  await markRead(referral.id, office.physician.token, { upTo: message.id });

  t.test('message.create carries resourceType message, the message id and the patient id', async (t) => {
    const events = await auditEvents(test, { action: 'message.create', resourceId: message.id });
    t.equal(events.length, 1);
    t.match(events[0], {
      outcome: 'success',
      resourceType: 'message',
      patientId: referral.patientId,
      actorId: practice.therapist.id,
      actorOrganizationId: practice.id,
      httpStatus: 201,
    });
  });

  t.test('no audit row holds the message text, in any column', async (t) => {
    const rows = await run(sql`select * from audit_events`);
    t.ok(rows.length > 0);
    const needles = [secret, 'QX7-unique-marker', 'HIV status'];
    const leaking = rows.filter((row) => Object.values(row).some((value) => needles.some((needle) => JSON.stringify(value ?? null).includes(needle))));
    t.same(leaking, [], 'no row mentions the text');
  });
});

t.test('messages never change', async (t) => {
  const referral = await acceptedReferral();
  const message = await say(referral.id, office.physician, 'Original wording');

  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    t.test(`${method} on a message has no route (404 or 405)`, async (t) => {
      const response = await test.request({
        method,
        url: `${messagesUrl(referral.id)}/${message.id}`,
        token: office.physician.token,
        ...(method === 'DELETE' ? {} : { payload: { body: 'Edited' } }),
      });
      t.ok([404, 405].includes(response.statusCode), `answers ${response.statusCode}`);
    });
  }

  t.test('a direct SQL update of a message is refused by the database', async (t) => {
    await t.rejects(run(sql`update messages set body = 'Edited' where id = ${message.id}`));
  });

  t.test('a direct SQL delete of a message is refused by the database', async (t) => {
    await t.rejects(run(sql`delete from messages where id = ${message.id}`));
  });

  t.test('the message reads back as posted', async (t) => {
    t.same((await thread(referral.id, office.staff)).data, [message]);
  });
});
