// /v1/referrals/{id}/documents (SPEC §14.6): files shared on a referral by its care team, told by
// their bytes, streamed into the database in parts with their SHA-256, served back byte for byte,
// never changed, retracted by hiding; nothing left behind by a refused or interrupted upload.
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import t, { type Test } from 'tap';
import { documentForm, filePartHeader, multipartBody, openUpload, sampleFile, sha256Hex, write } from './fixtures/documents.js';
import { addApiClient, addTherapist, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { auditEvents, buildTestApp, type Json, type TestApp, type TestResponse } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdmin })).json().id;
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const colleague = await addTherapist(test, networkAdmin, practice.id);
const otherPractice = await createPractice(test, networkAdmin);
const officeClient = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'referrals:write']);
const officeReader = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);
const practiceClient = await addApiClient(test, practice.admin.token, practice.id, ['referrals:read', 'referrals:write']);

type Caller = { id: string; token: string };

const documentsUrl = (referralId: string) => `/v1/referrals/${referralId}/documents`;
const documentUrl = (referralId: string, documentId: string) => `${documentsUrl(referralId)}/${documentId}`;
const contentUrl = (referralId: string, documentId: string) => `${documentUrl(referralId, documentId)}/content`;

/** A referral from `office` sent to the practice (or `target`). */
const sentReferral = (target: Json = { practiceId: practice.id }) => test.create('/v1/referrals', office.physician.token, referralBody({ send: true, ...target }));

/** A referral to the practice, accepted by its therapist. */
async function acceptedReferral(): Promise<Json> {
  const referral = await sentReferral();
  return requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: {} }), 200, 'accept');
}

function upload(referralId: string, token: string, form: { payload: Buffer; contentType: string }, headers: Record<string, string> = {}): Promise<TestResponse> {
  return test.request({ method: 'POST', url: documentsUrl(referralId), token, payload: form.payload, headers: { 'content-type': form.contentType, ...headers } });
}

/** Uploads a file that must be taken; returns its metadata. */
async function shared(referralId: string, caller: Caller, file: Buffer, options: Parameters<typeof documentForm>[1] = {}): Promise<Json> {
  return requireStatus(await upload(referralId, caller.token, documentForm(file, options)), 201, 'upload');
}

const get = (url: string, token: string, headers: Record<string, string> = {}) => test.request({ method: 'GET', url, token, headers });
const retract = (referralId: string, documentId: string, token: string, payload?: Json) =>
  test.request({ method: 'DELETE', url: documentUrl(referralId, documentId), token, ...(payload ? { payload } : {}) });

const count = async (query: ReturnType<typeof sql>) => Number((await test.app.database.rows<{ n: number | string }>(query))[0]!.n);
/** Parts of uploads that are not (yet) a document: none may outlive a request. */
const orphanParts = () => count(sql`select count(*) as n from document_chunks c where not exists (select 1 from documents d where d.id = c.upload_id)`);
const documentCount = () => count(sql`select count(*) as n from documents`);

/** Asserts a refused upload left nothing behind. */
async function assertNothingStored(t: Test, documentsBefore: number) {
  t.equal(await orphanParts(), 0, 'no parts of the upload are left in document_chunks');
  t.equal(await documentCount(), documentsBefore, 'no document was stored');
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const referral = await acceptedReferral();

t.test('POST then GET …/content › each of the four types comes back byte for byte, told by its bytes', async (t) => {
  const files = {
    'application/pdf': sampleFile.pdf(),
    'image/png': sampleFile.png(),
    'image/jpeg': sampleFile.jpeg(),
    'image/tiff': sampleFile.tiff(),
  };
  for (const [contentType, file] of Object.entries(files)) {
    t.test(contentType, async (t) => {
      // Named and declared as something else: only the bytes count.
      const response = await upload(referral.id, office.physician.token, documentForm(file, { filename: 'scan.bin', contentType: 'text/plain', title: `Scan as ${contentType}` }));
      t.equal(response.statusCode, 201, `201 (${response.body.slice(0, 300)})`);
      const document = response.json();
      t.match(document, {
        referralId: referral.id,
        category: 'imaging',
        title: `Scan as ${contentType}`,
        contentType,
        sizeBytes: file.length,
        sha256: sha256Hex(file),
        uploadedBy: { type: 'user', id: office.physician.id, organizationId: office.id },
        contentUrl: contentUrl(referral.id, document.id),
      });
      t.equal(response.headers.location, documentUrl(referral.id, document.id), 'Location names the document');

      const download = await get(contentUrl(referral.id, document.id), practice.therapist.token);
      t.equal(download.statusCode, 200);
      t.ok(download.rawPayload.equals(file), 'the bytes are those uploaded');
      t.equal(download.headers['content-type'], contentType, 'Content-Type is the sniffed type');
      t.equal(download.headers['content-length'], String(file.length));
      t.match(download.headers['content-disposition'], /^attachment; filename="Scan as [^"]+\.(pdf|png|jpg|tif)"$/);
      t.equal(download.headers['x-content-type-options'], 'nosniff');
      t.equal(download.headers['cache-control'], 'no-store');
      t.equal(download.headers.etag, `"${sha256Hex(file)}"`, 'ETag is the SHA-256');
      t.equal(download.headers['repr-digest'], `sha-256=:${Buffer.from(sha256Hex(file), 'hex').toString('base64')}:`, 'Repr-Digest (RFC 9530)');
    });
  }
});

t.test('POST …/documents › a file of several parts is stored in parts and served whole; fields may follow the file', async (t) => {
  const file = sampleFile.pdf(700 * 1024);
  const document = await shared(referral.id, practice.therapist, file, { fieldsFirst: false, category: 'report', title: 'Évaluation initiale – 日本' });
  t.equal(document.sha256, sha256Hex(file));
  t.equal(document.uploadedBy.organizationId, practice.id);
  t.equal(await count(sql`select count(*) as n from document_chunks where upload_id = ${document.id}::uuid`), 3, '700 KiB in three parts of at most 256 KiB');
  const download = await get(contentUrl(referral.id, document.id), office.staff.token);
  t.ok(download.rawPayload.equals(file), 'served whole, byte for byte');
  const disposition = download.headers['content-disposition'] as string;
  t.match(disposition, /^attachment; filename="[\x20-\x7e]+\.pdf"; filename\*=UTF-8''%C3%89valuation%20initiale%20%E2%80%93%20%E6%97%A5%E6%9C%AC\.pdf$/, 'an ASCII filename and the title in UTF-8 (RFC 6266)');
  const read = auditEvents(test, { action: 'document.read_content', resourceId: document.id });
  t.match(await read, [{ outcome: 'success', actorId: office.staff.id, patientId: referral.patientId, resourceType: 'document' }], 'the read is audited against the patient');
});

t.test('POST …/documents › the referral moves (updatedAt) and document.added reaches the outbox, thin', async (t) => {
  const before = (await get(`/v1/referrals/${referral.id}`, office.physician.token)).json().updatedAt;
  await new Promise((resolve) => setTimeout(resolve, 5));
  const document = await shared(referral.id, office.staff, sampleFile.png(), { category: 'intake', title: 'Intake form' });
  const after = (await get(`/v1/referrals/${referral.id}`, office.physician.token)).json().updatedAt;
  t.ok(Date.parse(after) > Date.parse(before), `updatedAt moved (${before} → ${after})`);

  const events = await test.app.database.rows<{ payload: Json }>(sql`select payload from webhook_events where type = 'document.added' and referral_id = ${referral.id}::uuid`);
  const event = events.find((row) => row.payload.data.id === document.id);
  t.ok(event, 'a document.added event in the outbox');
  t.match(event?.payload.data, { resource: 'document', id: document.id, referralId: referral.id, url: documentUrl(referral.id, document.id) });
  t.notMatch(JSON.stringify(event?.payload), /Intake form/, 'no title (clinical text) in the payload');
  t.match(await auditEvents(test, { action: 'document.create', resourceId: document.id }), [{ outcome: 'success', actorId: office.staff.id, patientId: referral.patientId, httpStatus: 201 }]);
});

t.test('POST …/documents › types other than PDF, PNG, JPEG and TIFF are 415, whatever they are called', async (t) => {
  const before = await documentCount();
  const cases = [
    { what: 'text named x.pdf, declared application/pdf', file: sampleFile.text(), detail: /unknown type/ },
    { what: 'a GIF', file: sampleFile.gif(), detail: /image\/gif/ },
    { what: 'an empty file', file: Buffer.alloc(0), detail: /empty/ },
  ];
  for (const { what, file, detail } of cases) {
    const response = await upload(referral.id, office.physician.token, documentForm(file, { filename: 'x.pdf', contentType: 'application/pdf' }));
    const problem = assertProblem(t, response, 415, ['file'], what);
    t.equal(problem.code, 'unsupported-document-type', `${what}: code`);
    t.match(problem.detail, detail, `${what}: the detail names what was found`);
  }
  await assertNothingStored(t, before);
});

t.test('POST …/documents › a malformed form is a 400 naming the part, and stores nothing', async (t) => {
  const before = await documentCount();
  const file = sampleFile.pdf();
  const filePart = { name: 'file', filename: 'a.pdf', contentType: 'application/pdf', data: file };
  const category = { name: 'category', value: 'imaging' };
  const title = { name: 'title', value: 'MRI' };
  const cases: { what: string; parts: Parameters<typeof multipartBody>[0]; field: string }[] = [
    { what: 'two files', parts: [category, title, filePart, filePart], field: 'file' },
    { what: 'no file', parts: [category, title], field: 'file' },
    { what: 'the file under another name', parts: [category, title, { ...filePart, name: 'document' }], field: 'document' },
    { what: 'no category', parts: [title, filePart], field: 'category' },
    { what: 'an unknown category', parts: [{ name: 'category', value: 'xray' }, title, filePart], field: 'category' },
    { what: 'no title', parts: [category, filePart], field: 'title' },
    { what: 'an empty title', parts: [category, { name: 'title', value: '' }, filePart], field: 'title' },
    { what: 'a title of 201 characters', parts: [category, { name: 'title', value: 'x'.repeat(201) }, filePart], field: 'title' },
    { what: 'a title with a bidirectional override', parts: [category, { name: 'title', value: 'MRI \u202Efdp.exe' }, filePart], field: 'title' },
    { what: 'a title sent twice', parts: [category, title, title, filePart], field: 'title' },
    { what: 'an unknown field', parts: [category, title, { name: 'notes', value: 'x' }, filePart], field: 'notes' },
    { what: 'an unknown field after the file', parts: [filePart, category, title, { name: 'notes', value: 'x' }], field: 'notes' },
  ];
  for (const { what, parts, field } of cases) {
    assertProblem(t, await upload(referral.id, office.physician.token, multipartBody(parts)), 400, [field], what);
  }
  const maxTitle = await upload(referral.id, office.physician.token, multipartBody([category, { name: 'title', value: 'é'.repeat(200) }, filePart]));
  t.equal(maxTitle.statusCode, 201, 'a title of 200 characters (400 bytes) is taken');

  const noBoundary = await upload(referral.id, office.physician.token, { payload: Buffer.from('whatever'), contentType: 'multipart/form-data' });
  assertProblem(t, noBoundary, 400, ['body'], 'multipart without a boundary');
  const truncated = multipartBody([category, title, filePart]);
  assertProblem(t, await upload(referral.id, office.physician.token, { ...truncated, payload: truncated.payload.subarray(0, 600) }), 400, ['body'], 'a body that ends mid-part');

  const json = await test.request({ method: 'POST', url: documentsUrl(referral.id), token: office.physician.token, payload: { category: 'imaging', title: 'MRI', file: 'JVBERi0=' } });
  const problem = assertProblem(t, json, 415, ['body'], 'a JSON body');
  t.match(problem.detail, /multipart\/form-data/, 'the detail says what the body must be');
  const none = await test.request({ method: 'POST', url: documentsUrl(referral.id), token: office.physician.token });
  assertProblem(t, none, 415, ['body'], 'no body at all');
  await assertNothingStored(t, before + 1);
});

t.test('GET …/documents › oldest first, in pages, retracted ones left out', async (t) => {
  const own = await acceptedReferral();
  const titles = ['first', 'second', 'third'];
  const made: Json[] = [];
  for (const title of titles) made.push(await shared(own.id, office.physician, sampleFile.jpeg(), { title }));
  const first = await get(`${documentsUrl(own.id)}?limit=2`, practice.admin.token);
  t.equal(first.statusCode, 200);
  t.same(first.json().data.map((document: Json) => document.title), ['first', 'second']);
  t.type(first.json().nextCursor, 'string');
  const second = (await get(`${documentsUrl(own.id)}?limit=2&cursor=${first.json().nextCursor}`, practice.admin.token)).json();
  t.same(second.data.map((document: Json) => document.title), ['third']);
  t.equal(second.nextCursor, null);
  t.equal((await retract(own.id, made[1]!.id, office.staff.token)).statusCode, 204);
  const listed = (await get(documentsUrl(own.id), practiceClient.token)).json();
  t.same(listed.data.map((document: Json) => document.title), ['first', 'third'], 'the retracted one is not listed');
  assertProblem(t, await get(`${documentsUrl(own.id)}?cursor=bm90IGEgY3Vyc29y`, office.physician.token), 400, ['query.cursor']);
  t.match(await auditEvents(test, { action: 'document.list', resourceId: own.id }), [{ outcome: 'success', patientId: own.patientId }]);
});

t.test('GET …/content › 406 when Accept excludes the type; 404 for a document that is not there', async (t) => {
  const document = await shared(referral.id, office.physician, sampleFile.pdf());
  assertProblem(t, await get(contentUrl(referral.id, document.id), office.physician.token, { accept: 'application/json' }), 406);
  t.equal((await get(contentUrl(referral.id, document.id), office.physician.token, { accept: 'application/pdf' })).statusCode, 200);
  const missing = '00000000-0000-4000-8000-000000000000';
  assertProblem(t, await get(contentUrl(referral.id, missing), office.physician.token), 404);
  assertProblem(t, await get(documentUrl(referral.id, missing), office.physician.token), 404);
  // A document of another referral is not reachable through this one.
  const elsewhere = await acceptedReferral();
  assertProblem(t, await get(documentUrl(elsewhere.id, document.id), office.physician.token), 404, [], 'through another referral');
});

t.test('DELETE …/documents/{id} › retraction hides the document, keeps it, is audited, and is for the uploading organization only', async (t) => {
  const ofOffice = await shared(referral.id, office.physician, sampleFile.tiff(), { title: 'Wrong patient' });
  const ofPractice = await shared(referral.id, practice.therapist, sampleFile.png(), { title: 'Posture photo' });

  const refused = await retract(referral.id, ofOffice.id, practice.therapist.token);
  assertProblem(t, refused, 403, [], "the practice retracting the office's document");
  t.match(await auditEvents(test, { action: 'document.retract', resourceId: ofOffice.id, outcome: 'denied' }), [{ actorId: practice.therapist.id, httpStatus: 403 }], 'the refusal is audited');

  const done = await retract(referral.id, ofOffice.id, office.staff.token, { reason: 'Filed on the wrong patient' });
  t.equal(done.statusCode, 204, 'office staff retract what their physician uploaded');
  t.equal(done.body, '');
  assertProblem(t, await get(documentUrl(referral.id, ofOffice.id), office.physician.token), 404, [], 'metadata after retraction');
  assertProblem(t, await get(contentUrl(referral.id, ofOffice.id), practice.therapist.token), 404, [], 'content after retraction');
  assertProblem(t, await retract(referral.id, ofOffice.id, office.physician.token), 404, [], 'a second retraction');
  const [kept] = await test.app.database.rows<Json>(sql`select retracted_at, retracted_by, retraction_reason, (select count(*) from document_chunks where upload_id = ${ofOffice.id}::uuid) as parts from documents where id = ${ofOffice.id}::uuid`);
  t.ok(kept?.retracted_at, 'the row is kept, marked retracted');
  t.equal(kept?.retracted_by, office.staff.id);
  t.equal(kept?.retraction_reason, 'Filed on the wrong patient');
  t.equal(Number(kept?.parts), 1, 'its bytes are kept');
  t.match(await auditEvents(test, { action: 'document.retract', resourceId: ofOffice.id, outcome: 'success' }), [{ actorId: office.staff.id, httpStatus: 204, patientId: referral.patientId }]);

  t.equal((await retract(referral.id, ofPractice.id, practice.admin.token)).statusCode, 204, "the practice admin retracts their therapist's upload");
  assertProblem(t, await retract(referral.id, ofPractice.id, otherOffice.physician.token), 404, [], 'an outsider');
});

t.test('POST …/documents › an Idempotency-Key replays the first answer, while the document may still be seen', async (t) => {
  const before = await documentCount();
  const form = documentForm(sampleFile.jpeg(), { title: 'Replayed' });
  const first = await upload(referral.id, office.physician.token, form, { 'idempotency-key': 'doc-replay-1' });
  t.equal(first.statusCode, 201);
  const again = await upload(referral.id, office.physician.token, form, { 'idempotency-key': 'doc-replay-1' });
  t.equal(again.statusCode, 201);
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(again.json().id, first.json().id, 'the same document');
  t.equal(await documentCount(), before + 1, 'stored once');
  t.equal(await orphanParts(), 0, 'the replay stored no parts');
  t.equal((await retract(referral.id, first.json().id, office.physician.token)).statusCode, 204);
  assertProblem(t, await upload(referral.id, office.physician.token, form, { 'idempotency-key': 'doc-replay-1' }), 404, [], 'replayed after retraction');
});

t.test('POST …/documents › the same Idempotency-Key with another file is 422, and stores nothing', async (t) => {
  const before = await documentCount();
  const first = await upload(referral.id, office.physician.token, documentForm(sampleFile.pdf(), { title: 'First file' }), { 'idempotency-key': 'doc-other-file' });
  t.equal(first.statusCode, 201);
  const otherFile = await upload(referral.id, office.physician.token, documentForm(sampleFile.pdf(), { title: 'First file' }), { 'idempotency-key': 'doc-other-file' });
  assertProblem(t, otherFile, 422, [], 'another file (same title and type) under the key');
  const otherTitle = await upload(referral.id, office.physician.token, documentForm(sampleFile.jpeg(), { title: 'Another title' }), { 'idempotency-key': 'doc-other-file' });
  assertProblem(t, otherTitle, 422, [], 'another title under the key');
  t.equal(await documentCount(), before + 1, 'only the first was stored');
  t.equal(await orphanParts(), 0, 'the refused repeats left no parts');

  const refused = await upload(referral.id, office.physician.token, documentForm(Buffer.from('GIF89a not a document'), { title: 'Refused' }), { 'idempotency-key': 'doc-refused-first' });
  t.equal(refused.statusCode, 415);
  const repeated = await upload(referral.id, office.physician.token, documentForm(Buffer.from('GIF89a not a document'), { title: 'Refused' }), { 'idempotency-key': 'doc-refused-first' });
  t.equal(repeated.statusCode, 415, 'a key whose first request was refused while its file was read is refused again');
  t.equal(await orphanParts(), 0, 'and nothing is left of either');
});

t.test('who › only the care team sees or adds documents; everyone else gets the 404 of a missing referral, audited', async (t) => {
  const accepted = await acceptedReferral();
  const document = await shared(accepted.id, office.physician, sampleFile.pdf(), { title: 'Care team only' });
  const careTeam: Record<string, Caller> = {
    'the prescribing physician': office.physician,
    'office staff': office.staff,
    'the office admin': office.admin,
    "the office's API client": officeClient,
    'the accepting therapist': practice.therapist,
    'the accepting practice admin': practice.admin,
    "the accepting practice's API client": practiceClient,
  };
  for (const [who, caller] of Object.entries(careTeam)) {
    t.test(`${who} lists, reads and downloads`, async (t) => {
      t.equal((await get(documentsUrl(accepted.id), caller.token)).json().data.length, 1);
      t.equal((await get(documentUrl(accepted.id, document.id), caller.token)).statusCode, 200);
      t.equal((await get(contentUrl(accepted.id, document.id), caller.token)).statusCode, 200);
    });
  }
  t.test("the office's and the practice's API clients upload with referrals:write", async (t) => {
    t.equal((await shared(accepted.id, officeClient, sampleFile.png())).uploadedBy.type, 'api_client');
    t.equal((await shared(accepted.id, practiceClient, sampleFile.png())).uploadedBy.organizationId, practice.id);
  });
  t.test('an API client with referrals:read only reads, and may not upload (403)', async (t) => {
    t.equal((await get(documentsUrl(accepted.id), officeReader.token)).statusCode, 200);
    assertProblem(t, await upload(accepted.id, officeReader.token, documentForm(sampleFile.png())), 403);
  });

  // Before anyone accepts, the practice side sees the order but not who the patient is (SPEC §14.8): nor documents.
  const targeted = await sentReferral({ practiceId: practice.id });
  const toTherapist = await sentReferral({ therapistId: practice.therapist.id });
  const offered = await sentReferral({ network: { techniques: ['trigger_point'], near: { lat: 45.5152, lng: -122.6734 }, radiusKm: 10 } });
  await shared(targeted.id, office.physician, sampleFile.pdf());
  const outsiders: { who: string; caller: Caller; referralId: string }[] = [
    { who: 'another office', caller: otherOffice.physician, referralId: accepted.id },
    { who: "another practice's therapist", caller: otherPractice.therapist, referralId: accepted.id },
    { who: "another practice's admin", caller: otherPractice.admin, referralId: accepted.id },
    { who: 'a colleague of the accepting therapist', caller: colleague, referralId: accepted.id },
    { who: 'a network admin', caller: { id: networkAdminId, token: networkAdmin }, referralId: accepted.id },
    { who: 'the targeted practice admin before acceptance', caller: practice.admin, referralId: targeted.id },
    { who: 'a therapist of the targeted practice before acceptance', caller: practice.therapist, referralId: targeted.id },
    { who: 'the targeted therapist before accepting', caller: practice.therapist, referralId: toTherapist.id },
    { who: 'a therapist holding only an open offer', caller: practice.therapist, referralId: offered.id },
  ];
  for (const { who, caller, referralId } of outsiders) {
    t.test(`${who} gets 404 on every route, audited as denied, and stores nothing`, async (t) => {
      const before = await documentCount();
      const attempts: { action: string; response: TestResponse }[] = [
        { action: 'document.list', response: await get(documentsUrl(referralId), caller.token) },
        { action: 'document.read', response: await get(documentUrl(referralId, document.id), caller.token) },
        { action: 'document.read_content', response: await get(contentUrl(referralId, document.id), caller.token) },
        { action: 'document.create', response: await upload(referralId, caller.token, documentForm(sampleFile.pdf(300 * 1024))) },
        { action: 'document.retract', response: await retract(referralId, document.id, caller.token) },
      ];
      for (const { action, response } of attempts) {
        const problem = assertProblem(t, response, 404, [], action);
        t.match(problem.detail, /Referral not found/, `${action}: the 404 of a missing referral`);
        const denied = (await auditEvents(test, { action, outcome: 'denied', actorId: caller.id, resourceId: referralId })).filter((event) => event.requestId === response.headers['x-request-id']);
        t.equal(denied.length, 1, `${action}: one denied audit event naming the referral`);
      }
      await assertNothingStored(t, before);
    });
  }
});

t.test('the sweep › deletes parts older than an hour that never became a document, and nothing else', async (t) => {
  const abandoned = '11111111-1111-4111-8111-111111111111';
  const recent = '22222222-2222-4222-8222-222222222222';
  const document = await shared(referral.id, office.physician, sampleFile.pdf());
  await test.app.database.rows(sql`insert into document_chunks (upload_id, part, bytes, created_at) values
    (${abandoned}::uuid, 0, '\\x00ff'::bytea, now() - interval '2 hours'), (${abandoned}::uuid, 1, '\\x00ff'::bytea, now() - interval '2 hours'),
    (${recent}::uuid, 0, '\\x00ff'::bytea, now() - interval '10 minutes')`);
  await test.app.database.rows(sql`update document_chunks set created_at = now() - interval '3 hours' where upload_id = ${document.id}::uuid`);
  t.equal(await test.app.sweepAbandonedUploads(), 1, 'one abandoned upload cleared');
  t.equal(await count(sql`select count(*) as n from document_chunks where upload_id = ${abandoned}::uuid`), 0, 'its parts are gone');
  t.equal(await count(sql`select count(*) as n from document_chunks where upload_id = ${recent}::uuid`), 1, 'an upload of ten minutes ago may still be running');
  t.ok((await get(contentUrl(referral.id, document.id), office.physician.token)).rawPayload.length > 0, "an old document's parts stay");
  await test.app.database.rows(sql`delete from document_chunks where upload_id = ${recent}::uuid`);
});

t.test('on a listening server', async (t) => {
  await test.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = test.app.server.address() as AddressInfo;
  const headers = (contentType: string, extra: Record<string, string | number> = {}) => ({ authorization: `Bearer ${office.physician.token}`, 'content-type': contentType, ...extra });

  t.test('an upload the client abandons midway leaves no parts and no document', async (t) => {
    const before = await documentCount();
    const boundary = 'interrupted-upload-boundary';
    const file = sampleFile.pdf(2 * 1024 * 1024);
    const preamble = `--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nimaging\r\n--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nCut short\r\n--${boundary}\r\n${filePartHeader('file', 'big.pdf', 'application/pdf')}`;
    const epilogue = `\r\n--${boundary}--\r\n`;
    const length = Buffer.byteLength(preamble) + file.length + Buffer.byteLength(epilogue);
    const { request } = openUpload(port, documentsUrl(referral.id), headers(`multipart/form-data; boundary=${boundary}`, { 'content-length': length }));
    await write(request, preamble);
    await write(request, file.subarray(0, 1024 * 1024));
    await until(async () => (await orphanParts()) >= 2, 'parts of the upload are written');
    t.pass(`${await orphanParts()} parts were written before the client went away`);
    request.destroy();
    await until(async () => (await orphanParts()) === 0, 'the parts are deleted');
    await assertNothingStored(t, before);
  });

  t.test('a file over the limit is refused while it streams, before the client has sent it all', async (t) => {
    // The limit is the default 10 MiB. The client sends a little more than that without a
    // Content-Length (chunked), then waits without ending the body: only a server that refuses
    // while reading can answer now.
    const before = await documentCount();
    const boundary = 'too-large-boundary';
    const { request, response } = openUpload(port, documentsUrl(referral.id), headers(`multipart/form-data; boundary=${boundary}`));
    await write(request, `--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nimaging\r\n--${boundary}\r\n${filePartHeader('file', 'big.pdf', 'application/pdf')}`);
    let answered = false;
    void response.then(() => (answered = true), () => (answered = true));
    const piece = sampleFile.pdf(256 * 1024);
    let sent = 0;
    while (!answered && sent <= test.config.documents.maxBytes + 512 * 1024) {
      await write(request, piece);
      sent += piece.length;
    }
    const answer = await Promise.race([response, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer while the body was still open')), 20_000))]);
    t.equal(answer.statusCode, 413, `answered after ${sent} bytes, the body not yet ended`);
    t.match(answer.headers['content-type'], /^application\/problem\+json/);
    const problem = JSON.parse(answer.body);
    t.equal(problem.code, 'document-too-large');
    t.match(problem.detail, /10485760 bytes/, 'the detail names the limit');
    t.equal(answer.headers.connection, 'close', 'the server closes the connection instead of reading the rest');
    request.destroy();
    await until(async () => (await orphanParts()) === 0, 'the parts are deleted');
    await assertNothingStored(t, before);
  });
});

t.test('DOCUMENT_MAX_BYTES › 413 document-too-large, while streaming and by the declared length; nothing stored', async (t) => {
  const small = await buildTestApp(t, { env: { DOCUMENT_MAX_BYTES: '65536' } });
  const admin = await small.loginAsAdmin();
  const smallOffice = await createOffice(small, admin);
  const smallPractice = await createPractice(small, admin);
  // A draft: the office shares documents on it before sending it.
  const referralId = (await small.create('/v1/referrals', smallOffice.physician.token, referralBody({ practiceId: smallPractice.id }))).id;
  const send = (form: { payload: Buffer; contentType: string }) =>
    small.request({ method: 'POST', url: documentsUrl(referralId), token: smallOffice.physician.token, payload: form.payload, headers: { 'content-type': form.contentType } });
  const stored = async (app: TestApp) => Number((await app.app.database.rows<{ n: string }>(sql`select (select count(*) from document_chunks) + (select count(*) from documents) as n`))[0]!.n);

  const exactly = sampleFile.pdf(65536 - sampleFile.pdf(0).length);
  t.equal(exactly.length, 65536);
  t.equal((await send(documentForm(exactly))).statusCode, 201, 'a file of exactly the limit is taken');
  const before = await stored(small);

  // Within the allowance for the envelope, so only reading the file finds it too large.
  const streamed = await send(documentForm(sampleFile.pdf(100 * 1024)));
  const problem = assertProblem(t, streamed, 413, ['file'], 'found while streaming');
  t.equal(problem.code, 'document-too-large');
  t.match(problem.detail, /65536 bytes/, 'the detail names the limit');
  t.equal(streamed.headers.connection, 'close', 'the connection is closed rather than the rest read');

  const declared = await send(documentForm(sampleFile.pdf(300 * 1024)));
  t.equal(assertProblem(t, declared, 413, ['file'], 'by the declared Content-Length').code, 'document-too-large');
  t.equal(await stored(small), before, 'nothing stored by either');
});

t.test('DOCUMENT_UPLOAD_SECONDS › an upload still trickling in after its time is refused with 408; nothing kept', async (t) => {
  const slow = await buildTestApp(t, { env: { DOCUMENT_UPLOAD_SECONDS: '1' } });
  const admin = await slow.loginAsAdmin();
  const slowOffice = await createOffice(slow, admin);
  const slowPractice = await createPractice(slow, admin);
  const referralId = (await slow.create('/v1/referrals', slowOffice.physician.token, referralBody({ practiceId: slowPractice.id }))).id;
  await slow.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = slow.app.server.address() as AddressInfo;
  const boundary = 'trickle-boundary';
  const { request, response } = openUpload(port, documentsUrl(referralId), {
    authorization: `Bearer ${slowOffice.physician.token}`,
    'content-type': `multipart/form-data; boundary=${boundary}`,
  });
  await write(request, `--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nimaging\r\n--${boundary}\r\n${filePartHeader('file', 'slow.pdf', 'application/pdf')}`);
  await write(request, sampleFile.pdf(8 * 1024));
  const started = Date.now();
  const trickle = setInterval(() => void write(request, Buffer.alloc(16, 0x20)).catch(() => {}), 100);
  t.teardown(() => clearInterval(trickle));
  const answer = await Promise.race([response, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer to a trickling upload')), 10_000))]);
  clearInterval(trickle);
  request.destroy();
  t.equal(answer.statusCode, 408, `a client still sending after the upload's time is answered 408 (${Date.now() - started} ms)`);
  t.equal(JSON.parse(answer.body).code, 'upload-too-slow');
  t.equal(answer.headers.connection, 'close', 'and cut off');
  const left = async () => Number((await slow.app.database.rows<{ n: string }>(sql`select (select count(*) from document_chunks) + (select count(*) from documents) as n`))[0]!.n);
  for (const begun = Date.now(); (await left()) > 0 && Date.now() - begun < 5000; ) await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(await left(), 0, 'nothing of it is kept');
});
