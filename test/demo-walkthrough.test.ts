// The README walk-through, step by step, against a freshly seeded demo network.
import t from 'tap';
import { demoCredentials } from '../src/seed/demo-network.js';
import { measuredVisitNoteBody } from './fixtures/referral-bodies.js';
import { buildTestApp, type Json } from './helper.js';

t.test('README walk-through › works as printed on the seeded demo network', async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: 'true' } });
  const token = await test.login(demoCredentials.users.physician, demoCredentials.password);

  const me = await test.request({ method: 'GET', url: '/v1/me', token });
  t.equal(me.statusCode, 200);
  t.match(me.json(), { kind: 'user', role: 'physician', organization: { name: 'Riverside Family Medicine' } });

  const search = await test.request({
    method: 'GET',
    url: '/v1/therapists?technique=trigger_point&near=45.5231,-122.6765&radiusKm=30&accepting=true',
    token,
  });
  t.equal(search.statusCode, 200);
  const found = search.json().data as { name: string; distanceKm: number }[];
  t.same(found.map((therapist) => therapist.name), ['Sam Ortiz, LMT', 'Alex Rivera, LMT'], 'both trigger point therapists, nearest first');
  t.ok(found[0]!.distanceKm < found[1]!.distanceKm);

  const patient = await test.create('/v1/patients', token, {
    givenName: 'Maria',
    familyName: 'Gomez',
    birthDate: '1978-04-02',
    sex: 'female',
    identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-0042' }],
  });
  const byMrn = await test.request({ method: 'GET', url: '/v1/patients?identifier=urn:riverside:mrn|MRN-0042', token });
  t.same(byMrn.json().data.map((row: { id: string }) => row.id), [patient.id]);

  const { clientId, clientSecret } = demoCredentials.apiClient;
  const clientToken = await test.request({
    method: 'POST',
    url: '/v1/auth/token',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    payload: 'grant_type=client_credentials',
  });
  t.equal(clientToken.statusCode, 200);
  t.match(clientToken.json(), { token_type: 'Bearer', scope: /patients:write/ });

  const invalid = await test.request({
    method: 'POST',
    url: '/v1/patients',
    token,
    payload: { givenName: 'Maria', birthDate: '1978-02-30', sex: 'female', shoeSize: 9 },
  });
  t.equal(invalid.statusCode, 400);
  t.same(
    invalid.json().errors.map((error: { field: string }) => error.field).sort(),
    ['birthDate', 'familyName', 'shoeSize'],
  );
});

t.test('demo seed › every demo account signs in, and a database that has organizations is not seeded again', async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: 'true' } });
  for (const email of Object.values(demoCredentials.users)) {
    t.type(await test.login(email, demoCredentials.password), 'string', `${email} signs in`);
  }
  const admin = await test.login(demoCredentials.users.networkAdmin, demoCredentials.password);
  const before = await test.request({ method: 'GET', url: '/v1/organizations?limit=200', token: admin });
  t.equal(before.json().data.length, 3, 'one office and two practices');
  const { bootstrap } = await import('../src/seed/bootstrap.js');
  await bootstrap(test.app, test.config);
  const after = await test.request({ method: 'GET', url: '/v1/organizations?limit=200', token: admin });
  t.equal(after.json().data.length, 3, 'a second start seeds nothing');
});

t.test('demo seed › is off by default on PostgreSQL and on when asked', async (t) => {
  const { loadConfig } = await import('../src/config.js');
  t.equal(loadConfig({ DATABASE_URL: 'postgres://x/y', JWT_SECRET: 'x'.repeat(32), DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'), AUDIT_SIGNING_KEY: Buffer.alloc(32).toString('base64') }).demoSeed, false);
  t.equal(loadConfig({ DATABASE_URL: 'postgres://x/y', JWT_SECRET: 'x'.repeat(32), DATA_ENCRYPTION_KEY: Buffer.alloc(32).toString('base64'), AUDIT_SIGNING_KEY: Buffer.alloc(32).toString('base64'), DEMO_SEED: 'true' }).demoSeed, true);
  t.equal(loadConfig({}).demoSeed, true);
});

t.test("README walk-through › a referral's life, as printed, with the demo users", async (t) => {
  const test = await buildTestApp(t, { env: { DEMO_SEED: 'true' } });
  const { users, password } = demoCredentials;
  const [dr, sam, alex, admin] = await Promise.all(
    [users.physician, users.harborTherapist, users.eastsideTherapist, users.networkAdmin].map((email) => test.login(email, password)),
  );
  const harbor = (
    await test.request({ method: 'GET', url: '/v1/therapists?technique=trigger_point&near=45.5231,-122.6765&radiusKm=30', token: dr })
  ).json().data[0].practice.id;
  const patient = await test.create('/v1/patients', dr!, {
    givenName: 'Maria',
    familyName: 'Gomez',
    birthDate: '1978-04-02',
    sex: 'female',
    identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-0042' }],
  });
  const byMrn = await test.request({ method: 'GET', url: '/v1/patients?identifier=urn:riverside:mrn|MRN-0042', token: dr });
  t.equal(byMrn.json().data[0].id, patient.id);

  const created = await test.request({
    method: 'POST',
    url: '/v1/referrals',
    token: dr,
    headers: { 'idempotency-key': crypto.randomUUID() },
    payload: {
      patientId: patient.id,
      diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
      reason: 'Chronic low back pain with lumbar paraspinal trigger points',
      goals: ['Pain at or below 3/10', 'Return to full work duties'],
      techniques: ['trigger_point', 'myofascial_release'],
      bodyRegions: ['lower_back'],
      precautions: ['No deep pressure over L4-L5'],
      frequencyPerWeek: 2,
      durationWeeks: 6,
      sessionMinutes: 60,
      priority: 'routine',
      insurance: { payer: 'Acme Health', memberId: 'AH123456789', cptCodes: ['97124', '97140'] },
      practiceId: harbor,
      send: true,
    },
  });
  t.equal(created.statusCode, 201);
  const referral = created.json();
  t.match(referral, { status: 'sent', version: 1, visitsAuthorized: 12, signature: { method: 'physician' } }, 'sent, and signed: Dr. Lee prescribed for herself');

  // The front desk prepares an order in Dr. Lee's name: a draft until she signs it.
  const desk = await test.login(users.officeStaff, password);
  const lee = (await test.request({ method: 'GET', url: '/v1/me', token: dr })).json().id;
  const draft = await test.create('/v1/referrals', desk, {
    patientId: patient.id,
    prescriberId: lee,
    diagnoses: [{ code: 'G44.209', display: 'Tension-type headache, unspecified, not intractable' }],
    reason: 'Tension headaches with cervical muscle tightness',
    techniques: ['myofascial_release'],
    bodyRegions: ['neck'],
    frequencyPerWeek: 1,
    durationWeeks: 4,
    sessionMinutes: 45,
    practiceId: harbor,
  });
  t.match(draft, { status: 'draft', signature: null });
  const early = await test.request({ method: 'POST', url: `/v1/referrals/${draft.id}/send`, token: desk });
  t.match(early.json(), { status: 409, code: 'signature-required' }, 'the desk cannot send it unsigned');
  const signed = await test.request({ method: 'POST', url: `/v1/referrals/${draft.id}/sign`, token: dr, payload: { attestation: true, send: true } });
  t.match(signed.json(), { status: 'sent', signature: { method: 'physician', signedBy: lee } }, 'Dr. Lee signs and sends it');

  const pulled = await test.request({ method: 'GET', url: '/v1/referrals?status=sent', token: sam });
  t.ok(pulled.json().data.some((row: { id: string }) => row.id === referral.id), 'Sam pulls it');
  const unacknowledged = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: sam, headers: { 'if-match': '"1"' } });
  t.match(unacknowledged.json(), { status: 422, code: 'precautions-not-acknowledged' }, 'the precaution must be acknowledged');
  const accepted = await test.request({
    method: 'POST',
    url: `/v1/referrals/${referral.id}/accept`,
    token: sam,
    headers: { 'if-match': '"1"' },
    payload: { acknowledgedPrecautions: true },
  });
  t.equal(accepted.json().status, 'accepted');

  const hidden = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: alex });
  t.equal(hidden.statusCode, 404, 'Alex at another practice gets 404');

  const startsAt = new Date(Date.now() + 86_400_000).toISOString();
  const booked = await test.create(`/v1/referrals/${referral.id}/appointments`, sam!, { startsAt, minutes: 60 });
  t.equal(booked.status, 'scheduled', 'Sam books the first visit');
  // What `printf … > prescription.pdf` writes, sent as `curl -F` sends it.
  const prescriptionPdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'latin1');
  const boundary = '------------------------walkthrough';
  const form = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nprescription\r\n--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nSigned prescription\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="prescription.pdf"\r\nContent-Type: application/pdf\r\n\r\n`),
    prescriptionPdf,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const attached = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token: dr, payload: form, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
  t.equal(attached.statusCode, 201, 'the office attaches the signed prescription');
  t.equal(attached.json().contentType, 'application/pdf');
  const withBooking = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: dr });
  t.equal(withBooking.json().nextAppointmentAt, new Date(startsAt).toISOString(), 'the referral shows the booking');
  const feed = await test.request({ method: 'GET', url: '/v1/events?limit=100', token: sam });
  t.same(
    feed.json().data.filter((event: Json) => event.data.referralId === referral.id).map((event: Json) => event.type),
    ['referral.sent', 'referral.accepted', 'appointment.scheduled', 'document.added'],
    "Sam's app follows the events feed",
  );
  const copy = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/documents/${attached.json().id}/content`, token: sam });
  t.same(copy.rawPayload, prescriptionPdf, 'and downloads the document byte for byte');

  const today = new Date().toISOString().slice(0, 10);
  const first = await test.create(`/v1/referrals/${referral.id}/progress-reports`, sam!, measuredVisitNoteBody({ visitDate: today }));
  t.equal(first.visitNumber, 1);

  const urgent = await test.create(`/v1/referrals/${referral.id}/messages`, sam!, { body: 'Patient reports numbness after session 1. Please advise.', priority: 'urgent' });
  const flagged = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: dr });
  t.match(flagged.json().activity, { unreadMessages: 1, unacknowledgedUrgent: 1 }, 'the office sees one unread, unacknowledged urgent message');
  const acknowledged = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages/${urgent.id}/acknowledge`, token: dr });
  t.ok(acknowledged.json().acknowledgedAt, 'Dr. Lee acknowledges it');
  const read = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/messages/read`, token: dr });
  t.equal(read.json().unread, 0);

  const final = await test.create(`/v1/referrals/${referral.id}/progress-reports`, sam!, {
    visitDate: today,
    subjective: 'Pain 3/10',
    objective: 'Full lumbar flexion',
    assessment: 'Goals met',
    plan: 'Discharge; home stretching',
    painBefore: 3,
    painAfter: 2,
    outcomeMeasures: [{ instrument: 'ODI', score: 22 }],
    techniquesApplied: ['myofascial_release'],
    minutes: 60,
    final: true,
  });
  t.equal(final.visitNumber, 2);

  const followed = (await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: dr })).json();
  t.equal(followed.status, 'completed');
  t.match(followed.progress, { visitsUsed: 2, visitsAuthorized: 12, firstPain: { before: 7 }, latestPain: { before: 3, after: 2 } });
  const history = (await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/history`, token: dr })).json();
  t.same(
    history.data.map((event: { action: string }) => event.action),
    ['create', 'send', 'accept', 'start', 'complete'],
  );

  // The clinical loop the demo network was seeded with (README "The clinical loop back to the physician").
  const inProgress = (await test.request({ method: 'GET', url: '/v1/referrals?status=in_progress', token: dr })).json().data as Json[];
  const jon = inProgress.find((row) => row.patient.familyName === 'Park');
  t.ok(jon, "Jon Park's course is in progress");
  t.match(jon, { reportEveryVisits: 3, progress: { visitsUsed: 3 }, reportDue: { afterVisit: 6, overdue: false } });
  const reports = (await test.request({ method: 'GET', url: `/v1/referrals/${jon!.id}/reports`, token: dr })).json().data as Json[];
  t.same(
    reports.map((report) => `${report.kind} ${report.signature ? 'signed' : 'waiting'} pain ${report.painTrend.map((point: Json) => `${point.before}>${point.after}`).join(' ')}`),
    ['evaluation signed pain ', 'progress waiting pain 6>4 5>3 4>2'],
    'the evaluation is signed; the progress report, with three visits, waits',
  );
  t.match(reports[1]!.outcomes, [{ instrument: 'NDI', baseline: 22, latest: 13, change: -9 }]);
  const progressId = reports.find((report) => report.kind === 'progress')!.id;
  const pdf = await test.request({ method: 'GET', url: `/v1/referrals/${jon!.id}/reports/${progressId}`, token: dr, headers: { accept: 'application/pdf' } });
  t.equal(pdf.headers['content-type'], 'application/pdf');
  t.equal(pdf.rawPayload.subarray(0, 5).toString('latin1'), '%PDF-');
  const signedReport = await test.request({ method: 'POST', url: `/v1/referrals/${jon!.id}/reports/${progressId}/sign`, token: dr, payload: { attestation: true } });
  t.equal(signedReport.json().signature.method, 'physician');
  const renewals = (await test.request({ method: 'GET', url: `/v1/referrals/${jon!.id}/renewal-requests`, token: dr })).json().data as Json[];
  const pending = renewals.find((request) => request.status === 'pending');
  t.match(pending, { additionalVisits: 4, extendWeeks: 4, reportId: progressId });
  const approved = await test.request({ method: 'POST', url: `/v1/referrals/${jon!.id}/renewal-requests/${pending!.id}/approve`, token: dr, payload: { attestation: true } });
  t.equal(approved.json().status, 'approved');
  const renewed = (await test.request({ method: 'GET', url: `/v1/referrals/${jon!.id}`, token: dr })).json();
  t.equal(renewed.visitsAuthorized, 10, '6 + 4 visits');
  t.equal(renewed.expiresOn, new Date(Date.parse(`${jon!.expiresOn}T00:00:00Z`) + 28 * 86_400_000).toISOString().slice(0, 10), 'four more weeks');

  const viewers = (await test.request({ method: 'GET', url: `/v1/audit-events/viewers?patientId=${patient.id}`, token: admin })).json();
  t.same(viewers.data.map((viewer: { actor: { role: string } }) => viewer.actor.role).sort(), ['office_staff', 'physician', 'therapist'], 'the front desk, Dr. Lee and Sam');
  const verified = (await test.request({ method: 'GET', url: '/v1/audit-events/verify', token: admin })).json();
  t.equal(verified.valid, true);
});
