// The billing summary (SPEC §14.9): a referral's visits as the fields of a CMS-1500 claim, read as
// JSON or as CSV (parsed back with csv-parse, a real parser, and held to the JSON), by the office
// and the accepting practice only, every read audited as a read of the patient.
import { sql } from 'drizzle-orm';
import { parse } from 'csv-parse/sync';
import t from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addApiClient, addMember, addTherapist, createOffice, createPractice, nextNpi } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate, referralBody, visitNoteBody } from './fixtures/referral-bodies.js';
import { requireStatus } from './fixtures/responses.js';
import { buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t, { env: { REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const otherPractice = await createPractice(test, networkAdmin);

// The practice bills under its own NPI, its therapist renders under theirs (SPEC §14.9). The names
// carry a comma and quotes, which the CSV must quote.
const practiceNpi = nextNpi();
const therapistNpi = nextNpi();
const practiceAddress = { line1: '40 Harbor Way', line2: 'Suite 2', city: 'Portland', state: 'OR', postalCode: '97209' };
const practice = await test.create('/v1/organizations', networkAdmin, {
  kind: 'therapy_practice',
  name: 'Harbor Medical Massage, LLC',
  npi: practiceNpi,
  address: practiceAddress,
  location: { lat: 45.5152, lng: -122.6734 },
});
const therapistName = 'Sam "Sunny" Ortiz, LMT';
const therapist = await addTherapist(test, networkAdmin, practice.id, { name: therapistName, npi: therapistNpi });
const colleague = await addTherapist(test, networkAdmin, practice.id, { npi: nextNpi() });
const practiceAdmin = await addMember(test, networkAdmin, practice.id, { role: 'practice_admin', email: `admin.${practice.id}@harbor.example`, name: 'Harbor admin' });
const practiceEhr = await addApiClient(test, networkAdmin, practice.id, ['referrals:read']);
const officeEhr = await addApiClient(test, office.admin.token, office.id, ['referrals:read']);
const officePatientsEhr = await addApiClient(test, office.admin.token, office.id, ['patients:read']);
const physician = requireStatus(await test.request({ method: 'GET', url: `/v1/organizations/${office.id}/users/${office.physician.id}`, token: office.admin.token }), 200, 'physician');

const billingUrl = (referralId: string) => `/v1/referrals/${referralId}/billing`;
const readBilling = (referralId: string, token: string, accept?: string): Promise<TestResponse> =>
  test.request({ method: 'GET', url: billingUrl(referralId), token, headers: accept ? { accept } : {} });

const diagnoses = [
  { code: 'M54.50', display: 'Low back pain, unspecified' },
  { code: 'M62.830', display: 'Muscle spasm of back' },
];
const insurance = { payer: 'Acme Health', memberId: 'AH123456789', groupNumber: 'GRP-0042', authorizationNumber: 'PA-77812' };
const patient = { givenName: 'Maria', familyName: "O'Brien-Gomez", birthDate: '1978-04-02', sex: 'female' };

/** A referral from the office's physician to the practice, sent; `overrides` change the order. */
const sentReferral = (overrides: Json = {}) =>
  test.create('/v1/referrals', office.physician.token, referralBody({ patient, diagnoses, insurance, practiceId: practice.id, send: true, ...overrides }));

/** Accepted by the therapist ten days ago, so that visits can fall on different days. */
async function acceptedReferral(overrides: Json = {}): Promise<Json> {
  const referral = await sentReferral({ startDate: isoDate(-12), ...overrides });
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: therapist.token, payload: {} }), 200, 'accept');
  await test.app.database.rows(sql`update referrals set accepted_at = now() - interval '10 days' where id = ${referral.id}`);
  return referral;
}

const visit = async (referralId: string, visitDate: string, billing: Json[]): Promise<Json> =>
  requireStatus(
    await test.request({ method: 'POST', url: `/v1/referrals/${referralId}/progress-reports`, token: therapist.token, payload: visitNoteBody({ visitDate, billing }) }),
    201,
    'visit note',
  );

// A realistic course: three visits of Swedish massage (97124, two units) and manual therapy (97140,
// one unit, a distinct procedure: 59), both under the therapy plan of care (GP).
const referral = await acceptedReferral();
const visitDates = [isoDate(-9), isoDate(-5), isoDate(-2)];
const notes: Json[] = [];
for (const [index, visitDate] of visitDates.entries()) {
  notes.push(
    await visit(referral.id, visitDate, [
      { cpt: '97124', units: 2, modifiers: ['GP'], diagnosisPointers: [1, 2] },
      { cpt: '97140', units: 1, modifiers: ['GP', '59'], diagnosisPointers: index === 2 ? [2, 1] : [2] },
    ]),
  );
}

const expectedClaim = {
  referralId: referral.id,
  patient: { familyName: "O'Brien-Gomez", givenName: 'Maria', birthDate: '1978-04-02', sex: 'female' },
  insured: { payer: 'Acme Health', memberId: 'AH123456789', groupNumber: 'GRP-0042' },
  referringProvider: { qualifier: 'DN', id: office.physician.id, name: physician.name, npi: physician.npi },
  priorAuthorizationNumber: 'PA-77812',
  icdIndicator: '0',
  diagnoses: [
    { letter: 'A', code: 'M54.50', formCode: 'M5450', display: 'Low back pain, unspecified' },
    { letter: 'B', code: 'M62.830', formCode: 'M62830', display: 'Muscle spasm of back' },
  ],
  renderingProvider: { id: therapist.id, name: therapistName, npi: therapistNpi },
  billingProvider: { id: practice.id, name: 'Harbor Medical Massage, LLC', npi: practiceNpi, address: practiceAddress },
  serviceLines: notes.flatMap((note, index) => [
    {
      lineNumber: index * 2 + 1,
      visitNumber: index + 1,
      progressReportId: note.id,
      dateOfService: visitDates[index],
      placeOfService: '11',
      cpt: '97124',
      modifiers: ['GP'],
      diagnosisPointers: ['A', 'B'],
      units: 2,
      renderingProviderNpi: therapistNpi,
    },
    {
      lineNumber: index * 2 + 2,
      visitNumber: index + 1,
      progressReportId: note.id,
      dateOfService: visitDates[index],
      placeOfService: '11',
      cpt: '97140',
      modifiers: ['GP', '59'],
      diagnosisPointers: index === 2 ? ['B', 'A'] : ['B'],
      units: 1,
      renderingProviderNpi: therapistNpi,
    },
  ]),
  totals: { lines: 6, units: 9 },
};

/** The CSV columns, as a biller's import would map them, each with its value in the JSON claim. */
const csvColumns: [string, (claim: Json, line: Json) => unknown][] = [
  ['referralId', (claim) => claim.referralId],
  ['patientFamilyName', (claim) => claim.patient.familyName],
  ['patientGivenName', (claim) => claim.patient.givenName],
  ['patientBirthDate', (claim) => claim.patient.birthDate],
  ['patientSex', (claim) => claim.patient.sex],
  ['insuredPayer', (claim) => claim.insured?.payer],
  ['insuredMemberId', (claim) => claim.insured?.memberId],
  ['insuredGroupNumber', (claim) => claim.insured?.groupNumber],
  ['priorAuthorizationNumber', (claim) => claim.priorAuthorizationNumber],
  ['referringProviderQualifier', (claim) => claim.referringProvider.qualifier],
  ['referringProviderName', (claim) => claim.referringProvider.name],
  ['referringProviderNpi', (claim) => claim.referringProvider.npi],
  ['renderingProviderName', (claim) => claim.renderingProvider?.name],
  ['renderingProviderNpi', (claim) => claim.renderingProvider?.npi],
  ['billingProviderName', (claim) => claim.billingProvider?.name],
  ['billingProviderNpi', (claim) => claim.billingProvider?.npi],
  ['icdIndicator', (claim) => claim.icdIndicator],
  ...'ABCDEFGHIJKL'.split('').map((letter, index): [string, (claim: Json) => unknown] => [`diagnosis${letter}`, (claim) => claim.diagnoses[index]?.formCode]),
  ['lineNumber', (_claim, line) => line.lineNumber],
  ['visitNumber', (_claim, line) => line.visitNumber],
  ['dateOfService', (_claim, line) => line.dateOfService],
  ['placeOfService', (_claim, line) => line.placeOfService],
  ['cpt', (_claim, line) => line.cpt],
  ...[1, 2, 3, 4].map((number): [string, (claim: Json, line: Json) => unknown] => [`modifier${number}`, (_claim, line) => line.modifiers[number - 1]]),
  ['diagnosisPointers', (_claim, line) => line.diagnosisPointers.join('')],
  ['units', (_claim, line) => line.units],
  ['lineRenderingProviderNpi', (_claim, line) => line.renderingProviderNpi],
];

/** The rows the CSV must hold for a JSON claim: every value as text, absent ones empty. */
const csvRowsOf = (claim: Json) =>
  claim.serviceLines.map((line: Json) => Object.fromEntries(csvColumns.map(([name, value]) => [name, String(value(claim, line) ?? '')])));

t.test('GET /v1/referrals/{id}/billing as JSON', async (t) => {
  t.test('gives the fields of the claim for the visits so far, exactly', async (t) => {
    const response = await readBilling(referral.id, practiceAdmin.token);
    t.equal(response.statusCode, 200, response.body.slice(0, 300));
    t.match(response.headers['content-type'], /^application\/json/);
    t.equal(response.headers['cache-control'], 'no-store', 'PHI is never cached');
    t.same(response.json(), expectedClaim);
  });

  t.test('is JSON without an Accept header, for */*, and when JSON is preferred', async (t) => {
    for (const accept of [undefined, '*/*', 'application/json', 'text/csv;q=0.5, application/json']) {
      const response = await readBilling(referral.id, office.physician.token, accept);
      t.equal(response.statusCode, 200, `Accept: ${accept}`);
      t.same(response.json(), expectedClaim, `Accept: ${accept}`);
    }
  });

  t.test('a referral with one diagnosis, no insurance and a line with no modifiers or pointers', async (t) => {
    const plain = await acceptedReferral({ diagnoses: [diagnoses[0]], insurance: undefined });
    const note = await visit(plain.id, isoDate(-1), [{ cpt: '97124', units: 3 }]);
    const claim = requireStatus(await readBilling(plain.id, therapist.token), 200, 'billing');
    t.equal(claim.insured, null);
    t.equal(claim.priorAuthorizationNumber, null);
    t.same(claim.diagnoses, [expectedClaim.diagnoses[0]]);
    t.same(claim.serviceLines, [
      { lineNumber: 1, visitNumber: 1, progressReportId: note.id, dateOfService: isoDate(-1), placeOfService: '11', cpt: '97124', modifiers: [], diagnosisPointers: [], units: 3, renderingProviderNpi: therapistNpi },
    ]);
    t.same(claim.totals, { lines: 1, units: 3 });
  });

  t.test('insurance without a group or authorization number gives nulls for boxes 11 and 23', async (t) => {
    const plain = await acceptedReferral({ insurance: { payer: 'Acme Health', memberId: 'AH1' } });
    const claim = requireStatus(await readBilling(plain.id, office.staff.token), 200, 'billing');
    t.same(claim.insured, { payer: 'Acme Health', memberId: 'AH1', groupNumber: null });
    t.equal(claim.priorAuthorizationNumber, null);
    t.same(claim.serviceLines, []);
    t.same(claim.totals, { lines: 0, units: 0 });
  });

  t.test('before acceptance the office reads it without providers or lines', async (t) => {
    const sent = await sentReferral();
    const claim = requireStatus(await readBilling(sent.id, office.physician.token), 200, 'billing');
    t.match(claim, { referralId: sent.id, renderingProvider: null, billingProvider: null, serviceLines: [], totals: { lines: 0, units: 0 } });
    t.equal(claim.referringProvider.npi, physician.npi);
  });

  t.test('a therapist or practice without an NPI on file gives null NPIs, never a 500', async (t) => {
    const bare = await createPractice(test, networkAdmin);
    const created = await test.create('/v1/referrals', office.physician.token, referralBody({ patient, diagnoses, practiceId: bare.id, send: true }));
    requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${created.id}/accept`, token: bare.therapist.token, payload: {} }), 200, 'accept');
    requireStatus(
      await test.request({ method: 'POST', url: `/v1/referrals/${created.id}/progress-reports`, token: bare.therapist.token, payload: visitNoteBody({ billing: [{ cpt: '97124', units: 1 }] }) }),
      201,
      'visit note',
    );
    const claim = requireStatus(await readBilling(created.id, bare.admin.token), 200, 'billing');
    t.equal(claim.renderingProvider.npi, null);
    t.equal(claim.billingProvider.npi, null);
    t.equal(claim.serviceLines[0].renderingProviderNpi, null);
  });
});

t.test('GET /v1/referrals/{id}/billing as CSV', async (t) => {
  t.test('is one row per service line under a header row, the claim fields repeated, the same as the JSON', async (t) => {
    const response = await readBilling(referral.id, therapist.token, 'text/csv');
    t.equal(response.statusCode, 200, response.body.slice(0, 300));
    t.equal(response.headers['content-type'], 'text/csv; charset=utf-8');
    t.equal(response.headers['content-disposition'], `attachment; filename="claim-${referral.id}.csv"`);
    t.equal(response.headers['cache-control'], 'no-store', 'PHI is never cached');

    const [header, ...rows] = parse(response.body) as string[][];
    t.same(header, csvColumns.map(([name]) => name), 'the header row names the columns');
    t.equal(rows.length, 6, 'one row per service line');
    const records = parse(response.body, { columns: true }) as Json[];
    t.same(records, csvRowsOf(expectedClaim), 'each row holds the JSON claim and its line');
  });

  t.test('quotes by RFC 4180: CRLF line ends, fields with commas or quotes quoted, quotes doubled', async (t) => {
    const body = (await readBilling(referral.id, therapist.token, 'text/csv')).body;
    const lines = body.split('\r\n');
    t.equal(lines.at(-1), '', 'every record ends with CRLF');
    t.equal(lines.length, 8, 'header, six lines, and the empty rest after the last CRLF');
    t.notOk(body.replaceAll('\r\n', '').includes('\n'), 'no bare LF');
    t.ok(lines[1]!.includes('"Sam ""Sunny"" Ortiz, LMT"'), 'the therapist name is quoted with doubled quotes');
    t.ok(lines[1]!.includes('"Harbor Medical Massage, LLC"'), 'the practice name is quoted');
  });

  t.test('a claim with no service lines is the header row alone', async (t) => {
    const sent = await sentReferral();
    const response = await readBilling(sent.id, office.physician.token, 'text/csv');
    t.equal(response.statusCode, 200);
    t.same(parse(response.body), [csvColumns.map(([name]) => name)]);
  });

  t.test('a value that would start a spreadsheet formula is escaped, the JSON keeps it as entered', async (t) => {
    const formula = '=HYPERLINK("https://attacker.example","click")';
    const hostile = await acceptedReferral({ patient: { ...patient, familyName: formula } });
    await visit(hostile.id, isoDate(-1), [{ cpt: '97124', units: 1 }]);
    t.equal(requireStatus(await readBilling(hostile.id, therapist.token), 200, 'json').patient.familyName, formula);
    const [record] = parse((await readBilling(hostile.id, therapist.token, 'text/csv')).body, { columns: true }) as Json[];
    t.equal(record!.patientFamilyName, `'${formula}`);
  });

  t.test('answers 406 as problem+json to an Accept it cannot serve, auditing no read', async (t) => {
    const before = (await auditEvents(test, { action: 'billing.read', actorId: office.staff.id })).length;
    for (const accept of ['application/xml', 'text/html', 'application/pdf']) {
      assertProblem(t, await readBilling(referral.id, office.staff.token, accept), 406, [], `Accept: ${accept}`);
    }
    t.equal((await auditEvents(test, { action: 'billing.read', actorId: office.staff.id })).length, before, 'nothing was read');
  });
});

t.test('who may read it', async (t) => {
  const readers: [string, string][] = [
    ['the prescribing physician', office.physician.token],
    ['office staff', office.staff.token],
    ['the office admin', office.admin.token],
    ["the office's API client with referrals:read", officeEhr.token],
    ['the accepting therapist', therapist.token],
    ["the accepting practice's admin", practiceAdmin.token],
    ["the accepting practice's API client with referrals:read", practiceEhr.token],
  ];
  for (const [who, token] of readers) {
    t.test(`${who} reads it`, async (t) => {
      const response = await readBilling(referral.id, token);
      t.equal(response.statusCode, 200, response.body.slice(0, 200));
      t.same(response.json(), expectedClaim);
    });
  }

  t.test('each read is audited as billing.read of the patient, naming the referral', async (t) => {
    const before = await auditEvents(test, { action: 'billing.read', actorId: practiceAdmin.id });
    t.equal((await readBilling(referral.id, practiceAdmin.token, 'text/csv')).statusCode, 200);
    const after = await auditEvents(test, { action: 'billing.read', actorId: practiceAdmin.id });
    t.equal(after.length, before.length + 1, 'one event per read');
    t.match(after.at(-1), {
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
      actorOrganizationId: practice.id,
    });
  });

  t.test("answers an office API client without referrals:read with 403", async (t) => {
    assertProblem(t, await readBilling(referral.id, officePatientsEhr.token), 403);
  });

  const outsiders: [string, () => { id: string; token: string }][] = [
    ['a colleague therapist of the accepting practice', () => colleague],
    ['another office', () => otherOffice.physician],
    ["another office's admin", () => otherOffice.admin],
    ['a therapist of another practice', () => otherPractice.therapist],
    ["another practice's admin", () => otherPractice.admin],
  ];
  for (const [who, member] of outsiders) {
    t.test(`answers ${who} with 404, as a missing referral, and audits the refusal naming the patient`, async (t) => {
      const { id, token } = member();
      const refused = assertProblem(t, await readBilling(referral.id, token), 404);
      const missing = assertProblem(t, await readBilling('00000000-0000-4000-8000-000000000000', token), 404);
      t.equal(refused.title, missing.title, 'the same answer as for a referral that does not exist');
      t.notOk(JSON.stringify(refused).includes(patient.familyName), 'nothing of the patient');
      const denied = await auditEvents(test, { action: 'billing.read', outcome: 'denied', actorId: id, resourceId: referral.id });
      t.equal(denied.length, 1, 'the refusal is audited');
      t.match(denied[0], { httpStatus: 404, resourceType: 'referral', patientId: referral.patientId });
    });
  }

  t.test('answers a network admin with 404', async (t) => {
    assertProblem(t, await readBilling(referral.id, networkAdmin), 404);
  });

  t.test('answers the practice side with 404 before it accepts, though it sees the order', async (t) => {
    const sent = await sentReferral();
    for (const token of [therapist.token, practiceAdmin.token, practiceEhr.token]) {
      t.equal((await test.request({ method: 'GET', url: `/v1/referrals/${sent.id}`, token })).statusCode, 200, 'the order is visible');
      assertProblem(t, await readBilling(sent.id, token), 404);
      assertProblem(t, await readBilling(sent.id, token, 'text/csv'), 404);
    }
    const denied = await auditEvents(test, { action: 'billing.read', outcome: 'denied', actorId: therapist.id, resourceId: sent.id });
    t.equal(denied.length, 2, 'each attempt is audited');
    t.ok(denied.every((event) => event.httpStatus === 404 && event.patientId === sent.patientId), 'as a 404, naming the patient');
  });

  t.test('an outsider asking for CSV or XML still gets 404, not 406', async (t) => {
    assertProblem(t, await readBilling(referral.id, colleague.token, 'application/xml'), 404);
  });

  t.test('rejects a malformed id with 400 naming params.id', async (t) => {
    assertProblem(t, await readBilling('not-a-uuid', office.physician.token), 400, ['params.id']);
  });
});
