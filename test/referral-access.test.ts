// Referral access from the attacker's side (SPEC §3–§7): every endpoint of the referral workflow
// that takes a referral id, called by everyone who does not take part in the referral, answers the
// same 404 as a missing record, changes nothing and is audited as denied against the referral. A
// caller who sees the referral but is on the wrong side of a move gets the same 404. A network
// offer lost to another therapist disappears for everyone else. Server-owned fields are never
// taken from a request body, and nothing answers without a token.
import { randomBytes, randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, type Json, type TestResponse as Response } from './helper.js';
type Method = 'GET' | 'POST' | 'PATCH';

const test = await buildTestApp(t);
const networkAdminToken = await test.loginAsAdmin();
const portland = { lat: 45.5152, lng: -122.6734 };

/** Signs in a new API client of the organization with every referral scope; its actor id is the client's id. */
const apiClient = (organizationId: string, adminToken: string) =>
  addApiClient(test, adminToken, organizationId, ['referrals:read', 'referrals:write', 'referrals:sign', 'patients:read', 'patients:write']);

// The referral's own parties: office A prescribes to practice P.
const officeA = await createOffice(test, networkAdminToken);
const practiceP = await createPractice(test, networkAdminToken, { location: portland, techniques: ['trigger_point', 'myofascial_release'] });
const secondTherapistP = await addTherapist(test, networkAdminToken, practiceP.id);
// Strangers: office B and practice Q (whose therapist offers trigger_point near Portland, so a network offer reaches them).
const officeB = await createOffice(test, networkAdminToken);
const practiceQ = await createPractice(test, networkAdminToken, { location: portland, techniques: ['trigger_point', 'myofascial_release'] });
const officeBClient = await apiClient(officeB.id, officeB.admin.token);
const practiceQClient = await apiClient(practiceQ.id, practiceQ.admin.token);
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdminToken })).json().id;

interface Caller {
  label: string;
  id: string;
  token: string;
  client?: boolean;
  /** A physician, or an API client with referrals:sign: admitted by the policy of what only prescribers do (SPEC §14.1). */
  prescribes?: boolean;
  /** The therapist a non-therapist names when accepting (a therapist accepts as themself). */
  acceptAs?: string;
}

const foreignCallers: Caller[] = [
  { label: 'a physician of another office', ...officeB.physician, prescribes: true, acceptAs: practiceP.therapist.id },
  { label: 'office staff of another office', ...officeB.staff, acceptAs: practiceP.therapist.id },
  { label: 'the office admin of another office', ...officeB.admin, acceptAs: practiceP.therapist.id },
  { label: 'an API client of another office (every referral scope)', ...officeBClient, client: true, prescribes: true, acceptAs: practiceP.therapist.id },
  { label: 'a therapist of another practice', ...practiceQ.therapist },
  { label: 'the practice admin of another practice', ...practiceQ.admin, acceptAs: practiceQ.therapist.id },
  { label: 'an API client of another practice (every referral scope)', ...practiceQClient, client: true, prescribes: true, acceptAs: practiceQ.therapist.id },
  { label: 'a network admin', id: networkAdminId, token: networkAdminToken, acceptAs: practiceP.therapist.id },
];

/** A valid referral from office A; the target and anything else come from overrides. */
const validReferral = (overrides: Json = {}): Json => referralBody({ goals: ['Pain at or below 3/10'], ...overrides });
const visitNote = visitNoteBody();

// Referral R: office A → practice P, accepted by P's therapist, with a visit note and a thread.
const R: string = (await test.create('/v1/referrals', officeA.physician.token, validReferral({ practiceId: practiceP.id, send: true }))).id;
requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${R}/accept`, token: practiceP.therapist.token }), 200, 'accept R');
const reportId: string = (await test.create(`/v1/referrals/${R}/progress-reports`, practiceP.therapist.token, visitNote)).id;
await test.create(`/v1/referrals/${R}/messages`, officeA.physician.token, { body: 'How did the first session go?' });
await test.create(`/v1/referrals/${R}/messages`, practiceP.therapist.token, { body: 'Well; pain down to 4/10.' });

// Referral S: office A → practice P, sent and not yet accepted (for the accept-body test).
const S: string = (await test.create('/v1/referrals', officeA.physician.token, validReferral({ practiceId: practiceP.id, send: true }))).id;

let requestCounter = 0;
/** Calls with a request id of its own, so the audit event of exactly this call can be found. */
async function send(token: string | undefined, method: Method, url: string, payload?: Json): Promise<{ response: Response; requestId: string }> {
  const requestId = `referral-access-${++requestCounter}-${randomBytes(4).toString('hex')}`;
  const response = await test.request({ method, url, token, headers: { 'x-request-id': requestId }, ...(payload ? { payload } : {}) });
  return { response, requestId };
}

async function deniedEvents(actorId: string, resourceId: string, requestId: string) {
  return (await auditEvents(test, { actorId, resourceId, outcome: 'denied' })).filter((event) => event.requestId === requestId);
}

/** The parts of a problem that must not tell a foreign record from a missing one. */
const shapeOf = (response: Response) => {
  const { type, title, status, detail, ...rest } = response.json();
  return { type, title, status, detail, members: Object.keys(rest).sort() };
};

/** Nothing of the referral leaks into a refusal. */
function assertNoLeak(t: Test, response: Response) {
  t.notMatch(response.body, /Gomez|Maria|lumbar|M54\.50|pain/i, 'the refusal carries no clinical or patient data');
}

const schema = await import('../src/db/schema.js');
const { asc, eq, inArray } = await import('drizzle-orm');
const toJson = (row: unknown) => JSON.stringify(row, (_key, value) => (typeof value === 'bigint' ? value.toString() : value));
const rowsJson = (rows: object[]) => rows.map(toJson);

/**
 * Everything about a referral that a refused call must leave alone, straight from the database:
 * the row (status, version, target, acceptance, counters), its history, visit notes and addenda,
 * messages, read markers and network offers.
 */
async function stateOf(referralId: string) {
  const db = test.app.db;
  const [referral] = await db.select().from(schema.referrals).where(eq(schema.referrals.id, referralId));
  const notes = await db.select().from(schema.progressReports).where(eq(schema.progressReports.referralId, referralId)).orderBy(asc(schema.progressReports.visitNumber));
  const addenda = notes.length === 0 ? [] : await db.select().from(schema.progressReportAddenda).where(inArray(schema.progressReportAddenda.reportId, notes.map((note) => note.id)));
  return {
    referral: toJson(referral),
    history: rowsJson(await db.select().from(schema.referralEvents).where(eq(schema.referralEvents.referralId, referralId)).orderBy(asc(schema.referralEvents.id))),
    notes: rowsJson(notes),
    addenda: rowsJson(addenda).sort(),
    messages: rowsJson(await db.select().from(schema.messages).where(eq(schema.messages.referralId, referralId))).sort(),
    readMarkers: rowsJson(await db.select().from(schema.messageReadMarkers).where(eq(schema.messageReadMarkers.referralId, referralId))).sort(),
    offers: rowsJson(await db.select().from(schema.referralOffers).where(eq(schema.referralOffers.referralId, referralId))).sort(),
  };
}

/** The referral as its prescriber reads it through the API, with its notes and thread. */
async function prescriberView(referralId: string) {
  const token = officeA.physician.token;
  const referral = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}`, token }), 200, 'GET referral');
  const notes = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}/progress-reports?limit=200`, token }), 200, 'GET notes');
  const thread = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referralId}/messages?limit=200`, token }), 200, 'GET messages');
  return {
    version: referral.version as number,
    status: referral.status as string,
    acceptedBy: referral.acceptedBy as Json | null,
    notes: (notes.data as Json[]).length,
    messages: (thread.data as Json[]).length,
  };
}

/** Every referral id the caller lists, walking all pages. */
async function listedIds(token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token }), 200, 'GET /v1/referrals');
    ids.push(...(page.data as Json[]).map((referral) => referral.id as string));
    cursor = page.nextCursor;
  } while (cursor !== null);
  return ids;
}

interface Endpoint {
  label: string;
  method: Method;
  url: (referralId: string) => string;
  payload?: (caller: Caller) => Json | undefined;
  action: string;
  /** The route's policy has no API-client scope: it refuses every API client (403) before looking at the id. */
  closedToClients?: boolean;
  /** The route's policy admits only prescribers (physicians, clients with referrals:sign): 403 for the rest before looking at the id. */
  prescriberOnly?: boolean;
}

/** The refusal a caller gets: the policy's 403 (before the id is looked at, identical for a random id) or the missing record's 404. */
const refusalOf = (route: Endpoint, caller: Caller) => ((route.closedToClients && caller.client) || (route.prescriberOnly && !caller.prescribes) ? 403 : 404);

const ref = (id: string, rest = '') => `/v1/referrals/${id}${rest}`;
const endpoints: Endpoint[] = [
  { label: 'GET /v1/referrals/{id}', method: 'GET', url: (id) => ref(id), action: 'referral.read' },
  { label: 'PATCH /v1/referrals/{id}', method: 'PATCH', url: (id) => ref(id), payload: () => ({ visitsAuthorized: 50, expiresOn: '2099-01-01' }), action: 'referral.amend', prescriberOnly: true },
  { label: 'POST /v1/referrals/{id}/sign', method: 'POST', url: (id) => ref(id, '/sign'), payload: () => ({ attestation: true }), action: 'referral.sign', prescriberOnly: true },
  { label: 'POST /v1/referrals/{id}/send', method: 'POST', url: (id) => ref(id, '/send'), action: 'referral.send' },
  { label: 'POST /v1/referrals/{id}/accept', method: 'POST', url: (id) => ref(id, '/accept'), payload: (caller) => (caller.acceptAs ? { therapistId: caller.acceptAs } : {}), action: 'referral.accept' },
  { label: 'POST /v1/referrals/{id}/decline', method: 'POST', url: (id) => ref(id, '/decline'), payload: () => ({ reason: 'No availability' }), action: 'referral.decline' },
  { label: 'POST /v1/referrals/{id}/cancel', method: 'POST', url: (id) => ref(id, '/cancel'), payload: () => ({ reason: 'Patient moved' }), action: 'referral.cancel' },
  { label: 'POST /v1/referrals/{id}/reroute', method: 'POST', url: (id) => ref(id, '/reroute'), payload: () => ({ practiceId: practiceQ.id }), action: 'referral.reroute' },
  { label: 'GET /v1/referrals/{id}/history', method: 'GET', url: (id) => ref(id, '/history'), action: 'referral.history' },
  { label: 'POST /v1/referrals/{id}/progress-reports', method: 'POST', url: (id) => ref(id, '/progress-reports'), payload: () => visitNote, action: 'progress_report.create', closedToClients: true },
  { label: 'GET /v1/referrals/{id}/progress-reports', method: 'GET', url: (id) => ref(id, '/progress-reports'), action: 'progress_report.list' },
  {
    label: 'POST /v1/referrals/{id}/progress-reports/{reportId}/addenda',
    method: 'POST',
    url: (id) => ref(id, `/progress-reports/${reportId}/addenda`),
    payload: () => ({ text: 'Correction: pain after was 3/10' }),
    action: 'progress_report.addendum',
    closedToClients: true,
  },
  { label: 'POST /v1/referrals/{id}/messages', method: 'POST', url: (id) => ref(id, '/messages'), payload: () => ({ body: 'Hello from a stranger' }), action: 'message.create' },
  { label: 'GET /v1/referrals/{id}/messages', method: 'GET', url: (id) => ref(id, '/messages'), action: 'message.list' },
  { label: 'POST /v1/referrals/{id}/messages/read', method: 'POST', url: (id) => ref(id, '/messages/read'), payload: () => ({}), action: 'message.mark_read' },
];
const endpoint = (label: string) => endpoints.find((candidate) => candidate.label === label)!;

/**
 * Calls the endpoint on the referral as the caller, expecting a refusal: the same problem as for a
 * random id, no patient data, one denied audit event naming the caller and the resource, and the
 * referral untouched.
 */
async function assertRefused(
  t: Test,
  caller: Caller,
  route: Endpoint,
  referralId: string,
  options: { status?: number; auditedResource?: { type: string; id: string }; randomize?: (url: string) => string } = {},
) {
  const status = options.status ?? 404;
  const before = await stateOf(referralId);
  const { response, requestId } = await send(caller.token, route.method, route.url(referralId), route.payload?.(caller));
  assertProblem(t, response, status);
  assertNoLeak(t, response);
  t.notOk(response.headers.etag, 'and no ETag (which would reveal the version)');

  const randomUrl = options.randomize ? options.randomize(route.url(referralId)) : route.url(randomUUID());
  const missing = await send(caller.token, route.method, randomUrl, route.payload?.(caller));
  assertProblem(t, missing.response, status);
  t.same(shapeOf(response), shapeOf(missing.response), 'answers exactly as for a random, non-existent id (type, title, status, detail, members)');

  const audited = options.auditedResource ?? { type: 'referral', id: referralId };
  const denied = await deniedEvents(caller.id, audited.id, requestId);
  t.equal(denied.length, 1, 'one denied audit event for the call, with the caller as actor and the resource aimed at');
  t.match(
    denied[0],
    { action: route.action, outcome: 'denied', httpStatus: status, actorType: caller.client ? 'api_client' : 'user', resourceType: audited.type, resourceId: audited.id },
    'naming the action and the resource',
  );

  const reread = requireStatus(await test.request({ method: 'GET', url: ref(referralId), token: officeA.physician.token }), 200, 'GET referral');
  t.same({ version: reread.version, status: reread.status }, { version: JSON.parse(before.referral).version, status: JSON.parse(before.referral).status }, 'the prescriber re-reads the same version and status');
  t.same(await stateOf(referralId), before, 'the referral, its history, notes, addenda, messages, read markers and offers are unchanged');
}

const stateOfRAtStart = await stateOf(R);
const viewOfRAtStart = await prescriberView(R);

// ─── Foreign callers: every endpoint, every stranger ────────────────────────────────────────────

t.test('setup › R is accepted and in progress, with a note and messages, and every foreign caller is who they say', async (t) => {
  t.equal(viewOfRAtStart.status, 'in_progress');
  t.equal(viewOfRAtStart.acceptedBy?.therapistId, practiceP.therapist.id);
  t.equal(viewOfRAtStart.notes, 1);
  t.equal(viewOfRAtStart.messages, 2);
  t.equal(foreignCallers.length, 8);
  for (const client of [officeBClient, practiceQClient]) {
    const me = requireStatus(await test.request({ method: 'GET', url: '/v1/me', token: client.token }), 200, 'GET /v1/me');
    t.equal(me.id, client.id, "an API client's principal id is the id of its create response");
  }
});

for (const route of endpoints) {
  for (const caller of foreignCallers) {
    // Routes without a client scope refuse API clients by policy, and prescriber-only routes everyone
    // but prescribers (403, before the id is looked at, identical for a random id); everywhere else
    // the stranger gets the missing record's 404.
    const status = refusalOf(route, caller);
    const what = status === 404 ? 'gets 404 as for a missing referral' : "gets the route policy's 403, as for a missing referral";
    t.test(`${route.label} › ${caller.label} ${what}, changes nothing, audited as denied`, async (t) => {
      await assertRefused(t, caller, route, R, { status });
    });
  }
}

const patientOfR: string = (requireStatus(await test.request({ method: 'GET', url: ref(R), token: officeA.physician.token }), 200, 'GET R')).patientId;
for (const caller of foreignCallers) {
  t.test(`GET /v1/referrals › ${caller.label} does not see R in the list`, async (t) => {
    t.notOk((await listedIds(caller.token)).includes(R), 'R is not listed');
    const filtered = await test.request({ method: 'GET', url: `/v1/referrals?patientId=${patientOfR}`, token: caller.token });
    t.equal(filtered.statusCode, 200);
    t.same(filtered.json().data, [], "filtering by R's patient lists nothing either");
  });
}

t.test('POST /v1/referrals/{id}/accept › an outsider who names no therapist is refused exactly as for a missing id', async (t) => {
  const { response } = await send(officeB.physician.token, 'POST', ref(R, '/accept'), {});
  const missing = await send(officeB.physician.token, 'POST', ref(randomUUID(), '/accept'), {});
  t.equal(response.statusCode, missing.response.statusCode, 'same status as for a random id');
  t.same(shapeOf(response), shapeOf(missing.response), 'same problem as for a random id');
  assertNoLeak(t, response);
});

// ─── Callers who see R, on the wrong side of the move ──────────────────────────────────────────

const physicianA: Caller = { label: 'the prescribing physician', ...officeA.physician, prescribes: true, acceptAs: practiceP.therapist.id };
const staffA: Caller = { label: 'office staff of the prescribing office', ...officeA.staff, acceptAs: practiceP.therapist.id };
const adminA: Caller = { label: 'the office admin of the prescribing office', ...officeA.admin, acceptAs: practiceP.therapist.id };
const therapistP: Caller = { label: 'the therapist who accepted it', ...practiceP.therapist };
const adminP: Caller = { label: 'the practice admin of the practice', ...practiceP.admin, acceptAs: practiceP.therapist.id };
const secondP: Caller = { label: 'another therapist of the practice (not the one who accepted)', ...secondTherapistP };

t.test('setup › every caller of the wrong-role tests can read R', async (t) => {
  for (const caller of [physicianA, staffA, adminA, therapistP, adminP, secondP]) {
    t.equal((await test.request({ method: 'GET', url: ref(R), token: caller.token })).statusCode, 200, `${caller.label} reads R`);
  }
});

const wrongSide: [Caller, string][] = [
  ...[therapistP, adminP, secondP].flatMap((caller): [Caller, string][] => [
    [caller, 'POST /v1/referrals/{id}/send'],
    [caller, 'POST /v1/referrals/{id}/cancel'],
    [caller, 'POST /v1/referrals/{id}/reroute'],
    [caller, 'PATCH /v1/referrals/{id}'],
    [caller, 'POST /v1/referrals/{id}/sign'],
  ]),
  ...[physicianA, staffA, adminA].flatMap((caller): [Caller, string][] => [
    [caller, 'POST /v1/referrals/{id}/accept'],
    [caller, 'POST /v1/referrals/{id}/decline'],
    [caller, 'POST /v1/referrals/{id}/progress-reports'],
  ]),
  [adminP, 'POST /v1/referrals/{id}/progress-reports'],
  [secondP, 'POST /v1/referrals/{id}/progress-reports'],
];
for (const [caller, label] of wrongSide) {
  const status = refusalOf(endpoint(label), caller);
  t.test(`${label} › ${caller.label}, who can see R but may not make this move, gets ${status}, audited`, async (t) => {
    await assertRefused(t, caller, endpoint(label), R, { status });
  });
}

const addendumRoute = endpoint('POST /v1/referrals/{id}/progress-reports/{reportId}/addenda');
for (const caller of [secondP, physicianA, adminP]) {
  t.test(`POST /v1/referrals/{id}/progress-reports/{reportId}/addenda › ${caller.label} adding to someone else's note gets 404, audited`, async (t) => {
    await assertRefused(t, caller, addendumRoute, R, {
      auditedResource: { type: 'progress_report', id: reportId },
      randomize: (url) => url.replace(reportId, randomUUID()),
    });
  });
}

t.test('wrong role › the therapist who accepted R still may post notes and addenda (the refusals above are about the caller)', async (t) => {
  // Checked on a referral of its own, so that R stays as the tests above left it.
  const own = (await test.create('/v1/referrals', officeA.physician.token, validReferral({ therapistId: practiceP.therapist.id, send: true }))).id;
  requireStatus(await test.request({ method: 'POST', url: ref(own, '/accept'), token: practiceP.therapist.token }), 200, 'accept');
  const note = await test.create(ref(own, '/progress-reports'), practiceP.therapist.token, visitNote);
  t.equal(note.visitNumber, 1);
  const addendum = await test.request({ method: 'POST', url: ref(own, `/progress-reports/${note.id}/addenda`), token: practiceP.therapist.token, payload: { text: 'Correction' } });
  t.equal(addendum.statusCode, 201);
});

// ─── A network offer lost to another therapist ─────────────────────────────────────────────────

t.test('network offer › once a therapist accepts, the offer vanishes for every other therapist it was made to', async (t) => {
  const created = await test.create(
    '/v1/referrals',
    officeA.physician.token,
    validReferral({ network: { near: portland, radiusKm: 50 }, send: true }),
  );
  const N: string = created.id;
  t.equal(created.status, 'sent');
  t.same(created.network?.techniques, ['trigger_point'], "the offer asks for the referral's techniques");

  const { referralOffers } = await import('../src/db/schema.js');
  const { eq } = await import('drizzle-orm');
  const offered = (await test.app.db.select().from(referralOffers).where(eq(referralOffers.referralId, N))).map((offer) => offer.therapistId).sort();
  t.same(offered, [practiceP.therapist.id, secondTherapistP.id, practiceQ.therapist.id].sort(), 'offered to both therapists of P and the therapist of Q');

  const qTherapist: Caller = { label: 'the therapist of another practice', ...practiceQ.therapist };
  const losers = [qTherapist, { ...secondP, label: 'the other therapist of the winning practice' }];
  for (const caller of [therapistP, ...losers]) {
    t.equal((await test.request({ method: 'GET', url: ref(N), token: caller.token })).statusCode, 200, `before acceptance, ${caller.label} reads the offer`);
    t.ok((await listedIds(caller.token)).includes(N), `before acceptance, ${caller.label} lists the offer`);
  }

  const accepted = await test.request({ method: 'POST', url: ref(N, '/accept'), token: practiceP.therapist.token });
  t.equal(accepted.statusCode, 200, 'the therapist of P accepts');
  t.equal(accepted.json().acceptedBy?.therapistId, practiceP.therapist.id);

  const lostRoutes = [
    'GET /v1/referrals/{id}',
    'POST /v1/referrals/{id}/accept',
    'POST /v1/referrals/{id}/decline',
    'GET /v1/referrals/{id}/history',
    'GET /v1/referrals/{id}/messages',
    'POST /v1/referrals/{id}/messages',
    'POST /v1/referrals/{id}/messages/read',
    'GET /v1/referrals/{id}/progress-reports',
    'POST /v1/referrals/{id}/progress-reports',
  ];
  for (const caller of losers) {
    for (const label of lostRoutes) {
      await t.test(`${label} › after acceptance, ${caller.label} gets 404, audited`, async (t) => {
        await assertRefused(t, caller, endpoint(label), N);
      });
    }
    t.notOk((await listedIds(caller.token)).includes(N), `after acceptance, ${caller.label} no longer lists the offer`);
  }

  const after = await prescriberView(N);
  t.equal(after.status, 'accepted', 'the referral stays accepted');
  t.equal(after.acceptedBy?.therapistId, practiceP.therapist.id, 'by the winner');
  t.equal((await test.request({ method: 'GET', url: ref(N), token: practiceP.therapist.token })).statusCode, 200, 'the winner still reads it');
});

t.test('therapist target › a referral addressed to one therapist is invisible to their colleague in the same practice', async (t) => {
  const addressed = (await test.create('/v1/referrals', officeA.physician.token, validReferral({ therapistId: practiceP.therapist.id, send: true }))).id;
  t.equal((await test.request({ method: 'GET', url: ref(addressed), token: practiceP.therapist.token })).statusCode, 200, 'the addressed therapist reads it');
  for (const label of ['GET /v1/referrals/{id}', 'POST /v1/referrals/{id}/accept', 'POST /v1/referrals/{id}/decline', 'GET /v1/referrals/{id}/messages']) {
    await t.test(`${label} › the colleague gets 404, audited`, async (t) => {
      await assertRefused(t, secondP, endpoint(label), addressed);
    });
  }
  t.notOk((await listedIds(secondTherapistP.token)).includes(addressed), 'nor does the colleague list it');
});

t.test('reroute › a practice that declined loses the referral, its thread and history once it is rerouted elsewhere', async (t) => {
  const moved = (await test.create('/v1/referrals', officeA.physician.token, validReferral({ practiceId: practiceQ.id, send: true }))).id;
  t.equal((await test.request({ method: 'GET', url: ref(moved), token: practiceQ.therapist.token })).statusCode, 200, "Q's therapist reads the referral sent to Q");
  t.equal(
    (await test.request({ method: 'POST', url: ref(moved, '/messages'), token: practiceQ.therapist.token, payload: { body: 'Fully booked this month, sorry.' } })).statusCode,
    201,
    "Q's therapist takes part in the thread",
  );
  requireStatus(await test.request({ method: 'POST', url: ref(moved, '/decline'), token: practiceQ.therapist.token, payload: { reason: 'No availability' } }), 200, 'decline');
  requireStatus(await test.request({ method: 'POST', url: ref(moved, '/reroute'), token: officeA.physician.token, payload: { practiceId: practiceP.id } }), 200, 'reroute');

  const formerParticipants: Caller[] = [
    { label: 'the therapist of the practice it was taken from', ...practiceQ.therapist },
    { label: 'the practice admin of the practice it was taken from', ...practiceQ.admin, acceptAs: practiceQ.therapist.id },
    { label: 'an API client of the practice it was taken from', ...practiceQClient, client: true, acceptAs: practiceQ.therapist.id },
  ];
  for (const caller of formerParticipants) {
    for (const label of ['GET /v1/referrals/{id}', 'GET /v1/referrals/{id}/history', 'GET /v1/referrals/{id}/messages', 'POST /v1/referrals/{id}/messages', 'POST /v1/referrals/{id}/accept']) {
      await t.test(`${label} › ${caller.label} gets 404, audited`, async (t) => {
        await assertRefused(t, caller, endpoint(label), moved);
      });
    }
    t.notOk((await listedIds(caller.token)).includes(moved), `${caller.label} no longer lists it`);
  }
  t.equal((await test.request({ method: 'GET', url: ref(moved), token: practiceP.therapist.token })).statusCode, 200, 'the new target reads it');
});

t.test('GET /v1/referrals/{id} › a stranger probing R with its id in upper case gets 404 and is audited as denied against R', async (t) => {
  const upper = R.toUpperCase();
  const caller = foreignCallers[0]!;
  for (const label of ['GET /v1/referrals/{id}', 'POST /v1/referrals/{id}/accept', 'GET /v1/referrals/{id}/messages']) {
    const route = endpoint(label);
    const { response, requestId } = await send(caller.token, route.method, route.url(upper), route.payload?.(caller));
    assertProblem(t, response, 404);
    assertNoLeak(t, response);
    const denied = (await auditEvents(test, { actorId: caller.id, outcome: 'denied' })).filter((event) => event.requestId === requestId);
    t.equal(denied.length, 1, `${label}: one denied audit event for the call`);
    t.equal(denied[0]?.resourceId, R, `${label}: naming R as stored (got ${denied[0]?.resourceId})`);
  }
});

t.test('GET /v1/referrals/{id} › an id written as urn:uuid:… is refused like a malformed or missing id, never a 500', async (t) => {
  for (const [who, token] of [['the prescriber', officeA.physician.token], ['a stranger', officeB.physician.token]] as const) {
    for (const id of [R, randomUUID()]) {
      const response = await test.request({ method: 'GET', url: ref(`urn:uuid:${id}`), token });
      t.ok([400, 404].includes(response.statusCode), `${who}, ${id === R ? 'R' : 'a random id'}: 400 or 404 (got ${response.statusCode})`);
      t.match(response.headers['content-type'], /^application\/problem\+json/, 'as problem+json');
      assertNoLeak(t, response);
    }
  }
});

// ─── Server-owned fields ────────────────────────────────────────────────────────────────────────

/** Asserts a 400 validation problem whose errors[] names the field. */
const assertNamesField = (t: Test, response: Response, field: string) => assertProblem(t, response, 400, [field]);

const serverOwned: [string, unknown][] = [
  ['id', randomUUID()],
  ['status', 'accepted'],
  ['version', 7],
  ['organizationId', officeB.id],
  ['acceptedBy', { therapistId: practiceQ.therapist.id, practiceId: practiceQ.id, at: '2026-01-01T00:00:00.000Z' }],
  ['createdAt', '2020-01-01T00:00:00.000Z'],
  ['updatedAt', '2020-01-01T00:00:00.000Z'],
  ['visitsUsed', 5],
  ['progress', { visitsUsed: 5, visitsAuthorized: 12, visitsRemaining: 7, firstPain: null, latestPain: null, latestOutcomeScores: [] }],
];

for (const [field, value] of serverOwned) {
  t.test(`POST /v1/referrals › a body carrying the server-owned ${field} is a 400 naming it, and nothing is created`, async (t) => {
    const referralsBefore = await listedIds(officeA.physician.token);
    const patientsBefore = requireStatus(await test.request({ method: 'GET', url: '/v1/patients?limit=200', token: officeA.physician.token }), 200, 'GET patients');
    const response = await test.request({
      method: 'POST',
      url: '/v1/referrals',
      token: officeA.physician.token,
      payload: validReferral({ practiceId: practiceP.id, send: true, [field]: value }),
    });
    assertNamesField(t, response, field);
    t.same(await listedIds(officeA.physician.token), referralsBefore, 'no referral was created');
    const patientsAfter = requireStatus(await test.request({ method: 'GET', url: '/v1/patients?limit=200', token: officeA.physician.token }), 200, 'GET patients');
    t.equal(patientsAfter.data.length, patientsBefore.data.length, 'no patient was created');
  });
}

for (const [field, value] of [['status', 'completed'], ['version', 99], ['organizationId', officeB.id]] as const) {
  t.test(`PATCH /v1/referrals/{id} › a body carrying the server-owned ${field} is a 400 naming it, and the referral is unchanged`, async (t) => {
    const before = await stateOf(R);
    const { visitsAuthorized } = JSON.parse(before.referral);
    const response = await test.request({ method: 'PATCH', url: ref(R), token: officeA.physician.token, payload: { visitsAuthorized: visitsAuthorized + 1, [field]: value } });
    assertNamesField(t, response, field);
    t.same(await stateOf(R), before);
  });
}

t.test('POST /v1/referrals/{id}/accept › a body carrying {status: "completed"} is a 400 naming status, and the referral stays sent', async (t) => {
  const before = await stateOf(S);
  t.equal(JSON.parse(before.referral).status, 'sent');
  const response = await test.request({ method: 'POST', url: ref(S, '/accept'), token: practiceP.therapist.token, payload: { status: 'completed' } });
  assertNamesField(t, response, 'status');
  t.same(await stateOf(S), before);
});

// ─── No token ───────────────────────────────────────────────────────────────────────────────────

const unauthenticated: { label: string; method: Method; url: string; payload?: Json }[] = [
  { label: 'POST /v1/referrals', method: 'POST', url: '/v1/referrals', payload: validReferral({ practiceId: practiceP.id, send: true }) },
  { label: 'GET /v1/referrals', method: 'GET', url: '/v1/referrals' },
  ...endpoints.map((route) => ({ label: route.label, method: route.method, url: route.url(R), payload: route.payload?.(foreignCallers[0]!) })),
];
for (const route of unauthenticated) {
  t.test(`${route.label} › without a token answers 401`, async (t) => {
    const before = await stateOf(R);
    const { response } = await send(undefined, route.method, route.url, route.payload);
    assertProblem(t, response, 401);
    t.match(response.headers['www-authenticate'], /^Bearer/, 'with a Bearer challenge');
    assertNoLeak(t, response);
    t.same(await stateOf(R), before, 'R is unchanged');
  });
}

t.test('end › after every refused call, R is exactly as it was at the start', async (t) => {
  t.same(await stateOf(R), stateOfRAtStart, 'in the database');
  t.same(await prescriberView(R), viewOfRAtStart, 'and as its prescriber reads it');
});

t.test("Idempotency-Key › a stranger repeating the prescriber's key and body gets 404, never the prescriber's replayed response", async (t) => {
  const key = `idem-${randomBytes(6).toString('hex')}`;
  const payload = { body: 'Please call the patient about the next visit.' };
  const first = await test.request({ method: 'POST', url: ref(R, '/messages'), token: officeA.physician.token, payload, headers: { 'idempotency-key': key } });
  t.equal(first.statusCode, 201, 'the prescriber posts a message with the key');
  for (const caller of [foreignCallers[0]!, foreignCallers[4]!]) {
    const before = await stateOf(R);
    const { response, requestId } = await send(caller.token, 'POST', ref(R, '/messages'), payload);
    t.equal(response.statusCode, 404, `${caller.label}: 404 without the key`);
    const repeated = await test.request({ method: 'POST', url: ref(R, '/messages'), token: caller.token, payload, headers: { 'idempotency-key': key } });
    t.equal(repeated.statusCode, 404, `${caller.label}: 404 with the prescriber's key`);
    t.notOk(repeated.headers['idempotent-replayed'], 'not a replay');
    t.notMatch(repeated.body, new RegExp(first.json().id), "without the prescriber's message");
    t.equal((await deniedEvents(caller.id, R, requestId)).length, 1, 'audited as denied');
    t.same(await stateOf(R), before, 'and nothing changed');
  }
});
