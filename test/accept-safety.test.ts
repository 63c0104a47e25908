// Safety at accept (SPEC §14.2): precautions are acknowledged before a referral is taken on, and
// only a therapist whose license is verified and current is matched, targeted or may accept. The
// practice hears of a license about to run out (license.expiring), once per expiry date.
import t, { type Test } from 'tap';
import { fakeDns } from './fixtures/fake-dns.js';
import { addTherapist, createOffice, createPractice, type Member } from './fixtures/network.js';
import { startReceiver, verified } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { expectStatus } from './fixtures/responses.js';
import { buildWebhookApp, drain, registerEndpoint } from './fixtures/webhooks.js';
import type { Json, TestResponse } from './helper.js';

const dayMs = 86_400_000;
const isoDate = (offsetDays: number) => new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);

// ROLE=api: the worker's periodic jobs run only when a test calls them.
const dns = fakeDns();
const test = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' }, dns.resolve);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id, { name: 'Colleague' });

const request = (method: 'GET' | 'POST' | 'PATCH', url: string, token: string, payload?: Json, headers: Record<string, string> = {}) =>
  test.request({ method, url, token, headers, ...(payload ? { payload } : {}) });
const userUrl = (organizationId: string, userId: string) => `/v1/organizations/${organizationId}/users/${userId}`;

async function setLicense(organizationId: string, therapist: Member, changes: Json): Promise<void> {
  // A changed license needs verifying again; the second PATCH sets verification as the test wants it.
  const { verified: isVerified = true, ...license } = changes;
  if (Object.keys(license).length > 0) {
    const current = (await request('GET', userUrl(organizationId, therapist.id), networkAdmin)).json().therapist.license;
    const changed = await request('PATCH', userUrl(organizationId, therapist.id), networkAdmin, { license: { number: current.number, state: current.state, expiresOn: license.expiresOn } });
    if (changed.statusCode !== 200) throw new Error(`license change failed: ${changed.statusCode} ${changed.body}`);
  }
  const verifiedAnswer = await request('PATCH', userUrl(organizationId, therapist.id), networkAdmin, { licenseVerified: isVerified });
  if (verifiedAnswer.statusCode !== 200) throw new Error(`verification failed: ${verifiedAnswer.statusCode} ${verifiedAnswer.body}`);
}

async function sent(target: Json, overrides: Json = {}): Promise<Json> {
  return test.create('/v1/referrals', office.physician.token, referralBody({ send: true, ...target, ...overrides }));
}

const accept = (referralId: string, token: string, payload?: Json) => request('POST', `/v1/referrals/${referralId}/accept`, token, payload);
const read = async (referralId: string): Promise<Json> => (await request('GET', `/v1/referrals/${referralId}`, office.physician.token)).json();
const history = async (referralId: string): Promise<Json[]> => (await request('GET', `/v1/referrals/${referralId}/history`, office.physician.token)).json().data;

function assertUnchanged(t: Test, before: Json, after: Json, what: string) {
  t.same({ status: after.status, version: after.version, acceptedBy: after.acceptedBy }, { status: before.status, version: before.version, acceptedBy: before.acceptedBy }, `${what}: nothing changed`);
}

t.test('precautions › an accept that does not acknowledge them is 422 precautions-not-acknowledged and changes nothing', async (t) => {
  const referral = await sent({ therapistId: practice.therapist.id }, { precautions: ['No deep pressure over L4-L5'] });
  for (const [what, payload] of [
    ['no body', undefined],
    ['an empty body', {}],
    ['acknowledgedPrecautions false', { acknowledgedPrecautions: false }],
  ] as const) {
    const response = await accept(referral.id, practice.therapist.token, payload);
    const problem = assertProblem(t, response, 422, ['acknowledgedPrecautions'], what);
    t.equal(problem.code, 'precautions-not-acknowledged', `${what}: the code says why`);
    assertUnchanged(t, referral, await read(referral.id), what);
  }
  assertProblem(t, await accept(referral.id, practice.therapist.token, { acknowledgedPrecautions: 'yes' }), 400, ['acknowledgedPrecautions'], 'a string is not a boolean');
  t.same((await history(referral.id)).map((event) => event.action), ['create', 'send'], 'no accept in the history');

  const accepted = await accept(referral.id, practice.therapist.token, { acknowledgedPrecautions: true });
  t.match(expectStatus(t, accepted, 200, 'acknowledged'), { status: 'accepted', acceptedBy: { therapistId: practice.therapist.id } });
  const acceptEvent = (await history(referral.id)).find((event) => event.action === 'accept');
  t.same(acceptEvent?.changes, { therapistId: practice.therapist.id, acknowledgedPrecautions: true }, 'the history keeps the acknowledgement');
});

t.test('precautions › contraindications alone also need the acknowledgement; a practice admin acknowledges when naming the therapist', async (t) => {
  const referral = await sent({ practiceId: practice.id }, { contraindications: 'On anticoagulants: light pressure only' });
  const refused = assertProblem(t, await accept(referral.id, practice.admin.token, { therapistId: colleague.id }), 422, ['acknowledgedPrecautions']);
  t.equal(refused.code, 'precautions-not-acknowledged');
  const accepted = await accept(referral.id, practice.admin.token, { therapistId: colleague.id, acknowledgedPrecautions: true });
  t.match(expectStatus(t, accepted, 200, 'the admin accepts for the colleague'), { acceptedBy: { therapistId: colleague.id } });
});

t.test('precautions › a referral without any (or with blank contraindications) is accepted without the flag, and the history says nothing of it', async (t) => {
  for (const overrides of [{}, { precautions: [], contraindications: '   ' }]) {
    const referral = await sent({ therapistId: practice.therapist.id }, overrides);
    expectStatus(t, await accept(referral.id, practice.therapist.token), 200, `accept ${JSON.stringify(overrides)}`);
    const acceptEvent = (await history(referral.id)).find((event) => event.action === 'accept');
    t.same(acceptEvent?.changes, { therapistId: practice.therapist.id });
  }
  const acknowledgedAnyway = await sent({ therapistId: practice.therapist.id });
  expectStatus(t, await accept(acknowledgedAnyway.id, practice.therapist.token, { acknowledgedPrecautions: true }), 200, 'an acknowledgement of nothing is harmless');
});

t.test('license › a therapist targeted while valid cannot accept once the license is unverified or expired: 409 license-invalid, saying which', async (t) => {
  const own = await createPractice(test, networkAdmin);
  const therapist = own.therapist;
  const referral = await sent({ therapistId: therapist.id });

  await setLicense(own.id, therapist, { verified: false });
  let problem = assertProblem(t, await accept(referral.id, therapist.token), 409);
  t.match(problem, { code: 'license-invalid', reasons: ['unverified'], detail: /Your license has not been verified/ });
  assertUnchanged(t, referral, await read(referral.id), 'unverified');

  await setLicense(own.id, therapist, { expiresOn: isoDate(-1) });
  problem = assertProblem(t, await accept(referral.id, therapist.token), 409);
  t.match(problem, { code: 'license-invalid', reasons: ['expired'], detail: new RegExp(`expired on ${isoDate(-1)}`) });

  await setLicense(own.id, therapist, { expiresOn: isoDate(-1), verified: false });
  problem = assertProblem(t, await accept(referral.id, own.admin.token, { therapistId: therapist.id }), 409);
  t.match(problem, { code: 'license-invalid', reasons: ['expired', 'unverified'], detail: /^The accepting therapist's license expired on .* and has not been verified/ });
  assertUnchanged(t, referral, await read(referral.id), 'expired and unverified');

  await setLicense(own.id, therapist, { expiresOn: isoDate(0) });
  expectStatus(t, await accept(referral.id, therapist.token), 200, 'a license is valid through its expiry day');
});

t.test('license › of a practice, only a therapist with a valid license accepts; an open offer made before the license lapsed cannot be taken', async (t) => {
  const own = await createPractice(test, networkAdmin, { location: { lat: 44.0521, lng: -123.0868 }, techniques: ['trigger_point', 'craniosacral'] });
  const partner = await addTherapist(test, networkAdmin, own.id, { techniques: ['trigger_point', 'craniosacral'] });
  await setLicense(own.id, partner, { verified: false });

  const toPractice = await sent({ practiceId: own.id });
  t.match(assertProblem(t, await accept(toPractice.id, partner.token), 409), { code: 'license-invalid' }, 'the unverified partner is refused');
  expectStatus(t, await accept(toPractice.id, own.therapist.token), 200, 'the verified therapist accepts');

  const offer = await sent({ network: { techniques: ['craniosacral'], near: { lat: 44.0521, lng: -123.0868 }, radiusKm: 5 } }, { techniques: ['craniosacral'] });
  t.equal((await request('GET', `/v1/referrals/${offer.id}`, partner.token)).statusCode, 404, 'the unverified partner was not offered it');
  t.equal((await request('GET', `/v1/referrals/${offer.id}`, own.therapist.token)).statusCode, 200, 'the verified therapist was');
  await setLicense(own.id, own.therapist, { expiresOn: isoDate(-3) });
  t.match(assertProblem(t, await accept(offer.id, own.therapist.token), 409), { code: 'license-invalid', reasons: ['expired'] }, 'expired since the offer');

  await setLicense(own.id, own.therapist, { expiresOn: isoDate(365) });
  const nobody = await request('POST', '/v1/referrals', office.physician.token, referralBody({ send: true, techniques: ['craniosacral'], network: { near: { lat: 44.0521, lng: -123.0868 }, radiusKm: 5 } }));
  t.equal(nobody.statusCode, 201, 'matched again once renewed and verified');
});

t.test('license › a referral cannot be sent or rerouted to a therapist without a valid license', async (t) => {
  const own = await createPractice(test, networkAdmin);
  await setLicense(own.id, own.therapist, { verified: false });
  const created = await request('POST', '/v1/referrals', office.physician.token, referralBody({ therapistId: own.therapist.id }));
  t.match(assertProblem(t, created, 409), { code: 'license-invalid', reasons: ['unverified'], detail: /therapistId/ }, 'create');

  const declined = await sent({ therapistId: colleague.id });
  const answer: TestResponse = await request('POST', `/v1/referrals/${declined.id}/decline`, colleague.token, { reason: 'Fully booked' });
  expectStatus(t, answer, 200, 'declined');
  const rerouted = await request('POST', `/v1/referrals/${declined.id}/reroute`, office.physician.token, { therapistId: own.therapist.id });
  t.match(assertProblem(t, rerouted, 409), { code: 'license-invalid' }, 'reroute');
  t.equal((await read(declined.id)).status, 'declined', 'still declined');
});

t.test('license.expiring › the practice hears once per expiry date, 30 days ahead, and the office never', async (t) => {
  const own = await createPractice(test, networkAdmin);
  const [practiceReceiver, officeReceiver] = [await startReceiver(t), await startReceiver(t)];
  const practiceEndpoint = await registerEndpoint(t, test, own.admin.token, { url: practiceReceiver.url, eventTypes: ['license.expiring'] });
  await registerEndpoint(t, test, office.admin.token, { url: officeReceiver.url, eventTypes: ['license.expiring'] });
  const soon = await addTherapist(test, networkAdmin, own.id, { license: { number: 'MT-SOON', state: 'OR', expiresOn: isoDate(20) } });
  const later = await addTherapist(test, networkAdmin, own.id, { license: { number: 'MT-LATER', state: 'OR', expiresOn: isoDate(45) } });
  await addTherapist(test, networkAdmin, own.id, { license: { number: 'MT-GONE', state: 'OR', expiresOn: isoDate(-2) } });

  // Several workers at once: each expiry is told exactly once.
  const counts = await Promise.all([test.app.sendLicenseNotices(), test.app.sendLicenseNotices(), test.app.sendLicenseNotices()]);
  await drain(test);
  const told = practiceReceiver.requests.map((delivered) => verified(t, delivered, practiceEndpoint.secret, 'the notice'));
  const about = (id: string) => told.filter((payload) => payload.data.id === id);
  t.equal(about(soon.id).length, 1, 'the license 20 days from expiry is told once');
  t.ok(counts.reduce((sum, count) => sum + count, 0) >= 1, 'the sweep counts what it sent');
  t.same(about(soon.id)[0], {
    type: 'license.expiring',
    timestamp: about(soon.id)[0]!.timestamp,
    data: { resource: 'user', id: soon.id, licenseExpiresOn: isoDate(20), organizations: [own.id], url: userUrl(own.id, soon.id) },
  }, 'a thin payload: the therapist, the date, where to look');
  t.equal(about(later.id).length, 0, 'a license 45 days from expiry is not told yet');
  t.equal(officeReceiver.requests.length, 0, 'the office hears nothing of the practice\'s people');

  await test.app.sendLicenseNotices();
  await drain(test);
  t.equal(practiceReceiver.requests.filter((delivered) => JSON.parse(delivered.body).data.id === soon.id).length, 1, 'a second sweep tells nothing new');

  // Renewed, but still inside the window: the new date is news of its own.
  await setLicense(own.id, soon, { expiresOn: isoDate(25) });
  await test.app.sendLicenseNotices();
  await drain(test);
  const renewed = practiceReceiver.requests.map((delivered) => JSON.parse(delivered.body)).filter((payload: Json) => payload.data.id === soon.id);
  t.same(renewed.map((payload: Json) => payload.data.licenseExpiresOn), [isoDate(20), isoDate(25)], 'told again for the new expiry date');
});

t.test('license.expiring › a partner subscribes to it like any event', async (t) => {
  const receiver = await startReceiver(t);
  const endpoint = await registerEndpoint(t, test, practice.admin.token, { url: receiver.url, eventTypes: ['license.expiring', 'referral.sent'] });
  t.same(endpoint.eventTypes, ['license.expiring', 'referral.sent']);
});
