// The sync feed (GET /v1/referrals) unions the caller's disjoint visible parts (visibleParts in
// access.ts), each read in sync order and cut at one page, and merges them. That is only right if
// the parts together hold exactly the rows visibleTo allows, each once. Every way a therapist or a
// practice comes to see (or stop seeing) a referral is built here through the API, and each
// caller's feed is walked page by page, so that rows of different parts meet at page boundaries.
// The expected sets are written out by hand from SPEC §6; the single read GET /v1/referrals/{id},
// which applies visibleTo directly, is checked against them too, so a failure says whether the
// parts or the expectation disagree with the access rule.
import t, { type Test } from 'tap';
import { decodeCursor } from '../src/lib/pagination.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { buildTestApp, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();

// Everyone in one place, so a network offer there reaches all three therapists below.
const region = { lat: 44.0521, lng: -123.0868 };
const network = { techniques: ['trigger_point'], near: region, radiusKm: 10 };

const office = await createOffice(test, networkAdmin, region);
const otherOffice = await createOffice(test, networkAdmin, region);
const practice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });
const colleague = await addTherapist(test, networkAdmin, practice.id);
const otherPractice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });
// A practice API client reads through the non-therapist parts, like the practice admin.
const practiceClient = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read'], 'EHR sync');

const callers = {
  therapist: { label: 'the therapist', token: practice.therapist.token },
  colleague: { label: 'a second therapist of the same practice', token: colleague.token },
  practiceAdmin: { label: 'the practice admin', token: practice.admin.token },
  practiceClient: { label: 'an API client of the practice', token: practiceClient.token },
  otherTherapist: { label: "another practice's therapist", token: otherPractice.therapist.token },
  otherAdmin: { label: "another practice's admin", token: otherPractice.admin.token },
  physician: { label: 'the office physician', token: office.physician.token },
} as const;
type Caller = keyof typeof callers;
const practiceSide: Caller[] = ['practiceAdmin', 'practiceClient'];
const otherSide: Caller[] = ['otherTherapist', 'otherAdmin'];

async function create(target: Json, { send = true, token = office.physician.token } = {}): Promise<string> {
  return (await test.create('/v1/referrals', token, referralBody({ reason: 'Chronic low back pain', ...target, send }))).id;
}

/** A move that must succeed: the fixture is only meaningful if it really reached that state. */
async function move(id: string, name: 'accept' | 'decline' | 'reroute' | 'cancel', token: string, payload: Json = {}): Promise<void> {
  const response = await test.request({ method: 'POST', url: `/v1/referrals/${id}/${name}`, token, payload });
  if (response.statusCode !== 200) throw new Error(`${name} ${id} failed: ${response.statusCode} ${response.body}`);
}

async function startTreatment(id: string, token: string): Promise<void> {
  await test.create(`/v1/referrals/${id}/progress-reports`, token, visitNoteBody());
}

interface Fixture {
  label: string;
  id: string;
  seenBy: Set<Caller>;
}
const fixtures: Fixture[] = [];
const labelOf = new Map<string, string>();

/** Builds one referral and records who must see it; created in this order so the parts interleave in sync order. */
async function fixture(label: string, seenBy: Caller[], build: () => Promise<string>): Promise<void> {
  const id = await build();
  fixtures.push({ label, id, seenBy: new Set(seenBy) });
  labelOf.set(id, label);
}

const reason = { reason: 'Fully booked' };
const T = practice.therapist;
const Q = otherPractice.therapist;

// Targeted to the therapist by name.
await fixture('to the therapist by name, sent', ['therapist', ...practiceSide, 'physician'], () => create({ therapistId: T.id }));
await fixture('to the therapist by name, accepted', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: T.id });
  await move(id, 'accept', T.token);
  return id;
});
await fixture('to the therapist by name, declined by them (still aimed at them)', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: T.id });
  await move(id, 'decline', T.token, reason);
  return id;
});
await fixture('to the therapist by name, cancelled after it was sent', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: T.id });
  await move(id, 'cancel', office.physician.token, { reason: 'Patient moved' });
  return id;
});
await fixture('a draft to the therapist by name', ['physician'], () => create({ therapistId: T.id }, { send: false }));
await fixture('to the colleague by name (the practice sees it, the therapist does not)', ['colleague', ...practiceSide, 'physician'], () =>
  create({ therapistId: colleague.id }),
);

// Targeted to the practice as a whole.
await fixture('to the practice, sent', ['therapist', 'colleague', ...practiceSide, 'physician'], () => create({ practiceId: practice.id }));
await fixture('to the practice, accepted by the therapist', ['therapist', 'colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ practiceId: practice.id });
  await move(id, 'accept', T.token);
  return id;
});
await fixture('to the practice, accepted by the colleague', ['therapist', 'colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ practiceId: practice.id });
  await move(id, 'accept', colleague.token);
  return id;
});
await fixture('to the practice, accepted by the admin for the therapist', ['therapist', 'colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ practiceId: practice.id });
  await move(id, 'accept', practice.admin.token, { therapistId: T.id });
  return id;
});
await fixture('a draft to the practice', ['physician'], () => create({ practiceId: practice.id }, { send: false }));

// Open network offers: made to the therapist, the colleague and the other practice's therapist.
await fixture('network offer, open to all three', ['therapist', 'colleague', ...practiceSide, ...otherSide, 'physician'], () => create({ network }));
await fixture('network offer accepted by the therapist', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'accept', T.token);
  return id;
});
await fixture('network offer accepted by the therapist, in treatment', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'accept', T.token);
  await startTreatment(id, T.token);
  return id;
});
await fixture('network offer declined by the therapist, still open to the others', ['colleague', ...practiceSide, ...otherSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'decline', T.token, reason);
  return id;
});
await fixture('network offer declined by the practice admin for the whole practice', [...otherSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'decline', practice.admin.token, reason);
  return id;
});
await fixture('network offer accepted by the colleague', ['colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'accept', colleague.token);
  return id;
});
await fixture("network offer accepted by the other practice's therapist", [...otherSide, 'physician'], async () => {
  const id = await create({ network });
  await move(id, 'accept', Q.token);
  return id;
});
await fixture('network offer declined by everyone it was made to', ['physician'], async () => {
  const id = await create({ network });
  for (const token of [T.token, colleague.token, Q.token]) await move(id, 'decline', token, reason);
  return id;
});
await fixture('a draft network offer (made to nobody yet)', ['physician'], () => create({ network }, { send: false }));

// Rerouted: a declined referral sent to a new target takes its visibility with it.
await fixture("to the therapist by name, declined and rerouted to the other practice's therapist", [...otherSide, 'physician'], async () => {
  const id = await create({ therapistId: T.id });
  await move(id, 'decline', T.token, reason);
  await move(id, 'reroute', office.physician.token, { therapistId: Q.id });
  return id;
});
await fixture('to the therapist by name, declined and rerouted to the colleague', ['colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: T.id });
  await move(id, 'decline', T.token, reason);
  await move(id, 'reroute', office.physician.token, { therapistId: colleague.id });
  return id;
});
await fixture("to the other practice's therapist, declined, rerouted to the practice and accepted by the therapist", ['therapist', 'colleague', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: Q.id });
  await move(id, 'decline', Q.token, reason);
  await move(id, 'reroute', office.physician.token, { practiceId: practice.id });
  await move(id, 'accept', T.token);
  return id;
});
await fixture('to the colleague by name, declined, rerouted to the network and accepted by the therapist', ['therapist', ...practiceSide, 'physician'], async () => {
  const id = await create({ therapistId: colleague.id });
  await move(id, 'decline', colleague.token, reason);
  await move(id, 'reroute', office.physician.token, { network });
  await move(id, 'accept', T.token);
  return id;
});

// Elsewhere in the network. The other office writes before this office's last rows, so waiting
// for those (settle, below) covers it too.
await fixture('from another office to the therapist by name', ['therapist', ...practiceSide], () =>
  create({ therapistId: T.id }, { token: otherOffice.physician.token }),
);
await fixture("to the other practice's therapist by name", [...otherSide, 'physician'], () => create({ therapistId: Q.id }));
await fixture('to the other practice, accepted', [...otherSide, 'physician'], async () => {
  const id = await create({ practiceId: otherPractice.id });
  await move(id, 'accept', Q.token);
  return id;
});

/** The status of every fixture as its own office sees it, for the filtered feeds. */
const statusOf = new Map<string, string>();
for (const { id } of fixtures) {
  let response = await test.request({ method: 'GET', url: `/v1/referrals/${id}`, token: office.physician.token });
  if (response.statusCode === 404) response = await test.request({ method: 'GET', url: `/v1/referrals/${id}`, token: otherOffice.physician.token });
  statusOf.set(id, response.json().status);
}

interface Walk {
  ids: string[];
  /** The sync key of the last row of each page, from its syncCursor. */
  keys: (readonly [bigint, string])[];
  pages: number;
  terminated: boolean;
}

/** Follows nextCursor from the start until it is null (or a page cap, so a cursor loop fails instead of hanging). */
async function walk(t: Test, token: string, limit: number, status?: string): Promise<Walk> {
  const ids: string[] = [];
  const keys: (readonly [bigint, string])[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query = new URLSearchParams({ limit: String(limit), ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) });
    const response = await test.request({ method: 'GET', url: `/v1/referrals?${query}`, token });
    if (response.statusCode !== 200) {
      t.fail(`GET /v1/referrals?${query} answered ${response.statusCode}: ${response.body}`);
      return { ids, keys, pages, terminated: false };
    }
    const page = response.json();
    pages++;
    ids.push(...page.data.map((referral: Json) => referral.id as string));
    if (page.data.length > 0) {
      const [xid, id] = decodeCursor(page.syncCursor, ['digits', 'uuid']) as [string, string];
      keys.push([BigInt(xid), id]);
    }
    cursor = page.nextCursor;
  } while (cursor !== null && pages <= fixtures.length + 2);
  return { ids, keys, pages, terminated: cursor === null };
}

const expectedFor = (caller: Caller, statuses?: string[]) =>
  fixtures.filter((f) => f.seenBy.has(caller) && (!statuses || statuses.includes(statusOf.get(f.id)!))).map((f) => f.id);

/** Missing and unexpected rows by label, so a failure names the case that broke. */
function difference(seen: string[], expected: string[]) {
  const seenSet = new Set(seen);
  const expectedSet = new Set(expected);
  const name = (id: string) => labelOf.get(id) ?? `unknown referral ${id}`;
  return {
    missing: expected.filter((id) => !seenSet.has(id)).map(name),
    unexpected: [...seenSet].filter((id) => !expectedSet.has(id)).map(name),
  };
}

const duplicatesIn = (ids: string[]) => ids.filter((id, index) => ids.indexOf(id) !== index).map((id) => labelOf.get(id) ?? id);

const increasing = (keys: (readonly [bigint, string])[]) =>
  keys.every((key, index) => {
    const before = keys[index - 1];
    return !before || before[0] < key[0] || (before[0] === key[0] && before[1] < key[1]);
  });

/**
 * Every write has committed, but a row is held back while an older transaction of this database
 * runs (the sync horizon); waits until the office, which sees every row of its own, has these.
 */
async function settle(t: Test, ids: string[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const seen = new Set((await walk(t, office.physician.token, 200)).ids);
    if (ids.every((id) => seen.has(id))) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
await settle(t, fixtures.filter((f) => f.seenBy.has('physician')).map((f) => f.id));

t.test('the expectations agree with the access rule of the single read (GET /v1/referrals/{id})', async (t) => {
  for (const [caller, { label, token }] of Object.entries(callers) as [Caller, (typeof callers)[Caller]][]) {
    const readable: string[] = [];
    for (const { id } of fixtures) {
      const { statusCode } = await test.request({ method: 'GET', url: `/v1/referrals/${id}`, token });
      if (statusCode === 200) readable.push(id);
      else if (statusCode !== 404) t.fail(`GET ${labelOf.get(id)} as ${label} answered ${statusCode}`);
    }
    t.same(difference(readable, expectedFor(caller)), { missing: [], unexpected: [] }, `${label} can read exactly the referrals SPEC §6 gives them`);
  }
});

for (const [caller, { label, token }] of Object.entries(callers) as [Caller, (typeof callers)[Caller]][]) {
  t.test(`the feed of ${label}, two at a time`, async (t) => {
    const expected = expectedFor(caller);
    t.ok(expected.length > 2, 'the feed spans several pages');
    const paged = await walk(t, token, 2);
    t.ok(paged.terminated, `following nextCursor ends (after ${paged.pages} pages)`);
    t.same(difference(paged.ids, expected), { missing: [], unexpected: [] }, 'holds exactly the referrals the caller may see');
    t.same(duplicatesIn(paged.ids), [], 'no referral appears twice');

    // One row a page gives every row's sync key: the merge must hand them out in strictly rising order.
    const single = await walk(t, token, 1);
    t.ok(single.terminated, 'following nextCursor one row at a time ends');
    t.ok(increasing(single.keys), 'sync keys rise strictly from row to row');
    t.ok(increasing(paged.keys), 'sync keys rise strictly from page to page');
    // The order must not depend on where pages are cut.
    const whole = await walk(t, token, 200);
    t.equal(whole.pages, 1, 'the whole feed fits one page of 200');
    t.same(paged.ids, whole.ids, 'pages of two list the same rows in the same order as one page');
    t.same(single.ids, whole.ids, 'pages of one list the same rows in the same order as one page');
  });
}

t.test('filtered by status, each feed holds exactly the matching subset', async (t) => {
  const filters = ['accepted', 'sent', 'sent,declined', 'in_progress,cancelled'];
  t.ok(expectedFor('therapist', ['accepted']).length > 2, "the therapist's accepted referrals span several pages");
  for (const [caller, { label, token }] of Object.entries(callers) as [Caller, (typeof callers)[Caller]][]) {
    for (const status of filters) {
      const paged = await walk(t, token, 2, status);
      t.ok(paged.terminated, `status=${status} as ${label}: following nextCursor ends`);
      t.same(difference(paged.ids, expectedFor(caller, status.split(','))), { missing: [], unexpected: [] }, `status=${status} as ${label}: exactly the matching referrals`);
      t.same(duplicatesIn(paged.ids), [], `status=${status} as ${label}: no referral twice`);
    }
  }
});

// Last, so that these rows stay out of the exact feeds above. "A draft is the office's alone until
// it is sent" (access.ts); cancelling a draft does not send it, yet the status is no longer 'draft'.
t.test('a draft cancelled before it was ever sent', async (t) => {
  const toTherapist = await create({ therapistId: T.id }, { send: false });
  const toPractice = await create({ practiceId: practice.id }, { send: false });
  for (const id of [toTherapist, toPractice]) await move(id, 'cancel', office.physician.token, { reason: 'Entered in error' });
  labelOf.set(toTherapist, 'a draft to the therapist, cancelled unsent');
  labelOf.set(toPractice, 'a draft to the practice, cancelled unsent');
  await settle(t, [toTherapist, toPractice]);
  for (const caller of ['therapist', 'colleague', 'practiceAdmin'] as const) {
    const { label, token } = callers[caller];
    const feed = (await walk(t, token, 2)).ids;
    for (const id of [toTherapist, toPractice]) {
      const readable = (await test.request({ method: 'GET', url: `/v1/referrals/${id}`, token })).statusCode === 200;
      // Whatever the rule says, the parts must say the same.
      t.equal(feed.includes(id), readable, `${label}: the feed lists "${labelOf.get(id)}" exactly when the single read shows it`);
      t.notOk(readable, `${label} cannot read "${labelOf.get(id)}"`);
      t.notOk(feed.includes(id), `"${labelOf.get(id)}" is not in the feed of ${label}`);
    }
  }
});
