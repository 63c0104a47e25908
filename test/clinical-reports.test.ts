// Reports to the prescriber (SPEC §14.3): evaluation (the plan of care), progress and discharge by
// the accepting therapist, with the server's visit counts, pain trend and outcome series; signed by
// the prescriber; read as JSON or as a PDF (checked with pdf.js, a real parser); the cadence
// (reportDue, report.overdue); discharge never blocked, also racing a visit note.
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import t from 'tap';
import { getDocument } from 'pdfjs-dist/legacy/build/pdf.mjs';
import { auditEvents } from './fixtures/database.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate, measuredVisitNoteBody, referralBody } from './fixtures/referral-bodies.js';
import { expectStatus, requireStatus } from './fixtures/responses.js';
import { feedPayloads } from './fixtures/webhooks.js';
import { buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t, { env: { REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id);
const signingEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:sign']);
const readingEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);

const request = (method: 'GET' | 'POST', url: string, token: string, payload?: Json, headers: Record<string, string> = {}) =>
  test.request({ method, url, token, headers, ...(payload ? { payload } : {}) });
const reportsUrl = (referralId: string) => `/v1/referrals/${referralId}/reports`;

/** A referral from the office to the practice, accepted by its therapist; `overrides` change the order. */
async function acceptedReferral(overrides: Json = {}): Promise<Json> {
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ practiceId: practice.id, send: true, ...overrides }));
  return requireStatus(await request('POST', `/v1/referrals/${referral.id}/accept`, practice.therapist.token, {}), 200, 'accept');
}

const note = (referralId: string, overrides: Json = {}) =>
  request('POST', `/v1/referrals/${referralId}/progress-reports`, practice.therapist.token, measuredVisitNoteBody({ final: false, ...overrides }));
async function visit(referralId: string, overrides: Json = {}): Promise<Json> {
  return requireStatus(await note(referralId, overrides), 201, 'visit note');
}

const evaluation = (overrides: Json = {}): Json => ({
  kind: 'evaluation',
  summary: 'Chronic mechanical low back pain with lumbar paraspinal trigger points.',
  goals: [
    { description: 'Sit through a work shift with pain at most 3/10', status: 'new', measure: 'pain (0-10)', target: '≤ 3' },
    { description: 'Reduce disability', status: 'new', measure: 'ODI', target: '≤ 20' },
  ],
  recommendation: 'continue',
  findings: { posture: 'Anterior pelvic tilt', palpation: 'Taut bands L3-L5 paraspinals' },
  baseline: { pain: 8, rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 40 }], outcomeMeasures: [{ instrument: 'ODI', score: 44 }] },
  plannedFrequencyPerWeek: 2,
  plannedDurationWeeks: 6,
  techniques: ['trigger_point', 'myofascial_release'],
  ...overrides,
});
const progress = (overrides: Json = {}): Json => ({
  kind: 'progress',
  summary: 'Steady improvement; sitting tolerance up to 45 minutes.',
  goals: [{ description: 'Reduce disability', status: 'progressing', measure: 'ODI', target: '≤ 20' }],
  recommendation: 'continue',
  ...overrides,
});
const discharge = (overrides: Json = {}): Json => ({
  kind: 'discharge',
  summary: 'Goals met; independent with the home program.',
  goals: [{ description: 'Reduce disability', status: 'met' }],
  recommendation: 'discharge',
  reason: 'goals_met',
  ...overrides,
});
const submit = (referralId: string, body: Json, token = practice.therapist.token) => request('POST', reportsUrl(referralId), token, body);
const read = async (referralId: string, token = office.physician.token): Promise<Json> => requireStatus(await request('GET', `/v1/referrals/${referralId}`, token), 200, 'read referral');
const history = async (referralId: string): Promise<Json[]> => (await request('GET', `/v1/referrals/${referralId}/history?limit=200`, office.physician.token)).json().data;

async function pdfText(bytes: Buffer): Promise<{ pages: number; text: string; operators: number[] }> {
  const pdf = await getDocument({ data: new Uint8Array(bytes), isEvalSupported: false, standardFontDataUrl: fileURLToPath(new URL('../node_modules/pdfjs-dist/standard_fonts/', import.meta.url)) }).promise;
  const parts: string[] = [];
  const operators: number[] = [];
  for (let number = 1; number <= pdf.numPages; number++) {
    const page = await pdf.getPage(number);
    const content = await page.getTextContent();
    parts.push(content.items.map((item) => ('str' in item ? item.str : '')).join(' '));
    operators.push(...(await page.getOperatorList()).fnArray);
  }
  return { pages: pdf.numPages, text: parts.join('\n').replace(/\s+/g, ' '), operators };
}

t.test('the loop: evaluation with baseline, visits, a progress report with the series, signed by the prescriber, a PDF, then discharge', async (t) => {
  const referral = await acceptedReferral();
  const evaluated = await submit(referral.id, evaluation());
  const evaluationReport = expectStatus(t, evaluated, 201, 'the evaluation');
  t.equal(evaluated.headers.location, `/v1/referrals/${referral.id}/reports/${evaluationReport.id}`);
  t.match(evaluationReport, {
    kind: 'evaluation',
    authorId: practice.therapist.id,
    planOfCare: { plannedFrequencyPerWeek: 2, plannedDurationWeeks: 6, techniques: ['trigger_point', 'myofascial_release'] },
    baseline: { pain: 8 },
    findings: { posture: 'Anterior pelvic tilt' },
    dischargeReason: null,
    visitsCovered: null,
    visitsUsed: 0,
    visitsAuthorized: 12,
    painTrend: [],
    outcomes: [{ instrument: 'ODI', baseline: 44, latest: null, change: null, series: [] }],
    signature: null,
  });

  await visit(referral.id, { painBefore: 7, painAfter: 5, outcomeMeasures: [{ instrument: 'ODI', score: 40 }] });
  await visit(referral.id, { painBefore: 6, painAfter: 3, outcomeMeasures: [{ instrument: 'ODI', score: 33 }, { instrument: 'NDI', score: 20 }] });
  const progressReport = expectStatus(t, await submit(referral.id, progress()), 201, 'the progress report');
  const today = isoDate(0);
  t.same(progressReport.painTrend, [
    { visitNumber: 1, date: today, before: 7, after: 5 },
    { visitNumber: 2, date: today, before: 6, after: 3 },
  ], 'the pain trend: every visit, before and after');
  t.same(progressReport.outcomes, [
    { instrument: 'ODI', baseline: 44, latest: 33, change: -11, series: [{ visitNumber: 1, date: today, score: 40 }, { visitNumber: 2, date: today, score: 33 }] },
    { instrument: 'NDI', baseline: 20, latest: 20, change: 0, series: [{ visitNumber: 2, date: today, score: 20 }] },
  ], "each instrument's series: ODI from the evaluation's baseline, NDI from its first score");
  t.same(progressReport.visitsCovered, { from: 1, to: 2 });
  t.equal(progressReport.visitsUsed, 2);
  t.equal(progressReport.planOfCare, null);

  // The therapist cannot sign; the office staff cannot; the prescriber can, once.
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, practice.therapist.token, { attestation: true }), 403);
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, office.staff.token, { attestation: true }), 403);
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, office.physician.token, { attestation: false }), 400, ['attestation']);
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, office.physician.token, {}), 400, ['attestation']);
  const signed = expectStatus(t, await request('POST', `${reportsUrl(referral.id)}/${evaluationReport.id}/sign`, office.physician.token, { attestation: true, comment: 'Plan of care certified.' }), 200, 'the prescriber certifies the plan of care');
  t.match(signed.signature, { signedBy: office.physician.id, method: 'physician', comment: 'Plan of care certified.', attestation: /certify its plan of care/ });
  t.ok(Math.abs(Date.parse(signed.signature.signedAt) - Date.now()) < 60_000, 'signed now');
  const again = assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${evaluationReport.id}/sign`, office.physician.token, { attestation: true }), 409);
  t.equal(again.code, 'already-signed');
  const byEhr = expectStatus(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, signingEhr.token, { attestation: true }), 200, "the office's EHR with referrals:sign");
  t.match(byEhr.signature, { signedBy: office.physician.id, method: 'ehr_attested', comment: null });
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${progressReport.id}/sign`, readingEhr.token, { attestation: true }), 403, [], 'an EHR without referrals:sign');

  // Both sides read them, in order, with their signatures.
  for (const [who, token] of [['the office', office.physician.token], ['the practice admin', practice.admin.token], ['the therapist', practice.therapist.token]] as const) {
    const listed = expectStatus(t, await request('GET', reportsUrl(referral.id), token), 200, `${who} lists`);
    t.same(listed.data.map((report: Json) => [report.kind, report.signature?.method ?? null]), [['evaluation', 'physician'], ['progress', 'ehr_attested']], `${who} sees both, signed`);
  }
  const one = expectStatus(t, await request('GET', `${reportsUrl(referral.id)}/${progressReport.id}`, office.physician.token), 200, 'read one');
  t.same(one, { ...progressReport, signature: byEhr.signature });
  const answer = await request('GET', `${reportsUrl(referral.id)}/${progressReport.id}`, office.physician.token);
  t.equal(answer.headers['cache-control'], 'no-store');

  // The PDF, read back with pdf.js.
  const pdf = await request('GET', `${reportsUrl(referral.id)}/${evaluationReport.id}`, office.physician.token, undefined, { accept: 'application/pdf' });
  t.equal(pdf.statusCode, 200);
  t.equal(pdf.headers['content-type'], 'application/pdf');
  t.equal(pdf.headers['content-disposition'], `attachment; filename="report-${evaluationReport.id}.pdf"`);
  t.equal(pdf.headers['cache-control'], 'no-store');
  t.equal(pdf.rawPayload.subarray(0, 5).toString('latin1'), '%PDF-', 'a PDF file');
  const evaluationPdf = await pdfText(pdf.rawPayload);
  t.ok(evaluationPdf.pages >= 1);
  for (const expected of ['Evaluation and plan of care', 'Maria Gomez', '1978-04-02', 'M54.50', '2 per week for 6 weeks', 'Sit through a work shift', 'Plan of care certified.', 'ODI']) {
    t.ok(evaluationPdf.text.includes(expected), `the evaluation PDF shows "${expected}"`);
  }
  const progressPdf = await pdfText((await request('GET', `${reportsUrl(referral.id)}/${progressReport.id}`, practice.therapist.token, undefined, { accept: 'application/pdf' })).rawPayload);
  for (const expected of ['Progress report', 'Pain (0–10) before and after each visit', 'ODI: baseline 44, latest 33, change -11', 'NDI', 'visits 1–2; 2 of 12 authorized used', "attested by the office's EHR"]) {
    t.ok(progressPdf.text.includes(expected), `the progress PDF shows "${expected}"`);
  }
  // A colleague of the accepting therapist takes part in the care but may not know who the patient is (SPEC §14.8).
  const colleaguePdf = await pdfText((await request('GET', `${reportsUrl(referral.id)}/${progressReport.id}`, colleague.token, undefined, { accept: 'application/pdf' })).rawPayload);
  t.ok(colleaguePdf.text.includes('Progress report'), "a colleague of the accepting therapist gets the report's PDF");
  for (const secret of ['Maria', 'Gomez', '1978-04-02']) t.notOk(colleaguePdf.text.includes(secret), `but not the patient's identity (${secret})`);
  t.match(colleaguePdf.text, /\d+ years, female/, 'the patient by age and sex');
  const strokes = progressPdf.operators.filter((op) => op === 20 /* OPS.stroke */).length;
  t.ok(strokes >= 6, `the charts are drawn as vector lines (${strokes} strokes)`);
  const refused = await request('GET', `${reportsUrl(referral.id)}/${progressReport.id}`, office.physician.token, undefined, { accept: 'text/html' });
  assertProblem(t, refused, 406);

  // Every read is audited against the patient.
  const reads = (await auditEvents(test, { action: 'report.read', resourceId: progressReport.id })) as Json[];
  t.ok(reads.length >= 5, `reads of the progress report are audited (${reads.length})`);
  t.ok(reads.every((event) => event.patientId === referral.patientId), 'each naming the patient');

  // Discharge: completes the referral whatever visits remain.
  const discharged = expectStatus(t, await submit(referral.id, discharge()), 201, 'discharge');
  t.match(discharged, { kind: 'discharge', dischargeReason: 'goals_met', visitsCovered: null, visitsUsed: 2 });
  const completed = await read(referral.id);
  t.equal(completed.status, 'completed');
  t.same((await history(referral.id)).map((event) => event.action), ['create', 'send', 'accept', 'report', 'start', 'report', 'sign_report', 'sign_report', 'discharge']);
  const dischargeEvent = (await history(referral.id)).at(-1)!;
  t.match(dischargeEvent, { fromStatus: 'in_progress', toStatus: 'completed', changes: { reportId: discharged.id, kind: 'discharge', reason: 'goals_met' } });
  // The partner events, thin: they name the report and carry no clinical text.
  const events = await test.app.database.rows<{ type: string; payload: Json }>(sql`select type, payload from webhook_events where referral_id = ${referral.id}::uuid`);
  const reportEvents = events.filter((event) => event.type.startsWith('report.') || event.type === 'referral.completed');
  const byTypeAndId = (pairs: string[][]) => pairs.map((pair) => pair.join(' ')).sort();
  t.same(byTypeAndId(reportEvents.map((event) => [event.type, event.payload.data.id])), byTypeAndId([
    ['report.submitted', evaluationReport.id],
    ['report.submitted', progressReport.id],
    ['report.signed', evaluationReport.id],
    ['report.signed', progressReport.id],
    ['report.submitted', discharged.id],
    ['referral.completed', referral.id],
  ]), 'submitted, signed, and the discharge that completed the referral');
  const submitted = reportEvents.find((event) => event.type === 'report.submitted' && event.payload.data.id === evaluationReport.id)!;
  t.match(submitted.payload.data, { resource: 'report', referralId: referral.id, url: `/v1/referrals/${referral.id}/reports/${evaluationReport.id}` });
  t.notOk(JSON.stringify(events).includes('Chronic mechanical'), 'no report text in any event');

  const late = assertProblem(t, await note(referral.id), 409);
  t.equal(late.code, 'referral-completed', 'no visit after discharge');
  t.equal(assertProblem(t, await submit(referral.id, progress()), 409).code, 'referral-completed', 'no report after discharge');
});

t.test('discharge is never blocked: without any visit, and with every authorized visit used', async (t) => {
  const dropped = await acceptedReferral();
  const noVisit = expectStatus(t, await submit(dropped.id, discharge({ reason: 'patient_declined', goals: [{ description: 'Reduce pain', status: 'not_met' }] })), 201, 'discharge from accepted, no visit');
  t.match(noVisit, { visitsUsed: 0, visitsCovered: null, painTrend: [], dischargeReason: 'patient_declined' });
  t.equal((await read(dropped.id)).status, 'completed');

  const used = await acceptedReferral({ visitsAuthorized: 1 });
  await visit(used.id);
  const exhausted = assertProblem(t, await note(used.id, { final: true }), 409);
  t.equal(exhausted.code, 'visits-exhausted', 'a second visit (even a final one) is past the authorization');
  t.match(exhausted.detail, /discharge report/, 'and the problem says how to discharge');
  expectStatus(t, await submit(used.id, discharge()), 201, 'the discharge report completes it anyway');
  t.equal((await read(used.id)).status, 'completed');
});

t.test('bad input is a 400 naming the field, and changes nothing', async (t) => {
  const referral = await acceptedReferral();
  const cases: [string, Json, string[]][] = [
    ['an unknown kind', progress({ kind: 'interim' }), ['kind']],
    ['an unknown goal status', progress({ goals: [{ description: 'x', status: 'almost' }] }), ['goals[0].status']],
    ['no goals', progress({ goals: [] }), ['goals']],
    ['an unknown recommendation', progress({ recommendation: 'maybe' }), ['recommendation']],
    ['an evaluation without its plan of care', evaluation({ plannedFrequencyPerWeek: undefined, techniques: undefined, findings: undefined, baseline: undefined, plannedDurationWeeks: undefined }), ['plannedFrequencyPerWeek', 'plannedDurationWeeks', 'techniques', 'findings', 'baseline']],
    ['a baseline pain of 11', evaluation({ baseline: { pain: 11 } }), ['baseline.pain']],
    ['a planned frequency of 8 a week', evaluation({ plannedFrequencyPerWeek: 8 }), ['plannedFrequencyPerWeek']],
    ['empty findings', evaluation({ findings: {} }), ['findings']],
    ['an "other" baseline measure without a name', evaluation({ baseline: { pain: 5, outcomeMeasures: [{ instrument: 'other', score: 3 }] } }), ['baseline.outcomeMeasures[0].name']],
    ['a progress report with a plan of care', progress({ techniques: ['swedish'] }), ['techniques']],
    ['a discharge without a reason', discharge({ reason: undefined }), ['reason']],
    ['an unknown discharge reason', discharge({ reason: 'bored' }), ['reason']],
    ['a reason on a progress report', progress({ reason: 'goals_met' }), ['reason']],
    ['a server-owned field', progress({ visitsUsed: 99 }), ['visitsUsed']],
  ];
  for (const [what, body, fields] of cases) assertProblem(t, await submit(referral.id, JSON.parse(JSON.stringify(body))), 400, fields, what);
  t.same((await request('GET', reportsUrl(referral.id), office.physician.token)).json().data, [], 'no report was written');
  t.equal((await read(referral.id)).version, referral.version, 'the referral did not change');
});

t.test('who may write, sign and read: outsiders get 404 and the attempt is audited', async (t) => {
  const referral = await acceptedReferral();
  const report = expectStatus(t, await submit(referral.id, progress()), 201, 'a report');
  const reportUrl = `${reportsUrl(referral.id)}/${report.id}`;
  for (const [who, token] of [
    ['a colleague of the accepting therapist', colleague.token],
    ['the practice admin', practice.admin.token],
    ['a therapist of another practice', otherPractice.therapist.token],
    ['the physician', office.physician.token],
  ] as const) {
    const answer = await submit(referral.id, progress(), token);
    assertProblem(t, answer, 404, [], `${who} cannot submit`);
  }
  for (const [who, token] of [
    ['another office', otherOffice.physician.token],
    ['another practice', otherPractice.therapist.token],
    ['another practice admin', otherPractice.admin.token],
  ] as const) {
    assertProblem(t, await request('GET', reportsUrl(referral.id), token), 404, [], `${who} cannot list`);
    assertProblem(t, await request('GET', reportUrl, token), 404, [], `${who} cannot read`);
    assertProblem(t, await request('GET', reportUrl, token, undefined, { accept: 'application/pdf' }), 404, [], `${who} cannot get the PDF`);
  }
  assertProblem(t, await request('POST', `${reportUrl}/sign`, otherOffice.physician.token, { attestation: true }), 404, [], 'a physician of another office cannot sign');
  const denied = (await auditEvents(test, { resourceId: referral.id, outcome: 'denied' })) as Json[];
  t.ok(denied.some((event) => event.actorId === otherOffice.physician.id && event.action === 'report.sign'), 'the attempt to sign is audited');
  t.ok(denied.some((event) => event.actorId === otherPractice.therapist.id && event.action === 'report.read'), 'the attempt to read is audited');
  assertProblem(t, await request('GET', `${reportsUrl(referral.id)}/${crypto.randomUUID()}`, office.physician.token), 404, [], 'an unknown report');
  assertProblem(t, await request('POST', `${reportsUrl(referral.id)}/${crypto.randomUUID()}/sign`, office.physician.token, { attestation: true }), 404, [], 'an unknown report cannot be signed');

  const other = await acceptedReferral();
  assertProblem(t, await request('GET', `${reportsUrl(other.id)}/${report.id}`, office.physician.token), 404, [], "a report read under another referral's id");

  const sent = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: practice.therapist.id, send: true }));
  t.equal(assertProblem(t, await submit(sent.id, progress()), 409).code, 'not-accepted', 'the targeted therapist learns it must be accepted first');
});

t.test('cadence: reportDue moves with visits and reports; report.overdue once, from the visit that crossed the line', async (t) => {
  const referral = await acceptedReferral({ reportEveryVisits: 2 });
  t.same(referral.reportDue, { afterVisit: 2, overdue: false });
  t.equal(referral.reportEveryVisits, 2);
  await visit(referral.id);
  await visit(referral.id);
  t.same((await read(referral.id)).reportDue, { afterVisit: 2, overdue: false }, 'due after visit 2, not yet overdue');
  await visit(referral.id);
  t.same((await read(referral.id)).reportDue, { afterVisit: 2, overdue: true }, 'visit 3 without a report: overdue');
  await visit(referral.id);
  const overdue = await feedPayloads(test, office.admin.token, 'report.overdue', referral.id);
  t.equal(overdue.length, 1, 'report.overdue was announced once, by visit 3 (in the office\'s events feed)');
  expectStatus(t, await submit(referral.id, progress()), 201, 'the report');
  t.same((await read(referral.id)).reportDue, { afterVisit: 6, overdue: false }, 'the cadence restarts from visit 4');
  assertProblem(t, await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ practiceId: practice.id, reportEveryVisits: 31 }) }), 400, ['reportEveryVisits']);
  assertProblem(t, await test.request({ method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ practiceId: practice.id, reportEveryVisits: 0 }) }), 400, ['reportEveryVisits']);
  t.same((await acceptedReferral()).reportDue, { afterVisit: 10, overdue: false }, 'every 10 visits by default');
});

t.test('a discharge racing a visit note: one order or the other, never both half-way', async (t) => {
  for (let round = 0; round < 5; round++) {
    const referral = await acceptedReferral();
    await visit(referral.id);
    const [noteAnswer, dischargeAnswer]: [TestResponse, TestResponse] = await Promise.all([note(referral.id), submit(referral.id, discharge())]);
    t.equal(dischargeAnswer.statusCode, 201, `round ${round}: the discharge is never blocked`);
    const after = await read(referral.id);
    t.equal(after.status, 'completed');
    const discharged = dischargeAnswer.json();
    if (noteAnswer.statusCode === 201) {
      t.equal(discharged.visitsUsed, 2, `round ${round}: the note came first, and the discharge counts it`);
      t.equal(after.progress.visitsUsed, 2);
    } else {
      t.equal(noteAnswer.statusCode, 409, `round ${round}: the discharge came first; the note is refused`);
      t.equal(noteAnswer.json().code, 'referral-completed');
      t.equal(discharged.visitsUsed, 1);
      t.equal(after.progress.visitsUsed, 1);
    }
  }
});

t.test('two signatures at once: one wins, the other is 409 already-signed', async (t) => {
  const referral = await acceptedReferral();
  const report = expectStatus(t, await submit(referral.id, progress()), 201, 'a report');
  const url = `${reportsUrl(referral.id)}/${report.id}/sign`;
  const answers = await Promise.all([request('POST', url, office.physician.token, { attestation: true }), request('POST', url, signingEhr.token, { attestation: true })]);
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 409]);
  t.equal((await history(referral.id)).filter((event) => event.action === 'sign_report').length, 1, 'one signature in the history');
});

t.test('reports after expiry back a renewal; a cancelled referral takes none', async (t) => {
  const referral = await acceptedReferral();
  await visit(referral.id);
  await test.app.database.rows(sql`update referrals set start_date = ${isoDate(-20)}, expires_on = ${isoDate(-1)} where id = ${referral.id}::uuid`);
  await test.app.expireReferrals();
  t.equal((await read(referral.id)).status, 'expired');
  expectStatus(t, await submit(referral.id, progress({ recommendation: 'continue' })), 201, 'a progress report on an expired referral');
  t.match(assertProblem(t, await submit(referral.id, discharge()), 409), { code: 'illegal-transition' }, 'an expired referral is not discharged');

  const cancelled = await acceptedReferral();
  requireStatus(await request('POST', `/v1/referrals/${cancelled.id}/cancel`, office.physician.token, { reason: 'Patient moved' }), 200, 'cancel');
  t.equal(assertProblem(t, await submit(cancelled.id, progress()), 409).code, 'referral-cancelled');
});

t.test('If-Match: a report written against a stale version of the referral is 412 and writes nothing', async (t) => {
  const referral = await acceptedReferral();
  await visit(referral.id);
  const stale = await test.request({ method: 'POST', url: reportsUrl(referral.id), token: practice.therapist.token, headers: { 'if-match': `"${referral.version}"` }, payload: discharge() });
  t.equal(assertProblem(t, stale, 412).currentVersion, referral.version + 1);
  t.equal((await read(referral.id)).status, 'in_progress', 'not discharged');
  const current = await test.request({ method: 'POST', url: reportsUrl(referral.id), token: practice.therapist.token, headers: { 'if-match': `"${referral.version + 1}"` }, payload: discharge() });
  expectStatus(t, current, 201, 'the current version');
});
