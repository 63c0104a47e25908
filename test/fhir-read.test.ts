// The FHIR R4 façade's reads and searches (SPEC §16): each resource as the office, the therapist
// before and after acceptance, and an outsider sees it; the same rules, 404s and audit events as
// /v1; searches and their paging; every resource and Bundle checked by two independent validators.
import t, { type Test } from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertStatus, requireStatus } from './fixtures/responses.js';
import { assertValidFhir } from './fixtures/fhir-validators.js';
import { fhirRequests } from './fixtures/fhir-requests.js';
import { jwksOf, signAssertion, signingKey } from './fixtures/smart.js';
import { auditEvents, buildTestApp, type Json, type TestResponse } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const practice = await createPractice(test, networkAdmin);
const other = await createPractice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
const officeClient = await addApiClient(test, office.admin.token, office.id, ['referrals:read', 'patients:read'], 'Office EHR');
const T = practice.therapist;

const patient = {
  givenName: 'Ottilie',
  familyName: 'Brandvold',
  birthDate: '1969-09-14',
  sex: 'female',
  phone: '+1 503 555 0199',
  identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-5521' }],
};
const insurance = { payer: 'Acme Health', memberId: 'AH-1234', groupNumber: 'GRP-9', cptCodes: ['97140'] };
const order = {
  diagnoses: [
    { code: 'M54.50', display: 'Low back pain, unspecified' },
    { code: 'G44.209', display: 'Tension-type headache' },
  ],
  reason: 'Chronic low back pain with paraspinal spasm',
  goals: ['Pain at or below 3/10'],
  precautions: ['No deep pressure over L4–L5'],
  techniques: ['swedish', 'myofascial_release'],
  bodyRegions: ['lower_back'],
  frequencyPerWeek: 2,
  durationWeeks: 6,
  sessionMinutes: 45,
  priority: 'urgent',
};

const { get: fhirGet, ok: fhirOk } = fhirRequests(test);


function outcomeOf(tt: Test, response: TestResponse, status: number, what: string): Json {
  assertStatus(tt, response, status, what);
  tt.match(response.headers['content-type'], /^application\/fhir\+json/, `${what}: an OperationOutcome in application/fhir+json`);
  const outcome = response.json();
  tt.equal(outcome.resourceType, 'OperationOutcome', `${what}: an OperationOutcome`);
  return outcome;
}

const referral = await test.create('/v1/referrals', office.physician.token, { ...order, patient, insurance, therapistId: T.id, send: true });
const task = requireStatus(await fhirGet(`/fhir/R4/Task?focus=ServiceRequest/${referral.id}`, office.physician.token), 200, 'the Task of the referral, by focus').entry[0].resource;

t.test('the CapabilityStatement is public, valid and lists what the routes serve', async (tt) => {
  const statement = await fhirOk(tt, '/fhir/R4/metadata', undefined, 'metadata');
  tt.equal(statement.fhirVersion, '4.0.1');
  const task = statement.rest[0].resource.find((resource: Json) => resource.type === 'Task');
  tt.same(task.searchInclude, ['Task:focus']);
  tt.ok(['owner', 'status', 'focus', 'patient', '_id', '_lastUpdated'].every((name) => task.searchParam.some((parameter: Json) => parameter.name === name)), 'Task search parameters listed');
  const serviceRequest = statement.rest[0].resource.find((resource: Json) => resource.type === 'ServiceRequest');
  tt.same(serviceRequest.searchRevInclude, ['Task:focus']);
  tt.match(statement.rest[0].security.extension[0].extension[0].valueUri, /\/v1\/auth\/token$/, 'the token endpoint is named');
});

t.test('every FHIR operation is in the CapabilityStatement, and every interaction it lists is served', async (tt) => {
  const statement = requireStatus(await fhirGet('/fhir/R4/metadata'), 200, 'metadata');
  const declared = new Set<string>(statement.rest[0].resource.flatMap((resource: Json) => resource.interaction.map((interaction: Json) => `${resource.type} ${interaction.code}`)));
  const interactionOf = (method: string, hasId: boolean) => ({ get: hasId ? 'read' : 'search-type', post: 'create', put: 'update' })[method];
  const served = new Set<string>();
  for (const [path, methods] of Object.entries(test.app.swagger().paths as Record<string, Json>)) {
    const [type, id] = path.replace(/^\/fhir\/R4\//, '').split('/');
    if (!path.startsWith('/fhir/R4/') || type === 'metadata' || type === '.well-known') continue;
    for (const method of Object.keys(methods)) served.add(`${type} ${interactionOf(method, id !== undefined)}`);
  }
  tt.same([...served].sort(), [...declared].sort(), 'the same set both ways');
});

t.test('the office reads the ServiceRequest in full', async (tt) => {
  const response = await fhirGet(`/fhir/R4/ServiceRequest/${referral.id}`, office.physician.token);
  tt.equal(response.headers.etag, 'W/"1"', 'the version as a weak ETag');
  const request = await fhirOk(tt, `/fhir/R4/ServiceRequest/${referral.id}`, office.physician.token, 'the office reads the ServiceRequest');
  tt.match(request, {
    id: referral.id,
    meta: { versionId: '1' },
    status: 'active',
    intent: 'order',
    priority: 'urgent',
    code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97140' }] },
    subject: { reference: `Patient/${referral.patientId}` },
    requester: { reference: `Practitioner/${office.physician.id}` },
    performer: [{ reference: `Practitioner/${T.id}` }],
    quantityQuantity: { value: 12, unit: 'visits' },
    occurrenceTiming: { repeat: { frequency: 2, period: 1, periodUnit: 'wk', duration: 45, durationUnit: 'min', boundsDuration: { value: 6, code: 'wk' } } },
  });
  tt.same(
    request.reasonCode.map((reason: Json) => [reason.coding[0].system, reason.coding[0].code, reason.text]),
    [
      ['http://hl7.org/fhir/sid/icd-10-cm', 'M54.50', order.reason],
      ['http://hl7.org/fhir/sid/icd-10-cm', 'G44.209', 'Tension-type headache'],
    ],
    'one reasonCode per diagnosis, primary first, the reason as its text',
  );
  tt.same(request.orderDetail.map((detail: Json) => detail.coding[0].code), order.techniques);
  tt.same(request.note.map((note: Json) => note.text), ['Goal: Pain at or below 3/10', 'Precaution: No deep pressure over L4–L5']);
  const coverage = request.contained.find((resource: Json) => resource.resourceType === 'Coverage');
  tt.match(coverage, { subscriberId: 'AH-1234', payor: [{ display: 'Acme Health' }], beneficiary: { reference: `Patient/${referral.patientId}` } });
  const audited = await auditEvents(test, { action: 'referral.read', resourceId: referral.id, actorId: office.physician.id });
  tt.ok(audited.length >= 1, 'the read is audited as a /v1 read is');
});

t.test('before accepting, the therapist sees the order but not who the patient is', async (tt) => {
  const response = await fhirGet(`/fhir/R4/ServiceRequest/${referral.id}`, T.token);
  for (const secret of [patient.givenName, patient.familyName, patient.birthDate, patient.phone, 'MRN-5521', 'AH-1234', 'GRP-9', referral.patientId]) {
    tt.notOk(response.body.includes(secret), `the limited ServiceRequest does not contain ${secret}`);
  }
  const request = await fhirOk(tt, `/fhir/R4/ServiceRequest/${referral.id}`, T.token, 'the limited ServiceRequest');
  tt.equal(request.subject.reference, '#patient', 'the subject is a contained, unidentified patient');
  tt.match(request.contained.find((resource: Json) => resource.resourceType === 'Patient'), { gender: 'female' });
  const taskSeen = await fhirOk(tt, `/fhir/R4/Task/${task.id}`, T.token, 'the Task as the therapist');
  tt.match(taskSeen, { status: 'requested', businessStatus: { coding: [{ code: '2.0' }] }, focus: { reference: `ServiceRequest/${referral.id}` }, owner: { reference: `Practitioner/${T.id}` } });
  tt.notOk('for' in taskSeen, 'the Task names no patient before acceptance');
  tt.match(request.code, { text: /shown once your side accepts/ }, 'the CPT code ordered is with the insurance, so it is said in words');
  tt.notOk(request.code.coding, 'rather than a code that may not be the one ordered');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Patient/${referral.patientId}`, T.token), 404, 'the therapist cannot read the Patient before accepting');
});

t.test('an outsider gets the /v1 404 as an OperationOutcome, and the attempt is audited', async (tt) => {
  for (const [url, what] of [
    [`/fhir/R4/ServiceRequest/${referral.id}`, 'ServiceRequest'],
    [`/fhir/R4/Task/${task.id}`, 'Task'],
    [`/fhir/R4/Patient/${referral.patientId}`, 'Patient'],
  ] as const) {
    const outcome = outcomeOf(tt, await fhirGet(url, other.therapist.token), 404, `another practice's therapist reads the ${what}`);
    tt.equal(outcome.issue[0].code, 'not-found');
    await assertValidFhir(tt, outcome, `the ${what} 404`);
    outcomeOf(tt, await fhirGet(url, otherOffice.physician.token), 404, `another office's physician reads the ${what}`);
  }
  const denied = await auditEvents(test, { action: 'referral.read', outcome: 'denied', resourceId: referral.id, actorId: other.therapist.id });
  tt.ok(denied.length >= 1, 'the refused ServiceRequest read is in the audit log, against the referral');
  const searched = await fhirOk(tt, `/fhir/R4/Task?focus=ServiceRequest/${referral.id}`, other.therapist.token, 'an outsider searches by focus');
  tt.equal(searched.entry.length, 0, 'and finds nothing');
});

t.test('unauthenticated, wrong formats and bad parameters are OperationOutcomes', async (tt) => {
  const unauthenticated = await fhirGet(`/fhir/R4/Task/${task.id}`, undefined);
  outcomeOf(tt, unauthenticated, 401, 'no token');
  tt.match(unauthenticated.headers['www-authenticate'], /^Bearer/);
  outcomeOf(tt, await fhirGet(`/fhir/R4/Task/${task.id}`, T.token, { accept: 'application/fhir+xml' }), 406, 'XML asked for');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Task/${task.id}?_format=xml`, T.token), 406, '_format=xml');
  tt.equal((await fhirGet(`/fhir/R4/Task/${task.id}?_format=json`, T.token)).statusCode, 200, '_format=json');
  const badStatus = outcomeOf(tt, await fhirGet('/fhir/R4/Task?status=bogus', T.token), 400, 'an unknown Task status');
  tt.match(badStatus.issue[0].details.text, /query\.status: bogus is not one of/);
  outcomeOf(tt, await fhirGet('/fhir/R4/Task?status:not=requested', T.token), 400, 'an unsupported modifier');
  outcomeOf(tt, await fhirGet('/fhir/R4/Task?_lastUpdated=le2026-01-01', T.token), 400, 'an unsupported date prefix');
  outcomeOf(tt, await fhirGet('/fhir/R4/Task?owner=Patient/' + referral.patientId, T.token), 400, 'an owner of the wrong type');
  outcomeOf(tt, await fhirGet('/fhir/R4/Task?_count=1000', T.token), 400, '_count over 100');
  const several = outcomeOf(tt, await fhirGet(`/fhir/R4/Task?focus=ServiceRequest/${referral.id},ServiceRequest/${crypto.randomUUID()}`, T.token), 400, 'several foci');
  tt.match(several.issue[0].details.text, /query\.focus: takes one reference/, 'refused rather than narrowed to the first');
  outcomeOf(tt, await fhirGet('/fhir/R4/Task?_cursor=garbage', T.token), 400, 'a cursor the server did not issue');
  const lenient = await fhirOk(tt, '/fhir/R4/Task?unknown-parameter=1&status=requested', T.token, 'an unknown parameter is ignored');
  tt.notMatch(lenient.link[0].url, /unknown-parameter/, 'and left out of the self link');
  const strict = await test.request({ method: 'GET', url: '/fhir/R4/Task?unknown-parameter=1', token: T.token, headers: { prefer: 'handling=strict' } });
  outcomeOf(tt, strict, 400, 'an unknown parameter with Prefer: handling=strict');
  const unknownType = outcomeOf(tt, await fhirGet('/fhir/R4/Medication/1', T.token), 404, 'a resource type not served');
  tt.equal(unknownType.issue[0].code, 'not-found');
});

t.test('accepting makes the patient known to the therapist, and moves the Task', async (tt) => {
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: T.token, payload: { acknowledgedPrecautions: true } }), 200, 'accept');
  const taskSeen = await fhirOk(tt, `/fhir/R4/Task/${task.id}`, T.token, 'the accepted Task');
  tt.match(taskSeen, { status: 'accepted', businessStatus: { coding: [{ code: '3.0' }] }, for: { reference: `Patient/${referral.patientId}` }, owner: { reference: `Practitioner/${T.id}` } });
  const person = await fhirOk(tt, `/fhir/R4/Patient/${referral.patientId}`, T.token, 'the Patient as the accepting therapist');
  tt.match(person, { name: [{ family: 'Brandvold', given: ['Ottilie'] }], birthDate: '1969-09-14', gender: 'female' });
  tt.notOk(JSON.stringify(person).includes('MRN-5521'), "the office's identifiers are the office's");
  const officeView = await fhirOk(tt, `/fhir/R4/Patient/${referral.patientId}`, officeClient.token, "the Patient as the office's EHR");
  tt.ok(officeView.identifier.some((identifier: Json) => identifier.value === 'MRN-5521'), 'the office sees its MRN');
  const audited = await auditEvents(test, { action: 'patient.read', resourceId: referral.patientId, actorId: T.id });
  tt.ok(audited.length >= 1, "the therapist's Patient read is audited");
});

t.test('searches: filters, includes and paging', async (tt) => {
  const second = await test.create('/v1/referrals', office.physician.token, { ...order, patient: { ...patient, givenName: 'Second' }, practiceId: practice.id, send: true });
  const declined = await test.create('/v1/referrals', office.physician.token, { ...order, patient: { ...patient, givenName: 'Third' }, therapistId: T.id, send: true });
  requireStatus(await test.request({ method: 'POST', url: `/v1/referrals/${declined.id}/decline`, token: T.token, payload: { reason: 'Fully booked until March' } }), 200, 'decline');

  const owned = await fhirOk(tt, `/fhir/R4/Task?owner=Practitioner/${T.id}`, T.token, 'Tasks owned by the therapist');
  const ownedFoci = owned.entry.map((entry: Json) => entry.resource.focus.reference);
  tt.ok(ownedFoci.includes(`ServiceRequest/${referral.id}`) && ownedFoci.includes(`ServiceRequest/${declined.id}`), 'the accepted and the declined one');
  tt.notOk(ownedFoci.includes(`ServiceRequest/${second.id}`), 'not the one sent to the practice');
  const ofPractice = await fhirOk(tt, `/fhir/R4/Task?owner=Organization/${practice.id}`, practice.admin.token, "Tasks owned by the practice");
  tt.same(ofPractice.entry.map((entry: Json) => entry.resource.focus.reference), [`ServiceRequest/${second.id}`]);

  const rejected = await fhirOk(tt, '/fhir/R4/Task?status=rejected', T.token, 'rejected Tasks');
  tt.same(rejected.entry.map((entry: Json) => entry.resource.focus.reference), [`ServiceRequest/${declined.id}`]);
  tt.match(rejected.entry[0].resource, { status: 'rejected', statusReason: { text: 'Fully booked until March' }, businessStatus: { coding: [{ code: '4.0' }] } });

  const included = await fhirOk(tt, `/fhir/R4/Task?focus=ServiceRequest/${referral.id}&_include=Task:focus`, T.token, 'a Task with its ServiceRequest');
  tt.same(included.entry.map((entry: Json) => [entry.resource.resourceType, entry.search.mode]), [['Task', 'match'], ['ServiceRequest', 'include']]);
  tt.match(included.entry[1].fullUrl, new RegExp(`^https?://.+/fhir/R4/ServiceRequest/${referral.id}$`), 'fullUrl is absolute');
  const revIncluded = await fhirOk(tt, `/fhir/R4/ServiceRequest?_id=${referral.id}&_revinclude=Task:focus`, office.staff.token, 'a ServiceRequest with its Task');
  tt.same(revIncluded.entry.map((entry: Json) => [entry.resource.resourceType, entry.search.mode]), [['ServiceRequest', 'match'], ['Task', 'include']]);

  const byPatient = await fhirOk(tt, `/fhir/R4/ServiceRequest?patient=Patient/${referral.patientId}`, office.physician.token, 'the office searches by patient');
  tt.same(byPatient.entry.map((entry: Json) => entry.resource.id), [referral.id]);
  const limitedByPatient = await fhirOk(tt, `/fhir/R4/ServiceRequest?patient=${second.patientId}`, T.token, 'a therapist who may not know the patient searches by them');
  tt.equal(limitedByPatient.entry.length, 0, 'matches nothing: the search would name the patient');
  const byRequester = await fhirOk(tt, `/fhir/R4/ServiceRequest?requester=Practitioner/${office.physician.id}&status=active`, office.physician.token, 'by requester and status');
  tt.equal(byRequester.entry.length, 3);
  const byPerformer = await fhirOk(tt, `/fhir/R4/ServiceRequest?performer=Organization/${practice.id}`, office.physician.token, 'by performing practice');
  tt.ok(byPerformer.entry.every((entry: Json) => [referral.id, second.id, declined.id].includes(entry.resource.id)) && byPerformer.entry.length === 3, "the practice's and its therapist's");

  const seen: string[] = [];
  let url: string | undefined = '/fhir/R4/Task?_count=1';
  for (let page = 0; url && page < 10; page += 1) {
    const bundle = await fhirOk(tt, url, office.physician.token, `page ${page + 1}`);
    seen.push(...bundle.entry.map((entry: Json) => entry.resource.id));
    const next = bundle.link.find((link: Json) => link.relation === 'next')?.url as string | undefined;
    url = next ? next.slice(next.indexOf('/fhir/R4/')) : undefined;
  }
  tt.equal(seen.length, 3, 'three pages of one');
  tt.equal(new Set(seen).size, 3, 'no Task twice across pages');

  const since = new Date(Date.now() - 60_000).toISOString();
  const recent = await fhirOk(tt, `/fhir/R4/Task?_lastUpdated=ge${since}`, office.physician.token, '_lastUpdated=ge');
  tt.equal(recent.entry.length, 3);
  const future = await fhirOk(tt, `/fhir/R4/Task?_lastUpdated=gt${new Date(Date.now() + 60_000).toISOString()}`, office.physician.token, '_lastUpdated=gt the future');
  tt.equal(future.entry.length, 0);

  const listed = await auditEvents(test, { action: 'referral.list', resourceId: second.id, actorId: practice.admin.id });
  tt.ok(listed.length >= 1, 'each referral a search shows is audited as /v1 lists are');
});

t.test('practitioners and organizations: counterparts and the directory', async (tt) => {
  const prescriber = await fhirOk(tt, `/fhir/R4/Practitioner/${office.physician.id}`, T.token, 'the therapist reads the prescriber');
  tt.ok(prescriber.identifier?.[0]?.system === 'http://hl7.org/fhir/sid/us-npi', 'with the NPI');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Practitioner/${office.physician.id}`, other.therapist.token), 404, 'a physician who shares no referral with the caller');
  const therapist = await fhirOk(tt, `/fhir/R4/Practitioner/${T.id}`, other.therapist.token, 'a therapist is in the directory');
  tt.match(therapist.qualification?.[0], { period: { end: /^\d{4}-/ } }, 'with the license');
  tt.notOk(therapist.qualification?.[0]?.identifier, "but not its number, which is the therapist's organization's to see");
  const own = await fhirOk(tt, `/fhir/R4/Practitioner/${T.id}`, practice.admin.token, 'the therapist, as their practice admin reads them');
  tt.ok(own.qualification?.[0]?.identifier?.[0]?.value, 'with the license number');
  await fhirOk(tt, `/fhir/R4/PractitionerRole/${T.id}`, office.physician.token, 'the PractitionerRole');
  const organization = await fhirOk(tt, `/fhir/R4/Organization/${office.id}`, T.token, 'the therapist reads the referring office');
  tt.equal(organization.type[0].coding[0].code, 'prov');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Organization/${office.id}`, other.therapist.token), 404, 'an office that shares no referral with the caller');
  await fhirOk(tt, `/fhir/R4/Organization/${practice.id}`, otherOffice.physician.token, 'practices are in the directory');
});

t.test('an EHR signed in with SMART Backend Services reaches what its scopes name, no more', async (tt) => {
  const configuration = requireStatus(await fhirGet('/fhir/R4/.well-known/smart-configuration'), 200, 'smart-configuration');
  tt.match(configuration, { token_endpoint: /\/v1\/auth\/token$/, token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'], grant_types_supported: ['client_credentials'] });
  const key = await signingKey('ES384');
  const client = await test.create(`/v1/organizations/${office.id}/api-clients`, office.admin.token, {
    name: 'SMART EHR',
    scopes: ['referrals:read', 'patients:read'],
    authMethod: 'private_key_jwt',
    jwks: jwksOf(key),
  });
  const signIn = async (scope: string) => {
    const assertion = await signAssertion(key, { clientId: client.clientId, audience: configuration.token_endpoint });
    const response = await test.request({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, scope },
    });
    return requireStatus(response, 200, `sign in with ${scope}`).access_token as string;
  };
  const taskReader = await signIn('system/Task.rs');
  await fhirOk(tt, `/fhir/R4/Task/${task.id}`, taskReader, 'system/Task.rs reads the Task');
  await fhirOk(tt, '/fhir/R4/Task?status=accepted', taskReader, 'and searches Tasks');
  outcomeOf(tt, await fhirGet(`/fhir/R4/ServiceRequest/${referral.id}`, taskReader), 403, 'but not the ServiceRequest');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Task?_include=Task:focus`, taskReader), 403, 'nor through _include');
  outcomeOf(tt, await fhirGet(`/fhir/R4/Patient/${referral.patientId}`, taskReader), 403, 'nor the Patient');
  const head = await test.request({ method: 'HEAD', url: `/fhir/R4/ServiceRequest/${referral.id}`, token: taskReader });
  tt.equal(head.statusCode, 403, 'nor by HEAD');
  const denied = await auditEvents(test, { action: 'referral.read', outcome: 'denied', resourceId: referral.id, actorId: client.id });
  tt.ok(denied.length >= 1, 'the refusal is audited');
  const v1 = await test.request({ method: 'GET', url: `/v1/referrals/${referral.id}`, token: taskReader });
  tt.equal(v1.statusCode, 403, 'a token with SMART scopes is for /fhir/R4 only: /v1 cannot narrow by resource type');
  const everything = await signIn('system/*.rs');
  const bundle = await fhirOk(tt, `/fhir/R4/Task?focus=ServiceRequest/${referral.id}&_include=Task:focus`, everything, 'system/*.rs with _include');
  tt.equal(bundle.entry.length, 2);
  await fhirOk(tt, `/fhir/R4/Patient/${referral.patientId}`, everything, 'and the Patient, with patients:read');
});
