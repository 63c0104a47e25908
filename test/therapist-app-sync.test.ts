// A therapist app that cannot host a webhook endpoint (SPEC §14.7): it learns of everything only by
// following GET /v1/events with long polls, and fetches what each event names. Over one course of
// care it must see every message, note, report, signature, appointment and document, each once.
import t from 'tap';
import { referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, createOffice, createPractice, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const sam = practice.therapist;

type FeedEvent = { id: string; type: string; data: Json };

/** The app: long polls the feed from its start, keeping every event and the cursor between polls. */
function startApp() {
  const received: FeedEvent[] = [];
  let cursor: string | undefined;
  let running = true;
  const loop = (async () => {
    while (running) {
      const query = `?wait=1&limit=50${cursor ? `&after=${encodeURIComponent(cursor)}` : ''}`;
      const answer = requireStatus(await test.request({ method: 'GET', url: `/v1/events${query}`, token: sam.token }), 200, 'GET /v1/events');
      received.push(...(answer.data as FeedEvent[]));
      cursor = answer.nextCursor;
    }
  })();
  return {
    received,
    /** Resolves with the first event of this type (about this resource, if given) once the app has it. */
    async waitFor(type: string, resourceId?: string): Promise<FeedEvent> {
      for (const started = Date.now(); Date.now() - started < 15_000; await new Promise((resolve) => setTimeout(resolve, 20))) {
        const found = received.find((event) => event.type === type && (resourceId === undefined || event.data.id === resourceId));
        if (found) return found;
      }
      throw new Error(`the app never received ${type}${resourceId ? ` about ${resourceId}` : ''}; it has ${received.map((event) => event.type).join(', ')}`);
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** A small real PDF, as an office would attach a signed prescription. */
function multipartPdf(title: string): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'therapist-app-sync-boundary';
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'latin1');
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nprescription\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n${title}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="order.pdf"\r\nContent-Type: application/pdf\r\n\r\n`),
    pdf,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

t.test('a therapist app syncing only through /v1/events sees every step of a course of care', async (t) => {
  const app = startApp();
  t.teardown(() => app.stop());
  const fetchAsApp = async (event: FeedEvent) => {
    const response = await test.request({ method: 'GET', url: String(event.data.url), token: sam.token });
    t.equal(response.statusCode, 200, `the app fetches what ${event.type} names (${event.data.url})`);
    return response.json();
  };

  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ send: true, therapistId: sam.id, precautions: ['No deep pressure over L4-L5'] }));
  const sent = await app.waitFor('referral.sent');
  t.equal(sent.data.referralId, referral.id, 'the new referral reaches the app');
  t.equal((await fetchAsApp(sent)).id, referral.id);
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: sam.token, payload: { acknowledgedPrecautions: true } }), 200, 'accept');
  await app.waitFor('referral.accepted');

  const upload = multipartPdf('Signed prescription');
  const document = requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token: office.staff.token, payload: upload.payload, headers: upload.headers }),
    201,
    'the office attaches the signed prescription',
  );
  t.equal((await app.waitFor('document.added', document.id)).data.referralId, referral.id, 'the attached document reaches the app');

  const message = await test.create(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'Please start with light pressure.' });
  const said = await app.waitFor('message.created', message.id);
  const thread = await fetchAsApp(said);
  t.ok(thread.data.some((entry: Json) => entry.id === message.id), "the office's message is in the thread the event names");

  const appointment = await test.create(`/v1/referrals/${referral.id}/appointments`, sam.token, { startsAt: new Date(Date.now() + 86_400_000).toISOString(), minutes: 60 });
  await app.waitFor('appointment.scheduled', appointment.id);

  const note = await test.create(`/v1/referrals/${referral.id}/progress-reports`, sam.token, visitNoteBody());
  await app.waitFor('progress_report.created', note.id);

  const report = await test.create(`/v1/referrals/${referral.id}/reports`, sam.token, {
    kind: 'evaluation',
    summary: 'Lumbar paraspinal trigger points; plan of care below.',
    goals: [{ description: 'Pain at most 3/10', status: 'new', measure: 'pain (0-10)', target: '≤ 3' }],
    recommendation: 'continue',
    findings: { posture: 'Anterior pelvic tilt' },
    baseline: { pain: 7 },
    plannedFrequencyPerWeek: 2,
    plannedDurationWeeks: 6,
    techniques: ['trigger_point'],
  });
  await app.waitFor('report.submitted', report.id);
  requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/reports/${report.id}/sign`, token: office.physician.token, payload: { attestation: true } }),
    200,
    'the prescriber signs the plan of care',
  );
  const signed = await app.waitFor('report.signed', report.id);
  t.ok((await fetchAsApp(signed)).signature, 'the app reads the signature the event announced');

  await app.stop();
  const ofReferral = app.received.filter((event) => event.data.referralId === referral.id);
  t.equal(new Set(ofReferral.map((event) => event.id)).size, ofReferral.length, 'no event came twice');
  t.same(
    ofReferral.map((event) => event.type),
    ['referral.sent', 'referral.accepted', 'document.added', 'message.created', 'appointment.scheduled', 'progress_report.created', 'report.submitted', 'report.signed'],
    'every step, in the order it happened',
  );
});
