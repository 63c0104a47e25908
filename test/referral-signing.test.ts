// Signed orders (SPEC §14.1): a physician prescribing for themselves signs by creating; anyone else
// creates an unsigned draft that the prescriber signs (and may send) with an attestation; an EHR
// with scope referrals:sign vouches for its prescribers; nothing unsigned is sent; amendments that
// add care come from the prescriber only. Every refusal is a problem, changes nothing, and is audited.
import { sql } from 'drizzle-orm';
import t from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addApiClient, addMember, createOffice, createPractice, nextNpi } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { referralMoves } from './fixtures/referral-moves.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const stranger = await createOffice(test, networkAdmin);
const colleague = await addMember(test, networkAdmin, office.id, { role: 'physician', email: `colleague.${Date.now()}@office.example`, name: 'Dr. Colleague', npi: nextNpi() });
const vouchingEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write', 'referrals:sign'], 'Vouching EHR');
const plainEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write'], 'Plain EHR');
const { get, read, history, request } = referralMoves(test, office, practice);

const body = (overrides: Json = {}) => referralBody({ therapistId: practice.therapist.id, ...overrides });
const createAs = (token: string, overrides: Json = {}) => test.request({ method: 'POST', url: '/v1/referrals', token, payload: body(overrides) });
const sign = (id: string, token: string, payload: Json = { attestation: true }, headers: Record<string, string> = {}) =>
  test.request({ method: 'POST', url: `/v1/referrals/${id}/sign`, token, payload, headers });
const draftByStaff = async () => requireStatus(await createAs(office.staff.token, { prescriberId: office.physician.id }), 201, 'staff draft');
const countReferrals = async (token: string) => (await get('/v1/referrals?limit=200', token)).json().data.length as number;

t.test('a physician prescribing for themselves signs by creating the referral', async (t) => {
  const created = requireStatus(await createAs(office.physician.token, { send: true }), 201, 'create');
  t.equal(created.status, 'sent');
  t.match(created.signature, { signedBy: office.physician.id, method: 'physician', attestation: /sign this order/ });
  t.ok(Date.parse(created.signature.signedAt) <= Date.now(), 'signedAt is a time');
  t.same((await read(created.id)).signature, created.signature, 'the signature is kept');
});

t.test('office staff create an unsigned draft; sending it unsigned is 409 signature-required and changes nothing', async (t) => {
  const draft = await draftByStaff();
  t.equal(draft.status, 'draft');
  t.equal(draft.signature, null, 'unsigned');
  const refused = await request(draft.id, 'send', office.staff.token);
  t.equal(assertProblem(t, refused, 409).code, 'signature-required');
  t.match(await read(draft.id), { status: 'draft', version: 1, signature: null }, 'still an unsigned draft');
  t.match(await auditEvents(test, { action: 'referral.send', resourceId: draft.id }), [{ outcome: 'error', httpStatus: 409 }], 'the refusal is audited');
});

t.test('office staff creating with "send": true get 409 signature-required, and nothing is written', async (t) => {
  const before = await countReferrals(office.physician.token);
  const refused = await createAs(office.staff.token, { prescriberId: office.physician.id, send: true });
  t.equal(assertProblem(t, refused, 409).code, 'signature-required');
  t.equal(await countReferrals(office.physician.token), before, 'no referral was created');
  // A physician creating for a colleague is not the prescriber either.
  const forColleague = await createAs(office.physician.token, { prescriberId: colleague.id, send: true });
  t.equal(assertProblem(t, forColleague, 409).code, 'signature-required');
});

t.test('the prescriber signs with an attestation, once; history, audit and ETag follow', async (t) => {
  const draft = await draftByStaff();
  assertProblem(t, await sign(draft.id, office.physician.token, {}), 400, ['attestation'], 'without attestation');
  assertProblem(t, await sign(draft.id, office.physician.token, { attestation: false }), 400, ['attestation'], 'attestation false');
  assertProblem(t, await sign(draft.id, office.physician.token, { attestation: true, note: 'x' }), 400, [], 'unknown member');
  assertProblem(t, await sign(draft.id, office.physician.token, { attestation: true }, { 'if-match': '"7"' }), 412, [], 'stale If-Match');
  t.equal((await read(draft.id)).signature, null, 'none of those signed it');

  const response = await sign(draft.id, office.physician.token, { attestation: true }, { 'if-match': '"1"' });
  const signed = requireStatus(response, 200, 'sign');
  t.equal(response.headers.etag, '"2"', 'a new version');
  t.match(signed, { status: 'draft', version: 2, signature: { signedBy: office.physician.id, method: 'physician' } });
  t.match((await history(draft.id)).at(-1), { action: 'sign', fromStatus: 'draft', toStatus: 'draft', version: 2, actor: { id: office.physician.id } });
  t.equal((await auditEvents(test, { action: 'referral.sign', resourceId: draft.id, outcome: 'success' })).length, 1, 'audited');

  const again = await sign(draft.id, office.physician.token);
  t.equal(assertProblem(t, again, 409).code, 'already-signed', 'a second signature is 409');
  t.equal((await read(draft.id)).version, 2, 'unchanged');

  const sent = requireStatus(await request(draft.id, 'send', office.staff.token), 200, 'staff send the signed draft');
  t.equal(sent.status, 'sent');
});

t.test('"send": true signs and sends in one change: two history steps, one version', async (t) => {
  const draft = await draftByStaff();
  const sent = requireStatus(await sign(draft.id, office.physician.token, { attestation: true, send: true }), 200, 'sign and send');
  t.match(sent, { status: 'sent', version: 2, signature: { method: 'physician' } });
  const steps = (await history(draft.id)).slice(-2);
  t.match(steps, [
    { action: 'sign', fromStatus: 'draft', toStatus: 'draft', version: 2 },
    { action: 'send', fromStatus: 'draft', toStatus: 'sent', version: 2 },
  ]);
  t.equal((await get(`/v1/referrals/${draft.id}`, practice.therapist.token)).statusCode, 200, 'the target sees it');
  // Sending is a move of drafts only: signing with send on a sent referral signs nothing.
  const legacy = await draftByStaff();
  // As a referral sent before signing existed.
  await test.app.db.execute(sql`update referrals set status = 'sent' where id = ${legacy.id}`);
  t.equal(assertProblem(t, await sign(legacy.id, office.physician.token, { attestation: true, send: true }), 409).code, 'illegal-transition');
  t.equal((await read(legacy.id)).signature, null, 'not signed either');
  t.match(requireStatus(await sign(legacy.id, office.physician.token), 200, 'a referral sent unsigned can still be signed'), { status: 'sent' });
});

t.test('only the prescriber signs: colleagues, staff and the practice side get 403 (audited); a physician of another office 404', async (t) => {
  const draft = await draftByStaff();
  for (const [who, token] of [
    ['another physician of the office', colleague.token],
    ['office staff', office.staff.token],
    ['the office admin', office.admin.token],
  ] as const) {
    assertProblem(t, await sign(draft.id, token), 403, [], who);
  }
  t.equal((await auditEvents(test, { action: 'referral.sign', resourceId: draft.id, outcome: 'denied' })).length, 3, 'each attempt is audited');
  assertProblem(t, await sign(draft.id, plainEhr.token), 403, [], 'an EHR without referrals:sign');
  // Roles that never sign anything are refused before the referral is looked up: the 403 tells nothing about it.
  assertProblem(t, await sign(draft.id, practice.therapist.token), 403, [], 'the target therapist');
  assertProblem(t, await sign(draft.id, practice.admin.token), 403, [], 'the practice admin');
  assertProblem(t, await sign(draft.id, stranger.physician.token), 404, [], 'a physician of another office');
  const strangerAudit = await auditEvents(test, { action: 'referral.sign', resourceId: draft.id, actorId: stranger.physician.id });
  t.match(strangerAudit, [{ outcome: 'denied', httpStatus: 404 }], "the stranger's attempt is audited as a 404");
  t.equal((await read(draft.id)).signature, null, 'still unsigned');
});

t.test('an EHR with referrals:sign creates signed orders (ehr_attested); one without creates drafts', async (t) => {
  const vouched = requireStatus(await createAs(vouchingEhr.token, { prescriberId: office.physician.id, send: true }), 201, 'vouching EHR sends');
  t.match(vouched, { status: 'sent', signature: { signedBy: office.physician.id, method: 'ehr_attested', attestation: /EHR/ } });
  t.equal(assertProblem(t, await createAs(plainEhr.token, { prescriberId: office.physician.id, send: true }), 409).code, 'signature-required');
  const draft = requireStatus(await createAs(plainEhr.token, { prescriberId: office.physician.id }), 201, 'plain EHR draft');
  t.equal(draft.signature, null);
  const signed = requireStatus(await sign(draft.id, vouchingEhr.token, { attestation: true, send: true }), 200, 'the vouching EHR signs a draft');
  t.match(signed, { status: 'sent', signature: { method: 'ehr_attested', signedBy: office.physician.id } });
});

t.test('amendments that add care come from the prescriber only', async (t) => {
  const referral = requireStatus(await createAs(office.physician.token, { send: true }), 201, 'create');
  const amend = (token: string, visitsAuthorized: number) =>
    test.request({ method: 'PATCH', url: `/v1/referrals/${referral.id}`, token, payload: { visitsAuthorized } });
  assertProblem(t, await amend(office.staff.token, 20), 403, [], 'office staff');
  assertProblem(t, await amend(colleague.token, 20), 403, [], 'another physician');
  assertProblem(t, await amend(plainEhr.token, 20), 403, [], 'an EHR without referrals:sign');
  t.equal((await read(referral.id)).visitsAuthorized, 12, 'unchanged');
  t.equal(requireStatus(await amend(office.physician.token, 20), 200, 'prescriber').visitsAuthorized, 20);
  t.equal(requireStatus(await amend(vouchingEhr.token, 24), 200, 'vouching EHR').visitsAuthorized, 24);
});

t.test('a referral sent before orders were signed is rerouted only once signed', async (t) => {
  const legacy = await draftByStaff();
  await test.app.db.execute(sql`update referrals set status = 'declined' where id = ${legacy.id}`);
  const reroute = () => test.request({ method: 'POST', url: `/v1/referrals/${legacy.id}/reroute`, token: office.staff.token, payload: { practiceId: practice.id } });
  t.equal(assertProblem(t, await reroute(), 409).code, 'signature-required');
  requireStatus(await sign(legacy.id, office.physician.token), 200, 'sign');
  t.equal(requireStatus(await reroute(), 200, 'reroute').status, 'sent');
});

t.test('signatures at once: one signs, the others get 409 already-signed, one history step', async (t) => {
  const draft = await draftByStaff();
  const answers = await Promise.all(Array.from({ length: 5 }, () => sign(draft.id, office.physician.token, { attestation: true, send: true })));
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 409, 409, 409, 409]);
  for (const refused of answers.filter((answer) => answer.statusCode === 409)) t.equal(refused.json().code, 'already-signed');
  t.same((await history(draft.id)).map((step: Json) => step.action), ['create', 'sign', 'send']);
  t.match(await read(draft.id), { status: 'sent', version: 2 });
});
