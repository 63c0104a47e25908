// Concurrency on referrals (SPEC §3, §6): If-Match on every change, one winner when many therapists
// accept an open offer at once, one winner among amendments based on the same version, and a sync
// feed that misses nothing, also when transactions commit out of order or another database's
// transactions end while it is read (PostgreSQL only).
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import t from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { isoDate } from './fixtures/referral-bodies.js';
import { referralMoves, type Move } from './fixtures/referral-moves.js';
import { assertStatus } from './fixtures/responses.js';
import { buildTestApp, createTestDatabase, testDatabaseServer, type Json } from './helper.js';

// Connections enough for 21 accepts waiting on one row lock at once (the offer race below).
const test = await buildTestApp(t, { env: { DATABASE_POOL_SIZE: '30' } });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const second = await createPractice(test, networkAdmin);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const { get, create, read, history, request, must } = referralMoves(test, office, practice);

t.test('If-Match', async (t) => {
  /**
   * Each move, from a referral in the status it needs, already amended once so that its version
   * is 1 more than the one a stale client holds.
   */
  const cases: { move: Move; token: () => string; payload?: Json; setup: () => Promise<Json> }[] = [
    { move: 'amend', token: () => office.physician.token, payload: { visitsAuthorized: 30 }, setup: () => create({ send: true }) },
    { move: 'send', token: () => office.physician.token, setup: () => create() },
    { move: 'accept', token: () => practice.therapist.token, payload: {}, setup: () => create({ send: true }) },
    { move: 'decline', token: () => practice.therapist.token, payload: { reason: 'Booked' }, setup: () => create({ send: true }) },
    { move: 'cancel', token: () => office.physician.token, payload: { reason: 'Moved away' }, setup: () => create({ send: true }) },
    {
      move: 'reroute',
      token: () => office.physician.token,
      payload: { practiceId: second.id },
      setup: async () => must((await create({ send: true })).id, 'decline', practice.therapist.token, { reason: 'Booked' }),
    },
  ];

  for (const { move, token, payload, setup } of cases) {
    t.test(`${move} with a stale If-Match is 412 with currentVersion, and changes nothing`, async (t) => {
      const stale = await setup();
      const current = await must(stale.id, 'amend', office.physician.token, { visitsAuthorized: 20 });
      t.equal(current.version, stale.version + 1);
      // If-Match compares strongly (RFC 9110): a weak tag never matches, not even the current version.
      for (const ifMatch of [`"${stale.version}"`, `W/"${current.version}"`, `"${current.version + 5}"`]) {
        const response = await request(stale.id, move, token(), payload, { 'if-match': ifMatch });
        assertStatus(t, response, 412);
        t.match(response.headers['content-type'], /^application\/problem\+json/);
        t.match(response.json(), { status: 412, currentVersion: current.version }, `If-Match ${ifMatch}`);
        const now = await read(stale.id);
        t.match(now, { version: current.version, status: current.status, visitsAuthorized: 20 }, 'nothing changed');
      }
      t.equal((await history(stale.id)).at(-1)!.action, 'amend', 'no event was added');
    });

    t.test(`${move} with If-Match naming the current version (strong, *, or in a list) goes through`, async (t) => {
      // One referral per form, since the move changes it.
      const forms = ['strong', 'star', 'list'] as const;
      const referrals = await Promise.all(forms.map(() => setup()));
      for (const [index, form] of forms.entries()) {
        const referral = referrals[index]!;
        const ifMatch = { strong: `"${referral.version}"`, star: '*', list: `W/"${referral.version}", "${referral.version + 7}", "${referral.version}"` }[form];
        const response = await request(referral.id, move, token(), payload, { 'if-match': ifMatch });
        assertStatus(t, response, 200);
        t.equal(response.json().version, referral.version + 1, `If-Match ${ifMatch}`);
        t.equal(response.headers.etag, `"${referral.version + 1}"`);
      }
    });
  }

  t.test('an outsider gets 404 whatever the If-Match, so it learns no version', async (t) => {
    const referral = await create({ send: true });
    const outsider = await createOffice(test, networkAdmin);
    for (const ifMatch of [`"${referral.version}"`, '"999"', '*']) {
      const response = await request(referral.id, 'amend', outsider.physician.token, { visitsAuthorized: 30 }, { 'if-match': ifMatch });
      assertStatus(t, response, 404);
      t.equal(response.json().currentVersion, undefined, 'no currentVersion');
    }
    t.equal((await read(referral.id)).version, referral.version);
  });

  t.test('the ETag of a GET is what If-Match takes', async (t) => {
    const referral = await create({ send: true });
    const etag = (await get(`/v1/referrals/${referral.id}`, office.physician.token)).headers.etag as string;
    t.equal(etag, `"${referral.version}"`);
    assertStatus(t, await request(referral.id, 'amend', office.physician.token, { visitsAuthorized: 13 }, { 'if-match': etag }), 200);
    assertStatus(t, await request(referral.id, 'amend', office.physician.token, { visitsAuthorized: 14 }, { 'if-match': etag }), 412);
  });
});

t.test('concurrent amendments based on the same version: exactly one wins, the others get 412', async (t) => {
  const referral = await create({ send: true });
  const attempts = Array.from({ length: 8 }, (_, i) => 20 + i);
  const responses = await Promise.all(
    attempts.map((visitsAuthorized) =>
      request(referral.id, 'amend', office.physician.token, { visitsAuthorized }, { 'if-match': `"${referral.version}"` }),
    ),
  );
  const codes = responses.map((response) => response.statusCode);
  t.equal(codes.filter((code) => code === 200).length, 1, `exactly one 200 (got ${codes.join(', ')})`);
  t.equal(codes.filter((code) => code === 412).length, attempts.length - 1, 'every other one 412');
  const winner = responses.find((response) => response.statusCode === 200)!.json();
  for (const response of responses.filter((response) => response.statusCode === 412)) {
    t.equal(response.json().currentVersion, referral.version + 1);
  }
  const now = await read(referral.id);
  t.match(now, { version: referral.version + 1, visitsAuthorized: winner.visitsAuthorized });
  t.equal((await history(referral.id)).filter((event) => event.action === 'amend').length, 1, 'one amendment in the history');
});

t.test('an open offer to 21 therapists', async (t) => {
  // A practice of its own far from the others, with 21 therapists who all match the offer.
  const region = { lat: 43.0, lng: -90.0 };
  const racePractice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });
  const therapists = [racePractice.therapist, ...(await Promise.all(Array.from({ length: 20 }, (_, i) => addTherapist(test, networkAdmin, racePractice.id))))];
  const openOffer = () => create({ therapistId: undefined, network: { techniques: ['trigger_point'], near: region, radiusKm: 10 }, send: true });

  t.test('accepted by all at once: exactly one wins, every other gets 409, and then 404', async (t) => {
    const referral = await openOffer();
    const visible = await Promise.all(therapists.map((therapist) => get(`/v1/referrals/${referral.id}`, therapist.token)));
    t.ok(visible.every((response) => response.statusCode === 200), 'the offer reaches all 21');

    // Every accept must be past its visibility check before any of them commits; one that comes
    // later is (rightly) told 404, the offer being gone. So the row is held while all 21 set out:
    // they queue on its lock (PostgreSQL, with connections enough for all) or behind the holder
    // (the embedded database's one connection).
    let accepting: Promise<Awaited<ReturnType<typeof request>>[]> | undefined;
    await test.app.db.transaction(async (tx) => {
      await tx.execute(sql`select 1 from referrals where id = ${referral.id} for update`);
      accepting = Promise.all(therapists.map((therapist) => request(referral.id, 'accept', therapist.token)));
      await new Promise((resolve) => setTimeout(resolve, 500));
    });
    const responses = await accepting!;
    const codes = responses.map((response) => response.statusCode);
    t.equal(codes.filter((code) => code === 200).length, 1, `exactly one accept wins (got ${codes.join(', ')})`);
    t.equal(codes.filter((code) => code === 409).length, therapists.length - 1, 'every other accept gets 409');
    for (const response of responses.filter((response) => response.statusCode === 409)) {
      t.match(response.json(), { code: 'illegal-transition', currentStatus: 'accepted' });
    }

    const winnerIndex = codes.indexOf(200);
    const winner = therapists[winnerIndex]!;
    const accepted = await read(referral.id);
    t.match(accepted, { status: 'accepted', version: 2, acceptedBy: { therapistId: winner.id, practiceId: racePractice.id } });
    const accepts = (await history(referral.id)).filter((event) => event.action === 'accept');
    t.equal(accepts.length, 1, 'one accept in the history');
    t.equal(accepts[0]!.actor.id, winner.id);
    t.equal((await auditEvents(test, { action: 'referral.accept', outcome: 'success', resourceId: referral.id })).length, 1, 'one successful accept audited');

    t.equal((await get(`/v1/referrals/${referral.id}`, winner.token)).statusCode, 200, 'the winner reads it');
    const losers = therapists.filter((_, index) => index !== winnerIndex);
    const afterwards = await Promise.all(
      losers.map(async (loser) => [(await get(`/v1/referrals/${referral.id}`, loser.token)).statusCode, (await request(referral.id, 'accept', loser.token)).statusCode]),
    );
    t.same(afterwards, losers.map(() => [404, 404]), 'afterwards every loser gets 404 on GET and on accept');
    for (const [action, label] of [['referral.read', 'read'], ['referral.accept', 'accept']] as const) {
      const denied = await auditEvents(test, { action, outcome: 'denied', resourceId: referral.id });
      t.same(
        denied.map((event) => event.actorId).sort(),
        losers.map((loser) => loser.id).sort(),
        `each loser's refused ${label} is audited as denied against the referral`,
      );
      t.ok(denied.every((event) => event.httpStatus === 404 && event.resourceType === 'referral'));
    }
  });

  t.test('declined by all at once: each offer is withdrawn once, and the referral is declined exactly once', async (t) => {
    const referral = await openOffer();
    const responses = await Promise.all(therapists.map((therapist, index) => request(referral.id, 'decline', therapist.token, { reason: `No ${index}` })));
    const codes = responses.map((response) => response.statusCode);
    t.ok(codes.every((code) => code === 200), `every decline is taken (got ${codes.join(', ')})`);
    t.equal(responses.filter((response) => response.json().status === 'declined').length, 1, 'exactly one of them declines the referral as a whole');
    const final = await read(referral.id);
    t.match(final, { status: 'declined', version: 1 + therapists.length });
    const events = (await history(referral.id)).slice(2);
    t.equal(events.filter((event) => event.action === 'decline_offer').length, therapists.length - 1);
    t.match(events.at(-1), { action: 'decline', fromStatus: 'sent', toStatus: 'declined' });
    t.same(events.map((event) => event.version), events.map((_, index) => 2 + index), 'one version per decline, in order');
    t.same(events.map((event) => event.actor.id).sort(), therapists.map((therapist) => therapist.id).sort(), 'one event per therapist');
  });
});

/** Polls the sync feed of a caller from a cursor, following pages; returns what came and the new cursor. */
async function poll(token: string, cursor: string | undefined, limit = 3): Promise<{ data: Json[]; cursor: string | undefined }> {
  const data: Json[] = [];
  for (;;) {
    const response = await get(`/v1/referrals?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, token);
    if (response.statusCode !== 200) throw new Error(`poll failed: ${response.statusCode} ${response.body}`);
    const page: Json = response.json();
    data.push(...page.data);
    cursor = page.syncCursor;
    if (page.nextCursor === null) return { data, cursor };
  }
}

t.test('the sync feed misses no change while changes happen', async (t) => {
  // An office of its own, so its feed holds only this test's referrals.
  const syncOffice = await createOffice(test, networkAdmin);
  const token = syncOffice.physician.token;
  const seen: Json[] = [];
  let cursor: string | undefined;
  const initial = await Promise.all(Array.from({ length: 4 }, () => create({ send: true }, token)));

  let writing = true;
  const writer = (async () => {
    const ids = initial.map((referral) => referral.id);
    try {
    for (let round = 0; round < 6; round++) {
      // Several changes at once, so that on PostgreSQL their transactions overlap.
      const created = await Promise.all([create({ send: true }, token), create({}, token)]);
      ids.push(...created.map((referral) => referral.id));
      await Promise.all([
        must(ids[round % ids.length]!, 'amend', token, { visitsAuthorized: 30 + round }),
        must(ids[(round + 1) % ids.length]!, 'amend', token, { expiresOn: isoDate(100 + round) }),
        must(created[1]!.id, 'send', token),
        round % 2 === 0 ? must(created[0]!.id, 'accept', practice.therapist.token, {}) : must(created[0]!.id, 'decline', practice.therapist.token, { reason: 'No' }),
      ]);
      if (round % 3 === 2) await must(ids[round]!, 'cancel', token, { reason: 'Done' });
    }
    } finally {
      writing = false;
    }
    return ids;
  })();

  // A client polling on an interval; the pause also lets the writer's requests take their turn.
  while (writing) {
    const result = await poll(token, cursor);
    seen.push(...result.data);
    cursor = result.cursor;
    await sleep(20);
  }
  const ids = await writer;

  // Every referral's last version must arrive; a transaction elsewhere on the server can hold rows back briefly.
  const finals = new Map<string, number>();
  for (const id of ids) finals.set(id, (await read(id, token)).version);
  const missing = () => [...finals].filter(([id, version]) => !seen.some((row) => row.id === id && row.version === version));
  for (let attempt = 0; attempt < 50 && missing().length > 0; attempt++) {
    const result = await poll(token, cursor);
    seen.push(...result.data);
    cursor = result.cursor;
    if (missing().length > 0) await sleep(100);
  }
  t.same(missing(), [], 'the last version of every referral was seen');
  t.equal(finals.size, ids.length);

  const pairs = seen.map((row) => `${row.id}@${row.version}`);
  t.equal(new Set(pairs).size, pairs.length, 'no (id, version) arrives twice');
  const lastSeen = new Map<string, number>();
  let backwards = 0;
  for (const row of seen) {
    if ((lastSeen.get(row.id) ?? 0) >= row.version) backwards++;
    lastSeen.set(row.id, row.version);
  }
  t.equal(backwards, 0, 'a referral only ever comes back newer');
  t.comment(`${seen.length} rows arrived for ${ids.length} referrals`);
  t.same((await poll(token, cursor)).data, [], 'nothing more once everything has arrived');
});

t.test(
  'the sync feed withholds a change committed before an older transaction that is still open',
  { skip: testDatabaseServer ? false : 'PGlite has a single connection: transactions cannot interleave, so there is no out-of-order commit' },
  async (t) => {
    const syncOffice = await createOffice(test, networkAdmin);
    const token = syncOffice.physician.token;
    const a = await create({ send: true }, token);
    const b = await create({ send: true }, token);
    let drained = await poll(token, undefined);
    t.same(drained.data.map((row) => row.id).sort(), [a.id, b.id].sort(), 'both referrals are in the feed');
    const cursor = drained.cursor!;

    const sql = postgres(test.config.databaseUrl!, { max: 1, onnotice: () => {} });
    const older = await sql.reserve();
    let open = true;
    t.teardown(async () => {
      if (open) await older`rollback`;
      older.release();
      await sql.end({ timeout: 5 });
    });
    await older`begin`;
    // The trigger stamps A with this (older) transaction's id.
    await older`update referrals set reason = reason where id = ${a.id}`;

    const amended = await must(b.id, 'amend', token, { visitsAuthorized: 40 });
    t.equal((await read(b.id, token)).version, amended.version, 'B is committed and readable directly');

    const withheld = await poll(token, cursor);
    t.notOk(withheld.data.some((row) => row.id === b.id), 'B is withheld while the older transaction is open');
    t.notOk(withheld.data.some((row) => row.id === a.id), 'A is not visible before it commits');
    t.equal(withheld.cursor, cursor, 'the cursor does not move past the open transaction');

    await older`commit`;
    open = false;

    drained = await poll(token, cursor);
    for (let attempt = 0; attempt < 50 && drained.data.length < 2; attempt++) {
      await sleep(100);
      drained = await poll(token, cursor);
    }
    const ids = drained.data.map((row) => row.id);
    t.ok(ids.includes(a.id), 'A arrives after its commit');
    t.ok(ids.includes(b.id), 'B arrives from the same cursor');
    t.ok(ids.indexOf(a.id) < ids.indexOf(b.id), 'in transaction order: A first');
    t.match(drained.data.find((row) => row.id === b.id), { version: amended.version, visitsAuthorized: 40 });
  },
);

t.test(
  'transactions of another database on the server neither hold the feed back nor, ending while it is read, hide what it showed',
  { skip: testDatabaseServer ? false : 'PGlite is one database: there is no transaction of another database' },
  async (t) => {
    const syncOffice = await createOffice(test, networkAdmin);
    const token = syncOffice.physician.token;
    // Snapshots are server-wide: another database's transactions are in every snapshot's running list.
    const neighbour = await createTestDatabase();
    const neighbourSql = postgres(neighbour.url, { max: 16, onnotice: () => {} });
    t.teardown(async () => {
      await neighbourSql.end({ timeout: 5 });
      await neighbour.drop();
    });
    await neighbourSql`create table churn (n int)`;

    const created: string[] = [];
    let polls = 0;
    let heldBack = 0;
    const pollAll = async () => {
      polls++;
      const ids = new Set((await poll(token, undefined, 100)).data.map((row) => row.id as string));
      if (created.some((id) => !ids.has(id))) heldBack++;
    };
    for (let round = 0; round < 15; round++) {
      // Neighbour transactions that took their ids before the referral's, then end one after
      // another while the feed is being read.
      const ready: Promise<void>[] = [];
      const holders = Array.from({ length: 16 }, (_, index) => {
        let began!: () => void;
        ready.push(new Promise<void>((resolve) => (began = resolve)));
        return neighbourSql.begin(async (tx) => {
          await tx`insert into churn values (${index})`;
          began();
          await sleep(20 + index * 15);
        });
      });
      await Promise.all(ready);
      created.push((await create({ send: true }, token)).id);
      let ended = false;
      const allEnded = Promise.all(holders).then(() => (ended = true));
      await Promise.all(
        Array.from({ length: 3 }, async () => {
          while (!ended) await pollAll();
        }),
      );
      await allEnded;
    }
    t.ok(polls > 100, `the feed was read while neighbour transactions ended (${polls} reads)`);
    t.equal(heldBack, 0, `every read showed every referral committed before it (${heldBack} of ${polls} reads missed one)`);
  },
);
