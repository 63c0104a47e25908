// The thread of a referral through the FHIR façade (issue 18): messages (Communication), visits
// (Encounter, Observation), reports and documents (DocumentReference, Binary), and the audit trail
// (AuditEvent). Each is read and searched as the office, the accepting therapist and outsiders,
// with the /v1 rules, 404s and audit events; a message is posted as a Communication; every
// resource and Bundle is checked by two independent validators.
import t, { type Test } from 'tap';
import { documentForm, sampleFile } from './fixtures/documents.js';
import { assertValidFhir } from './fixtures/fhir-validators.js';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { measuredVisitNoteBody, referralBody } from './fixtures/referral-bodies.js';
import { assertStatus, requireStatus } from './fixtures/responses.js';
import { fhirRequests } from './fixtures/fhir-requests.js';
import { auditEvents, buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const other = await createPractice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const ehr = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write'], 'Office EHR');
const T = practice.therapist;
const outsiders = [
  ['another practice\'s therapist', other.therapist],
  ['another office\'s physician', otherOffice.physician],
] as const;

const { get: fhirGet, post: fhirPost, ok: fhirOk } = fhirRequests(test);

async function outcomeOf(tt: Test, response: TestResponse, status: number, what: string): Promise<Json> {
  assertStatus(tt, response, status, what);
  tt.match(response.headers['content-type'], /^application\/fhir\+json/, `${what}: application/fhir+json`);
  const outcome = response.json();
  tt.equal(outcome.resourceType, 'OperationOutcome', `${what}: an OperationOutcome`);
  await assertValidFhir(tt, outcome, `${what}: the OperationOutcome`);
  return outcome;
}

const resourcesOf = (bundle: Json): Json[] => (bundle.entry ?? []).map((entry: Json) => entry.resource);
const idsOf = (bundle: Json): string[] => resourcesOf(bundle).map((resource) => resource.id);

// The network: a referral to the practice's therapist, accepted; messages both ways; a visit with
// pain scores and an outcome score; a progress report (signed) and a shared document.
const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: T.id, send: true }));
requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: T.token, payload: {} }), 200, 'accept');
const patientId: string = referral.patientId;
const taskId: string = resourcesOf(requireStatus(await fhirGet(`/fhir/R4/Task?focus=ServiceRequest/${referral.id}`, office.physician.token), 200, 'the Task'))[0]!.id;
const fromOffice = await test.create(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'Please note the lumbar fusion in 2019.' });
const fromTherapist = await test.create(`/v1/referrals/${referral.id}/messages`, T.token, { body: 'Numbness after session 1, please advise.', priority: 'urgent' });
const note = await test.create(`/v1/referrals/${referral.id}/progress-reports`, T.token, measuredVisitNoteBody({ painBefore: 7, painAfter: 3, outcomeMeasures: [{ instrument: 'ODI', score: 38 }] }));
const report = await test.create(`/v1/referrals/${referral.id}/reports`, T.token, {
  kind: 'progress',
  summary: 'Steady improvement; sitting tolerance up to 45 minutes.',
  goals: [{ description: 'Reduce disability', status: 'progressing', measure: 'ODI', target: '≤ 20' }],
  recommendation: 'continue',
});
requireStatus(
  await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/reports/${report.id}/sign`, token: office.physician.token, payload: { attestation: true } }),
  200,
  'the prescriber signs the report',
);
const file = sampleFile.pdf();
const form = documentForm(file, { category: 'imaging', title: 'Lumbar MRI report' });
const shared = requireStatus(
  await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token: office.physician.token, payload: form.payload, headers: { 'content-type': form.contentType } }),
  201,
  'the office shares a document',
);

t.test('Communication: the thread, read and searched by both sides', async (tt) => {
  for (const [who, token] of [['the office', office.physician.token], ['the accepting therapist', T.token]] as const) {
    const message = await fhirOk(tt, `/fhir/R4/Communication/${fromTherapist.id}`, token, `${who} reads the therapist's message`);
    tt.match(message, {
      id: fromTherapist.id,
      status: 'completed',
      priority: 'urgent',
      partOf: [{ reference: `Task/${taskId}` }],
      basedOn: [{ reference: `ServiceRequest/${referral.id}` }],
      subject: { reference: `Patient/${patientId}` },
      sender: { reference: `Practitioner/${T.id}` },
      recipient: [{ reference: `Organization/${office.id}` }],
      payload: [{ contentString: fromTherapist.body }],
      sent: fromTherapist.createdAt,
    });
    for (const query of [`part-of=Task/${taskId}`, `based-on=ServiceRequest/${referral.id}`, `patient=Patient/${patientId}`]) {
      const bundle = await fhirOk(tt, `/fhir/R4/Communication?${query}`, token, `${who} searches Communication?${query}`);
      tt.same(idsOf(bundle), [fromOffice.id, fromTherapist.id], 'the thread, oldest first');
    }
  }
  const fromTheOffice = await fhirOk(tt, `/fhir/R4/Communication/${fromOffice.id}`, T.token, "the office's message");
  tt.match(fromTheOffice, { priority: 'routine', sender: { reference: `Practitioner/${office.physician.id}` }, recipient: [{ reference: `Organization/${practice.id}` }] });
  const audited = await auditEvents(test, { action: 'message.read', resourceId: fromTherapist.id, actorId: T.id });
  tt.ok(audited.length >= 1 && audited[0]!.patientId === patientId, 'a read of a message is audited against the patient');
  const listed = await auditEvents(test, { action: 'message.list', resourceId: referral.id, actorId: T.id });
  tt.ok(listed.length >= 1, 'a search of the thread is audited as the /v1 list is');

  const first = await fhirOk(tt, `/fhir/R4/Communication?part-of=Task/${taskId}&_count=1`, office.physician.token, 'the first page of one');
  tt.same(idsOf(first), [fromOffice.id]);
  const next = first.link.find((link: Json) => link.relation === 'next')?.url as string;
  tt.ok(next, 'a next link');
  const second = await fhirOk(tt, next.slice(next.indexOf('/fhir/R4/')), office.physician.token, 'the second page');
  tt.same(idsOf(second), [fromTherapist.id]);
  const since = await fhirOk(tt, `/fhir/R4/Communication?based-on=ServiceRequest/${referral.id}&_lastUpdated=gt${fromOffice.createdAt}`, office.physician.token, '_lastUpdated');
  tt.same(idsOf(since), [fromTherapist.id], 'only what changed after the instant');
});

t.test('Encounter and Observation: the visit and what it measured', async (tt) => {
  const encounter = await fhirOk(tt, `/fhir/R4/Encounter/${note.id}`, office.physician.token, 'the office reads the Encounter');
  tt.match(encounter, {
    id: note.id,
    status: 'finished',
    class: { code: 'AMB' },
    subject: { reference: `Patient/${patientId}` },
    basedOn: [{ reference: `ServiceRequest/${referral.id}` }],
    participant: [{ individual: { reference: `Practitioner/${T.id}` } }],
    period: { start: note.visitDate },
    length: { value: 60, code: 'min' },
    serviceProvider: { reference: `Organization/${practice.id}` },
  });
  tt.same(encounter.type.map((type: Json) => type.coding[0].code), ['97140', '97124'], 'the billed CPT codes');

  const before = await fhirOk(tt, `/fhir/R4/Observation/${note.id}-pain-before`, T.token, 'the pain before the session');
  tt.match(before, {
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
    valueInteger: 7,
    method: { coding: [{ code: 'before' }] },
    encounter: { reference: `Encounter/${note.id}` },
    effectiveDateTime: note.visitDate,
  });
  const outcome = await fhirOk(tt, `/fhir/R4/Observation/${note.id}-outcome-1`, T.token, 'the outcome score');
  tt.match(outcome, { code: { coding: [{ system: 'urn:massage-referral:outcome-instrument', code: 'ODI' }] }, valueQuantity: { value: 38 } });
  await outcomeOf(tt, await fhirGet(`/fhir/R4/Observation/${note.id}-outcome-2`, T.token), 404, 'an outcome the note does not have');

  for (const [type, query] of [
    ['Encounter', `based-on=ServiceRequest/${referral.id}`],
    ['Encounter', `patient=Patient/${patientId}`],
  ]) {
    tt.same(idsOf(await fhirOk(tt, `/fhir/R4/${type}?${query}`, T.token, `${type}?${query}`)), [note.id]);
  }
  const observationIds = [`${note.id}-pain-before`, `${note.id}-pain-after`, `${note.id}-outcome-1`];
  for (const query of [`based-on=ServiceRequest/${referral.id}`, `patient=Patient/${patientId}`, `encounter=Encounter/${note.id}`]) {
    tt.same(idsOf(await fhirOk(tt, `/fhir/R4/Observation?${query}`, office.physician.token, `Observation?${query}`)), observationIds);
  }
  const pages: string[] = [];
  let url: string | undefined = `/fhir/R4/Observation?based-on=ServiceRequest/${referral.id}&_count=2`;
  while (url) {
    const bundle = await fhirOk(tt, url, office.physician.token, 'a page of Observations');
    tt.ok(bundle.entry.length <= 2, 'a page keeps to _count');
    pages.push(...idsOf(bundle));
    const next = bundle.link.find((link: Json) => link.relation === 'next')?.url as string | undefined;
    url = next ? next.slice(next.indexOf('/fhir/R4/')) : undefined;
  }
  tt.same(pages, observationIds, 'the pages together hold each Observation once');
  const audited = await auditEvents(test, { action: 'progress_report.read', resourceId: note.id, actorId: T.id });
  tt.ok(audited.length >= 1, 'reading the visit is audited as the /v1 read of the note');
});

t.test('DocumentReference and Binary: the report as a PDF and the shared document', async (tt) => {
  const task = await fhirOk(tt, `/fhir/R4/Task/${taskId}`, office.physician.token, 'the Task');
  tt.same(task.output?.map((output: Json) => output.valueReference.reference), [`DocumentReference/${report.id}`], "the report is the Task's output");
  const reportReference = await fhirOk(tt, `/fhir/R4/DocumentReference/${report.id}`, office.physician.token, 'the report');
  tt.match(reportReference, {
    status: 'current',
    docStatus: 'final',
    type: { coding: [{ system: 'http://loinc.org', code: '11506-3' }] },
    subject: { reference: `Patient/${patientId}` },
    author: [{ reference: `Practitioner/${T.id}` }],
    authenticator: { reference: `Practitioner/${office.physician.id}` },
    content: [{ attachment: { contentType: 'application/pdf' } }],
    context: { related: [{ reference: `ServiceRequest/${referral.id}` }] },
  });
  tt.match(reportReference.content[0].attachment.url, new RegExp(`/fhir/R4/Binary/${report.id}$`));
  const documentReference = await fhirOk(tt, `/fhir/R4/DocumentReference/${shared.id}`, T.token, 'the shared document');
  tt.match(documentReference, {
    type: { coding: [{ code: 'imaging' }] },
    description: 'Lumbar MRI report',
    author: [{ reference: `Practitioner/${office.physician.id}` }],
    content: [{ attachment: { contentType: 'application/pdf', size: file.length } }],
  });
  for (const query of [`related=ServiceRequest/${referral.id}`, `based-on=ServiceRequest/${referral.id}`, `patient=Patient/${patientId}`]) {
    const bundle = await fhirOk(tt, `/fhir/R4/DocumentReference?${query}`, T.token, `DocumentReference?${query}`);
    tt.same(idsOf(bundle).sort(), [report.id, shared.id].sort(), 'the report and the document');
  }

  const bytes = await test.request({ method: 'GET', url: `/fhir/R4/Binary/${shared.id}`, token: T.token });
  assertStatus(tt, bytes, 200, 'the bytes of the document');
  tt.equal(bytes.headers['content-type'], 'application/pdf', 'in their stored type');
  tt.ok(bytes.rawPayload.equals(file), 'exactly as uploaded');
  const binary = await fhirOk(tt, `/fhir/R4/Binary/${shared.id}`, T.token, 'the document as a Binary resource');
  tt.equal(binary.contentType, 'application/pdf');
  tt.ok(Buffer.from(binary.data, 'base64').equals(file), 'with the bytes in data');
  const pdf = await test.request({ method: 'GET', url: `/fhir/R4/Binary/${report.id}`, token: office.physician.token, headers: { accept: 'application/pdf' } });
  assertStatus(tt, pdf, 200, 'the report as a PDF');
  tt.equal(pdf.rawPayload.subarray(0, 5).toString('latin1'), '%PDF-');
  assertStatus(tt, await test.request({ method: 'GET', url: `/fhir/R4/Binary/${shared.id}`, token: T.token, headers: { accept: 'image/png' } }), 406, 'a type it is not in');
  const contentReads = await auditEvents(test, { action: 'document.read_content', resourceId: shared.id, actorId: T.id });
  tt.ok(contentReads.length >= 2, 'each read of the bytes is audited as the /v1 content read');
  const reportReads = await auditEvents(test, { action: 'report.read', resourceId: report.id, actorId: office.physician.id });
  tt.ok(reportReads.length >= 2, 'reads of the report and its PDF are audited as /v1 report reads');

  const mistake = documentForm(sampleFile.png(), { category: 'other', title: 'Wrong patient' });
  const retracted = requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token: office.physician.token, payload: mistake.payload, headers: { 'content-type': mistake.contentType } }),
    201,
    'a document shared by mistake',
  );
  tt.ok(retracted.id);
  const gone = await test.request({ method: 'DELETE', url: `/v1/referrals/${referral.id}/documents/${retracted.id}`, token: office.physician.token });
  tt.equal(gone.statusCode, 204, 'retracted');
  await outcomeOf(tt, await fhirGet(`/fhir/R4/DocumentReference/${retracted.id}`, office.physician.token), 404, 'a retracted document');
  await outcomeOf(tt, await fhirGet(`/fhir/R4/Binary/${retracted.id}`, office.physician.token), 404, 'the bytes of a retracted document');
  const listed = await fhirOk(tt, `/fhir/R4/DocumentReference?related=ServiceRequest/${referral.id}`, office.physician.token, 'after the retraction');
  tt.notOk(idsOf(listed).includes(retracted.id), 'a retracted document is not found by search');
});

t.test('outsiders get the 404 of a missing record, audited; their searches find nothing', async (tt) => {
  const reads = [
    [`/fhir/R4/Communication/${fromOffice.id}`, fromOffice.id],
    [`/fhir/R4/Encounter/${note.id}`, note.id],
    [`/fhir/R4/Observation/${note.id}-pain-after`, note.id],
    [`/fhir/R4/DocumentReference/${report.id}`, report.id],
    [`/fhir/R4/DocumentReference/${shared.id}`, shared.id],
    [`/fhir/R4/Binary/${shared.id}`, shared.id],
  ] as const;
  for (const [who, outsider] of outsiders) {
    for (const [url, recordId] of reads) {
      const outcome = await outcomeOf(tt, await fhirGet(url, outsider.token), 404, `${who}: ${url}`);
      tt.equal(outcome.issue[0].code, 'not-found');
      const denied = await auditEvents(test, { outcome: 'denied', resourceId: recordId, actorId: outsider.id });
      tt.ok(denied.length >= 1 && denied.every((event) => event.patientId === patientId), `${who}: the attempt on ${url} is audited against the patient`);
    }
    for (const query of [
      `Communication?part-of=Task/${taskId}`,
      `Communication?based-on=ServiceRequest/${referral.id}`,
      `Encounter?based-on=ServiceRequest/${referral.id}`,
      `Observation?encounter=Encounter/${note.id}`,
      `DocumentReference?related=ServiceRequest/${referral.id}`,
      `Communication?patient=Patient/${patientId}`,
    ]) {
      const bundle = await fhirOk(tt, `/fhir/R4/${query}`, outsider.token, `${who} searches ${query}`);
      tt.equal(bundle.entry.length, 0, 'and finds nothing');
    }
    const deniedSearch = await auditEvents(test, { action: 'message.list', outcome: 'denied', resourceId: referral.id, actorId: outsider.id });
    tt.ok(deniedSearch.length >= 1, `${who}: a search naming the referral is audited as a refused attempt on it`);
  }
  await outcomeOf(tt, await fhirGet('/fhir/R4/Communication', T.token), 400, 'a thread search without an anchor');
  await outcomeOf(tt, await fhirGet(`/fhir/R4/Encounter?based-on=ServiceRequest/${referral.id}&patient=Patient/${patientId}`, T.token), 400, 'two anchors');
});

t.test('before accepting, the targeted therapist reads the thread but not who the patient is', async (tt) => {
  const offered = await test.create('/v1/referrals', office.physician.token, referralBody({ therapistId: T.id, send: true }));
  const offeredTask = resourcesOf(requireStatus(await fhirGet(`/fhir/R4/Task?focus=ServiceRequest/${offered.id}`, T.token), 200, 'the Task'))[0]!.id;
  const question = await test.create(`/v1/referrals/${offered.id}/messages`, office.physician.token, { body: 'Can you start next week?' });
  const scan = documentForm(sampleFile.jpeg(), { category: 'imaging', title: 'X-ray' });
  requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${offered.id}/documents`, token: office.physician.token, payload: scan.payload, headers: { 'content-type': scan.contentType } }),
    201,
    'the office shares a document before acceptance',
  );
  const response = await fhirGet(`/fhir/R4/Communication/${question.id}`, T.token);
  tt.notOk(response.body.includes(offered.patientId), 'the message names no patient');
  const message = await fhirOk(tt, `/fhir/R4/Communication/${question.id}`, T.token, 'the message before acceptance');
  tt.notOk('subject' in message, 'no subject');
  const thread = await fhirOk(tt, `/fhir/R4/Communication?part-of=Task/${offeredTask}`, T.token, 'the thread before acceptance');
  tt.same(idsOf(thread), [question.id]);
  const documents = await fhirOk(tt, `/fhir/R4/DocumentReference?related=ServiceRequest/${offered.id}`, T.token, 'documents before acceptance');
  tt.equal(documents.entry.length, 0, 'documents are for the care team that may know the patient, as in /v1');
  const byPatient = await fhirOk(tt, `/fhir/R4/Communication?patient=Patient/${offered.patientId}`, T.token, 'by a patient the therapist may not know');
  tt.notOk(idsOf(byPatient).includes(question.id), 'the patient anchor names nothing of a referral whose patient is not known to the caller');
});

t.test('POST Communication posts a message as /v1 does', async (tt) => {
  const communication = (overrides: Json = {}): Json => ({
    resourceType: 'Communication',
    status: 'completed',
    partOf: [{ reference: `Task/${taskId}` }],
    priority: 'routine',
    payload: [{ contentString: 'Imaging reviewed; continue as planned.' }],
    ...overrides,
  });
  const created = await fhirPost('/fhir/R4/Communication', ehr.token, communication());
  assertStatus(tt, created, 201, 'the office EHR posts');
  const resource = created.json();
  await assertValidFhir(tt, resource, 'the posted Communication');
  tt.match(created.headers.location, new RegExp(`/fhir/R4/Communication/${resource.id}$`), 'Location names it');
  tt.match(resource, { status: 'completed', sender: { reference: `Organization/${office.id}` }, recipient: [{ reference: `Organization/${practice.id}` }] });
  const thread = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/messages`, token: T.token }), 200, 'the /v1 thread');
  tt.match(thread.data.at(-1), { id: resource.id, body: 'Imaging reviewed; continue as planned.', priority: 'routine', author: { type: 'api_client', id: ehr.id } });
  const audited = await auditEvents(test, { action: 'message.create', resourceId: resource.id });
  tt.equal(audited.length, 1, 'audited once, as a /v1 post');

  const byServiceRequest = await fhirPost('/fhir/R4/Communication', T.token, communication({ partOf: undefined, basedOn: [{ reference: `ServiceRequest/${referral.id}` }], priority: 'urgent' }));
  assertStatus(tt, byServiceRequest, 201, 'the therapist posts an urgent one by the ServiceRequest');
  tt.match(byServiceRequest.json(), { priority: 'urgent', sender: { reference: `Practitioner/${T.id}` } });

  const key = 'fhir-communication-1';
  const first = await fhirPost('/fhir/R4/Communication', office.physician.token, communication(), { 'idempotency-key': key });
  const again = await fhirPost('/fhir/R4/Communication', office.physician.token, communication(), { 'idempotency-key': key });
  assertStatus(tt, again, 201, 'the replay');
  tt.equal(again.headers['idempotent-replayed'], 'true');
  tt.same(again.json(), first.json(), 'the same answer');
  const after = requireStatus(await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}/messages?limit=100`, token: T.token }), 200, 'the thread');
  tt.equal(after.data.filter((message: Json) => message.id === first.json().id).length, 1, 'one message for the key');

  const refusals: [string, unknown, RegExp][] = [
    ['no partOf or basedOn', communication({ partOf: undefined }), /Communication\.partOf/],
    ['two payloads', communication({ payload: [{ contentString: 'a' }, { contentString: 'b' }] }), /Communication\.payload/],
    ['a sender', communication({ sender: { reference: `Practitioner/${office.physician.id}` } }), /Communication\.sender/],
    ['a recipient', communication({ recipient: [{ reference: `Organization/${practice.id}` }] }), /Communication\.recipient/],
    ['status in-progress', communication({ status: 'in-progress' }), /Communication\.status/],
    ['priority stat', communication({ priority: 'stat' }), /Communication\.priority/],
    ['an attachment', communication({ payload: [{ contentAttachment: { contentType: 'text/plain', data: 'aGk=' } }] }), /contentString/],
    ['an element not taken', communication({ category: [{ text: 'x' }] }), /Communication\.category/],
    ['an unknown element', communication({ colour: 'red' }), /colour/],
    ['another resource type', { ...communication(), resourceType: 'Task' }, /resourceType/],
    ['a reference to a Patient', communication({ partOf: [{ reference: `Patient/${patientId}` }] }), /partOf\[0\]\.reference/],
  ];
  for (const [what, body, field] of refusals) {
    const outcome = await outcomeOf(tt, await fhirPost('/fhir/R4/Communication', office.physician.token, body), 400, what);
    tt.match(JSON.stringify(outcome.issue), field, `${what}: the issue names the element`);
  }
  const outsider = await fhirPost('/fhir/R4/Communication', other.therapist.token, communication());
  await outcomeOf(tt, outsider, 404, "an outsider posts to the referral's Task");
  const denied = await auditEvents(test, { action: 'message.create', outcome: 'denied', resourceId: taskId, actorId: other.therapist.id });
  tt.ok(denied.length >= 1 && denied[0]!.patientId === patientId, 'the attempt is audited');
  const outsiderBySr = await fhirPost('/fhir/R4/Communication', otherOffice.physician.token, communication({ partOf: undefined, basedOn: [{ reference: `ServiceRequest/${referral.id}` }] }));
  await outcomeOf(tt, outsiderBySr, 404, "an outsider posts to the referral's ServiceRequest");
  const readOnly = await addApiClient(test, office.admin.token, office.id, ['referrals:read'], 'Read-only EHR');
  await outcomeOf(tt, await fhirPost('/fhir/R4/Communication', readOnly.token, communication()), 403, 'a client without referrals:write');
});

t.test('bad input is an OperationOutcome naming it, never a 500', async (tt) => {
  for (const [url, what] of [
    ['/fhir/R4/Observation/not-an-observation', 'an Observation id of the wrong shape'],
    [`/fhir/R4/Observation?encounter=Encounter/${note.id}&_id=bogus`, 'an Observation _id of the wrong shape'],
    ['/fhir/R4/AuditEvent/abc', 'an AuditEvent id that is no number'],
    [`/fhir/R4/AuditEvent?date=ge2026-13-45`, 'a date that is none'],
    [`/fhir/R4/AuditEvent?date=le2026-01-01`, 'a date prefix not served'],
    [`/fhir/R4/Communication?part-of=ServiceRequest/${referral.id}`, 'part-of naming another type'],
    [`/fhir/R4/Communication?based-on=ServiceRequest/not-a-uuid`, 'a reference to no id of this server'],
    [`/fhir/R4/Communication?based-on=ServiceRequest/${referral.id}&_cursor=forged`, 'a forged cursor'],
  ] as const) {
    await outcomeOf(tt, await fhirGet(url, office.admin.token), 400, what);
  }
  for (const [body, what] of [
    ['null', 'a null body'],
    ['[]', 'an array'],
    ['{"resourceType":"Communication","status":"completed","payload":{"contentString":"x"},"partOf":[{"reference":"Task/1"}]}', 'payload not a list'],
    ['{"resourceType":"Communication","status":"completed","payload":[{"contentString":"x"}],"partOf":["Task/1"]}', 'partOf of strings'],
  ] as const) {
    const response = await test.request({ method: 'POST', url: '/fhir/R4/Communication', token: office.physician.token, payload: body, headers: { accept: 'application/fhir+json', 'content-type': 'application/fhir+json' } });
    await outcomeOf(tt, response, 400, what);
  }
});

t.test('AuditEvent: the trail for admins only', async (tt) => {
  const search = await fhirOk(tt, `/fhir/R4/AuditEvent?patient=Patient/${patientId}&_count=5`, office.admin.token, "the office admin searches the patient's events");
  tt.equal(search.entry.length, 5, 'a page of five');
  tt.ok(resourcesOf(search).every((event) => event.entity.some((entity: Json) => entity.what.reference === `Patient/${patientId}`)), 'each about the patient');
  const next = search.link.find((link: Json) => link.relation === 'next')?.url as string;
  const second = await fhirOk(tt, next.slice(next.indexOf('/fhir/R4/')), office.admin.token, 'the next page');
  tt.notOk(idsOf(second).some((id) => idsOf(search).includes(id)), 'no event twice');

  const [created] = await auditEvents(test, { action: 'message.create', resourceId: fromOffice.id });
  const event = await fhirOk(tt, `/fhir/R4/AuditEvent/${created!.id}`, networkAdmin, 'the network admin reads one event');
  tt.match(event, {
    id: String(created!.id),
    type: { code: 'rest' },
    subtype: [{ system: 'urn:massage-referral:audit-action', code: 'message.create' }],
    action: 'C',
    outcome: '0',
    agent: [{ who: { reference: `Practitioner/${office.physician.id}` }, requestor: true }],
    entity: [{ what: { reference: `Communication/${fromOffice.id}` } }, { what: { reference: `Patient/${patientId}` }, role: { code: '1' } }],
  });
  const later = new Date(Date.now() + 60_000).toISOString();
  const none = await fhirOk(tt, `/fhir/R4/AuditEvent?patient=Patient/${patientId}&date=ge${later}`, office.admin.token, 'date=ge the future');
  tt.equal(none.entry.length, 0);
  const since = await fhirOk(tt, `/fhir/R4/AuditEvent?patient=Patient/${patientId}&date=gt${new Date(created!.occurredAt).toISOString()}&_count=100`, office.admin.token, 'date=gt');
  tt.notOk(idsOf(since).includes(String(created!.id)), 'gt leaves out the instant itself');

  for (const [who, token] of [['a physician', office.physician.token], ['a therapist', T.token], ['an API client', ehr.token]] as const) {
    await outcomeOf(tt, await fhirGet(`/fhir/R4/AuditEvent?patient=Patient/${patientId}`, token), 403, `${who} searches the trail`);
    await outcomeOf(tt, await fhirGet(`/fhir/R4/AuditEvent/${created!.id}`, token), 403, `${who} reads an event`);
  }
  await outcomeOf(tt, await fhirGet(`/fhir/R4/AuditEvent/${created!.id}`, other.admin.token), 404, "another organization's admin reads an event not theirs");
  const reads = await auditEvents(test, { action: 'audit.read', actorId: office.admin.id });
  tt.ok(reads.length >= 1, 'reading the trail is audited');
});
