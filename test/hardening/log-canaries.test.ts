// Hardening item 8, logs: patient data and credentials sent through every PHI-bearing field of the
// API, in requests that succeed and in requests that fail every way we can make them fail, must
// never reach the log, in any line, any field, raw or URL-, JSON- or base64-encoded. The app logs
// at trace level with the production logger options, so whatever any level would write is seen.
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { InjectOptions } from 'fastify';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { loggerOptions } from '../../src/logger.js';
import { documentForm, multipartBody, sampleFile } from '../fixtures/documents.js';
import { adminEmail, adminPassword, buildTestApp, createOffice, createPractice, defaultPassword, testJwtSecret, type Json, type TestApp } from '../helper.js';
import { recordFigure } from './figures.js';

type Injected = Awaited<ReturnType<TestApp['app']['inject']>>;

const lines: string[] = [];
const stream = new Writable({
  write(chunk, _encoding, callback) {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    callback();
  },
});

// A webhook receiver on loopback, so the worker signs and delivers events (with the secret) in this
// test too; it answers some deliveries with an error whose body holds a canary of its own.
let deliveries = 0;
const receiver = createServer((request: IncomingMessage, response) => {
  request.resume();
  request.on('end', () => {
    deliveries++;
    if (deliveries % 2 === 0) response.writeHead(500, { 'content-type': 'text/plain' }).end(`receiver failed for ${secretCanaries['receiver response body']}`);
    else response.writeHead(200).end('ok');
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const receiverPort = (receiver.address() as AddressInfo).port;

const test = await buildTestApp(t, {
  logger: pino(loggerOptions('trace'), stream),
  env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', WEBHOOK_POLL_MS: '50', WEBHOOK_RETRY_SCHEDULE: '0,1', LOGIN_MAX_FAILURES: '2' },
});
t.teardown(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

// ---------------------------------------------------------------------------------------------
// The canaries: unique per run, shaped to pass each field's validation, and unlike anything a log
// line holds by itself (ids are hex, times are digits).

const run = randomBytes(4).toString('hex');
const word = (label: string) => `Qz${label}${run}Xq`;
const digits = (count: number) => Array.from({ length: count }, () => randomInt(10)).join('');

/** Patient and clinical data, by field. */
const phi = {
  givenName: word('Given'),
  familyName: word('Family'),
  birthDate: `19${randomInt(20, 40)}-0${randomInt(1, 10)}-${randomInt(10, 29)}`,
  phone: `+1 555 ${digits(3)} ${digits(4)}`,
  email: `pt.${run}.q@mail.example`,
  mrn: word('Mrn'),
  identifierSystem: `urn:${word('system').toLowerCase()}:mrn`,
  inlineGivenName: word('InlineGiven'),
  inlineFamilyName: word('InlineFamily'),
  inlineBirthDate: `19${randomInt(40, 60)}-1${randomInt(0, 3)}-0${randomInt(1, 10)}`,
  inlineMrn: word('InlineMrn'),
  diagnosisDisplay: word('Diagnosis'),
  reason: word('Reason'),
  goal: word('Goal'),
  precaution: word('Precaution'),
  contraindications: word('Contra'),
  payer: word('Payer'),
  memberId: word('Member'),
  groupNumber: word('Group'),
  authorizationNumber: word('Auth'),
  declineReason: word('Decline'),
  rerouteReason: word('Reroute'),
  cancelReason: word('Cancel'),
  amendReason: word('Amend'),
  subjective: word('Subjective'),
  objective: word('Objective'),
  assessment: word('Assessment'),
  plan: word('Plan'),
  joint: word('Joint'),
  movement: word('Movement'),
  outcomeName: word('Outcome'),
  addendum: word('Addendum'),
  messageFromOffice: word('MessageOffice'),
  messageFromTherapist: word('MessageTherapist'),
  organizationAddress: `${randomInt(100, 999)} ${word('Street')} St`,
  userName: word('UserName'),
  userEmail: `staff.${run}.q@office.example`,
  // Sent only in requests that fail.
  refusedGivenName: word('RefusedGiven'),
  refusedFamilyName: word('RefusedFamily'),
  refusedPhone: word('RefusedPhone'),
  refusedEmail: `bad-${word('RefusedEmail')}`,
  refusedReason: word('RefusedReason'),
  refusedNote: word('RefusedNote'),
  refusedMessage: word('RefusedMessage'),
  forbiddenName: word('Forbidden'),
  oversizedName: word('Oversized'),
  unsupportedName: word('Unsupported'),
  malformedName: word('Malformed'),
  databaseErrorName: word('DatabaseError'),
  deepName: word('Deep'),
  duplicateEmail: `dup.${run}.q@office.example`,
  queryName: word('QueryName'),
  headerName: word('HeaderName'),
  missingTargetMessage: word('MissingMessage'),
  missingTargetAddendum: word('MissingAddendum'),
  staleAmendReason: word('StaleAmend'),
  illegalDeclineReason: word('IllegalDecline'),
  unsignedReason: word('Unsigned'),
  replayConflictName: word('ReplayConflict'),
  // Reports to the prescriber and renewals (SPEC §14.3, §14.4).
  evaluationSummary: word('Evaluation'),
  reportGoal: word('ReportGoal'),
  reportMeasure: word('ReportMeasure'),
  reportTarget: word('ReportTarget'),
  posture: word('Posture'),
  palpation: word('Palpation'),
  gait: word('Gait'),
  findingsNotes: word('FindingsNotes'),
  baselineJoint: word('BaselineJoint'),
  baselineMovement: word('BaselineMovement'),
  baselineOutcomeName: word('BaselineOutcome'),
  progressSummary: word('ProgressSummary'),
  signComment: word('SignComment'),
  justification: word('Justification'),
  denyReason: word('DenyReason'),
  dischargeSummary: word('DischargeSummary'),
  refusedReport: word('RefusedReport'),
  refusedComment: word('RefusedComment'),
  refusedJustification: word('RefusedJustification'),
  refusedDenyReason: word('RefusedDeny'),
  // Documents (SPEC §14.6): a title, a line inside the file, a retraction reason; urgent news (SPEC §14.10).
  documentTitle: word('DocumentTitle'),
  documentBytes: word('DocumentBytes'),
  retractReason: word('RetractReason'),
  refusedDocumentTitle: word('RefusedDocument'),
  refusedRetractReason: word('RefusedRetract'),
  urgentMessage: word('UrgentMessage'),
  adverseDescription: word('AdverseDescription'),
  adverseAction: word('AdverseAction'),
  resumeComment: word('ResumeComment'),
  refusedAdverse: word('RefusedAdverse'),
  refusedResume: word('RefusedResume'),
} as const;

/** A name typed into a URL path: a client's mistake, but the path is logged as the request URL. */
const pathCanary = { pathName: word('PathName') };

/** Credentials, tokens and other secrets, filled in as the API reveals them. */
const secretCanaries: Record<string, string> = {
  'JWT signing key': testJwtSecret,
  'bootstrap admin password': adminPassword,
  'user password': defaultPassword,
  'new user password': `pw-${word('Password')}`,
  'wrong password': `wrong-${word('Wrong')}`,
  'wrong client secret': `cs-${word('WrongSecret')}`,
  'forged bearer token': `eyJ${word('ForgedToken')}`,
  'unknown refresh token': `rt-${word('UnknownRefresh')}`,
  'webhook URL token': word('UrlToken'),
  'webhook URL password': word('UrlPassword'),
  'receiver response body': word('ReceiverBody'),
  'user agent': `agent-${word('Agent')}`,
};
const idempotencyKeys: string[] = [];
const idempotencyKey = () => {
  const key = `idem-${word(`Key${idempotencyKeys.length}`)}`;
  idempotencyKeys.push(key);
  return key;
};

// ---------------------------------------------------------------------------------------------

const statuses: Array<{ label: string; status: number }> = [];

/** Calls the app directly: the point is what it logs, whatever it answers. */
async function call(t: Test, label: string, options: InjectOptions & { token?: string }, expected: number | readonly number[]): Promise<Injected> {
  const { token, ...rest } = options;
  const response = await test.app.inject({ ...rest, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...rest.headers } });
  statuses.push({ label, status: response.statusCode });
  const wanted = typeof expected === 'number' ? [expected] : expected;
  t.ok(wanted.includes(response.statusCode), `${label}: ${wanted.join(' or ')} (got ${response.statusCode}${wanted.includes(response.statusCode) ? '' : ` ${response.body.slice(0, 300)}`})`);
  return response;
}

const isoDate = (offsetDays = 0) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
const missingId = '00000000-0000-4000-8000-000000000000';

function tokenGrant(t: Test, label: string, payload: Json, expected: number | readonly number[] = 200, form = false) {
  return call(
    t,
    label,
    form
      ? { method: 'POST', url: '/v1/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(payload).toString() }
      : { method: 'POST', url: '/v1/auth/token', payload },
    expected,
  );
}

t.test('seed canaries through every PHI-bearing field, in requests that succeed and that fail', async (t) => {
  // --- Sign-ins: JSON and form bodies, refresh rotation and reuse, revocation, failures, lockout.
  const adminGrant = (await tokenGrant(t, 'admin password grant (JSON)', { grant_type: 'password', username: adminEmail, password: adminPassword })).json();
  secretCanaries['admin access token'] = adminGrant.access_token;
  secretCanaries['admin refresh token'] = adminGrant.refresh_token;
  const admin = adminGrant.access_token as string;
  const formGrant = (await tokenGrant(t, 'admin password grant (form)', { grant_type: 'password', username: adminEmail, password: adminPassword }, 200, true)).json();
  secretCanaries['form refresh token'] = formGrant.refresh_token;
  const rotated = (await tokenGrant(t, 'refresh grant', { grant_type: 'refresh_token', refresh_token: adminGrant.refresh_token })).json();
  secretCanaries['rotated access token'] = rotated.access_token;
  secretCanaries['rotated refresh token'] = rotated.refresh_token;
  await tokenGrant(t, 'reused refresh token', { grant_type: 'refresh_token', refresh_token: adminGrant.refresh_token }, 400);
  await tokenGrant(t, 'unknown refresh token', { grant_type: 'refresh_token', refresh_token: secretCanaries['unknown refresh token']! }, 400);
  await call(t, 'revoke a refresh token', { method: 'POST', url: '/v1/auth/revoke', token: admin, payload: { token: formGrant.refresh_token } }, 200);
  await call(t, 'forged bearer token', { method: 'GET', url: '/v1/me', headers: { authorization: `Bearer ${secretCanaries['forged bearer token']}` } }, 401);
  await call(t, 'access token in the query string', { method: 'GET', url: `/v1/me?access_token=${encodeURIComponent(admin)}`, token: admin }, [200, 400]);

  const office = await createOffice(test, admin);
  const practice = await createPractice(test, admin);
  for (const [role, member] of Object.entries({ physician: office.physician, staff: office.staff, officeAdmin: office.admin, therapist: practice.therapist, practiceAdmin: practice.admin })) {
    secretCanaries[`${role} access token`] = member.token;
  }

  // --- People: a user whose name, email and password are canaries; failed sign-ins up to a lockout.
  await call(t, 'create a user', {
    method: 'POST',
    url: `/v1/organizations/${office.id}/users`,
    token: office.admin.token,
    headers: { 'idempotency-key': idempotencyKey() },
    payload: { role: 'office_staff', email: phi.userEmail, password: secretCanaries['new user password'], name: phi.userName },
  }, 201);
  const userGrant = (await tokenGrant(t, 'new user signs in (form)', { grant_type: 'password', username: phi.userEmail, password: secretCanaries['new user password']! }, 200, true)).json();
  secretCanaries['new user access token'] = userGrant.access_token;
  secretCanaries['new user refresh token'] = userGrant.refresh_token;
  for (let attempt = 0; attempt < 2; attempt++) {
    await tokenGrant(t, `wrong password ${attempt + 1}`, { grant_type: 'password', username: phi.userEmail, password: secretCanaries['wrong password']! }, 400);
  }
  await tokenGrant(t, 'right password on a locked account', { grant_type: 'password', username: phi.userEmail, password: secretCanaries['new user password']! }, [400, 429]);
  await tokenGrant(t, 'unknown user', { grant_type: 'password', username: phi.duplicateEmail, password: secretCanaries['wrong password']! }, 400);
  // Racing creates of one email: the losers meet the database's unique index, a constraint error.
  const racing = await Promise.all(
    Array.from({ length: 4 }, () =>
      test.app.inject({
        method: 'POST',
        url: `/v1/organizations/${office.id}/users`,
        headers: { authorization: `Bearer ${office.admin.token}` },
        payload: { role: 'office_staff', email: phi.duplicateEmail, password: secretCanaries['new user password'], name: phi.userName },
      }),
    ),
  );
  t.same(racing.map((response) => response.statusCode).sort(), [201, 409, 409, 409], 'one racing create wins, the others get 409');
  statuses.push(...racing.map((response) => ({ label: 'racing user create', status: response.statusCode })));
  await call(t, 'organization with a canary address', {
    method: 'POST',
    url: '/v1/organizations',
    token: admin,
    payload: { kind: 'therapy_practice', name: `Practice ${run}`, address: { line1: phi.organizationAddress, city: 'Portland', state: 'OR', postalCode: '97204' }, location: { lat: 45.5, lng: -122.6 } },
  }, 201);

  // --- API clients: secret shown once, client_credentials in the body and by HTTP Basic, failures.
  const client = (await call(t, 'create an API client', {
    method: 'POST',
    url: `/v1/organizations/${office.id}/api-clients`,
    token: office.admin.token,
    headers: { 'idempotency-key': idempotencyKey() },
    payload: { name: 'Canary EHR', scopes: ['patients:read', 'patients:write', 'referrals:read', 'referrals:write', 'referrals:sign'] },
  }, 201)).json();
  secretCanaries['client secret'] = client.clientSecret;
  const clientGrant = (await tokenGrant(t, 'client_credentials (JSON)', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret })).json();
  secretCanaries['client access token'] = clientGrant.access_token;
  const basic = Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64');
  secretCanaries['client Basic credentials'] = basic;
  await call(t, 'client_credentials (Basic)', { method: 'POST', url: '/v1/auth/token', headers: { authorization: `Basic ${basic}` }, payload: { grant_type: 'client_credentials' } }, 200);
  await tokenGrant(t, 'wrong client secret', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: secretCanaries['wrong client secret']! }, [400, 401]);
  const wrongBasic = Buffer.from(`${client.clientId}:${secretCanaries['wrong client secret']}`).toString('base64');
  await call(t, 'wrong client secret (Basic)', { method: 'POST', url: '/v1/auth/token', headers: { authorization: `Basic ${wrongBasic}` }, payload: { grant_type: 'client_credentials' } }, [400, 401]);

  // --- Webhooks: the secret (and its rotation), a URL with a token, a URL with credentials (refused).
  const endpoint = (await call(t, 'create a webhook endpoint', {
    method: 'POST',
    url: '/v1/webhook-endpoints',
    token: office.admin.token,
    headers: { 'idempotency-key': idempotencyKey() },
    payload: {
      url: `http://127.0.0.1:${receiverPort}/hooks?token=${secretCanaries['webhook URL token']}`,
      eventTypes: [
        'referral.sent', 'referral.accepted', 'referral.declined', 'referral.cancelled', 'referral.amended', 'progress_report.created', 'message.created',
        'report.submitted', 'report.signed', 'renewal.requested', 'renewal.decided',
        'document.added', 'appointment.scheduled', 'message.urgent', 'adverse_event.reported', 'referral.resumed',
      ],
      description: 'Canary EHR',
    },
  }, 201)).json();
  secretCanaries['webhook secret'] = endpoint.secret;
  const rotatedSecret = (await call(t, 'rotate the webhook secret', { method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, token: office.admin.token }, 200)).json();
  secretCanaries['rotated webhook secret'] = rotatedSecret.secret;
  await call(t, 'ping the endpoint', { method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/test`, token: office.admin.token }, 202);
  await call(t, 'webhook URL with credentials', {
    method: 'PATCH',
    url: `/v1/webhook-endpoints/${endpoint.id}`,
    token: office.admin.token,
    payload: { url: `https://ehr:${secretCanaries['webhook URL password']}@ehr.example/hooks` },
  }, 400);

  // --- Patients: every field, read back, searched by MRN, replayed, and refused every way.
  const patientBody = {
    givenName: phi.givenName,
    familyName: phi.familyName,
    birthDate: phi.birthDate,
    sex: 'female',
    phone: phi.phone,
    email: phi.email,
    identifiers: [{ system: phi.identifierSystem, value: phi.mrn }],
  };
  const patientKey = idempotencyKey();
  const patient = (await call(t, 'create a patient', { method: 'POST', url: '/v1/patients', token: office.physician.token, headers: { 'idempotency-key': patientKey }, payload: patientBody }, 201)).json();
  t.match(patient, { givenName: phi.givenName, phone: phi.phone, identifiers: [{ value: phi.mrn }] }, 'the patient holds the canaries');
  await call(t, 'replay the patient create', { method: 'POST', url: '/v1/patients', token: office.physician.token, headers: { 'idempotency-key': patientKey }, payload: patientBody }, 201);
  await call(t, 'reuse the key for another patient', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, headers: { 'idempotency-key': patientKey }, payload: { ...patientBody, givenName: phi.replayConflictName },
  }, 422);
  await call(t, 'read the patient', { method: 'GET', url: `/v1/patients/${patient.id}`, token: office.physician.token }, 200);
  await call(t, 'find the patient by MRN', { method: 'GET', url: `/v1/patients?identifier=${encodeURIComponent(`${phi.identifierSystem}|${phi.mrn}`)}`, token: office.physician.token }, 200);
  await call(t, 'find the patient by MRN (API client)', { method: 'GET', url: `/v1/patients?identifier=${encodeURIComponent(`${phi.identifierSystem}|${phi.mrn}`)}`, token: clientGrant.access_token }, 200);
  await call(t, 'search by name (no such filter)', { method: 'GET', url: `/v1/patients?givenName=${phi.queryName}&familyName=${encodeURIComponent(phi.familyName)}`, token: office.physician.token }, 400);
  await call(t, 'search by name in a path', { method: 'GET', url: `/v1/patients/${encodeURIComponent(`${pathCanary.pathName} Gomez`)}`, token: office.physician.token }, [400, 404]);
  await call(t, 'canaries in headers', {
    method: 'GET',
    url: '/v1/patients?limit=1',
    token: office.physician.token,
    headers: { 'user-agent': secretCanaries['user agent']!, 'x-patient-name': phi.headerName },
  }, 200);
  await call(t, 'patient born in the future', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, givenName: phi.refusedGivenName, familyName: phi.refusedFamilyName, birthDate: '2999-01-01' },
  }, 400);
  await call(t, 'patient with a malformed phone and email', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, givenName: phi.refusedGivenName, phone: phi.refusedPhone, email: phi.refusedEmail },
  }, 400);
  await call(t, 'patient with an unknown field', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, [phi.refusedGivenName]: phi.refusedFamilyName },
  }, 400);
  await call(t, 'patient created by a therapist', {
    method: 'POST', url: '/v1/patients', token: practice.therapist.token, payload: { ...patientBody, givenName: phi.forbiddenName },
  }, [403, 404]);
  await call(t, 'patient in a body over the limit', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, givenName: phi.oversizedName, padding: 'x'.repeat(1024 * 1024) },
  }, 413);
  await call(t, 'patient as text/plain', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, headers: { 'content-type': 'text/plain' }, payload: `givenName=${phi.unsupportedName}`,
  }, 415);
  await call(t, 'patient in malformed JSON', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, headers: { 'content-type': 'application/json' }, payload: `{"givenName":"${phi.malformedName}","familyName":`,
  }, 400);
  // Year 0 is refused by the schema; were it not, the database would refuse it (logged as a warning).
  await call(t, 'patient with a date the database cannot hold', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, givenName: phi.databaseErrorName, birthDate: '0000-01-01' },
  }, 400);
  // A check the database makes and the API does not: the statement fails, with the canary among
  // its parameters, and takes the server-error log path.
  await test.app.database.rows(sql.raw(`alter table patients add constraint refuse_log_canary check (family_name <> 'Refused${phi.databaseErrorName}') not valid`));
  await call(t, 'patient the database refuses', {
    method: 'POST', url: '/v1/patients', token: office.physician.token, payload: { ...patientBody, givenName: phi.databaseErrorName, familyName: `Refused${phi.databaseErrorName}` },
  }, 500);
  await test.app.database.rows(sql.raw('alter table patients drop constraint refuse_log_canary'));
  // A body nested past any stack, with an Idempotency-Key: it reaches code that walks it.
  await call(t, 'deeply nested body with an Idempotency-Key', {
    method: 'POST',
    url: `/v1/referrals/${missingId}/send`,
    token: office.physician.token,
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey() },
    payload: `${'{"a":'.repeat(10_000)}"${phi.deepName}"${'}'.repeat(10_000)}`,
  }, [400, 404, 500]);

  // --- Referrals: every clinical text field, the inline patient, insurance; moves with reasons.
  const referralBody = (overrides: Json = {}): Json => ({
    patient: {
      givenName: phi.inlineGivenName,
      familyName: phi.inlineFamilyName,
      birthDate: phi.inlineBirthDate,
      sex: 'male',
      identifiers: [{ system: phi.identifierSystem, value: phi.inlineMrn }],
    },
    diagnoses: [{ code: 'M54.50', display: phi.diagnosisDisplay }],
    reason: phi.reason,
    goals: [phi.goal],
    precautions: [phi.precaution],
    contraindications: phi.contraindications,
    techniques: ['trigger_point'],
    bodyRegions: ['lower_back'],
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    insurance: { payer: phi.payer, memberId: phi.memberId, groupNumber: phi.groupNumber, authorizationNumber: phi.authorizationNumber, cptCodes: ['97124'] },
    therapistId: practice.therapist.id,
    send: true,
    ...overrides,
  });
  const referral = (await call(t, 'create a referral', { method: 'POST', url: '/v1/referrals', token: office.physician.token, headers: { 'idempotency-key': idempotencyKey() }, payload: referralBody() }, 201)).json();
  t.match(referral, { reason: phi.reason, patient: { givenName: phi.inlineGivenName } }, 'the referral holds the canaries');
  await call(t, 'referral by an API client', {
    method: 'POST', url: '/v1/referrals', token: clientGrant.access_token, payload: referralBody({ patient: undefined, patientId: patient.id, prescriberId: office.physician.id }),
  }, 201);
  await call(t, 'referral with a malformed diagnosis code', {
    method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ diagnoses: [{ code: phi.refusedReason, display: phi.refusedReason }], reason: phi.refusedReason }),
  }, 400);
  await call(t, 'referral for a patient of another office', {
    method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ patient: undefined, patientId: missingId, reason: phi.refusedReason }),
  }, 400);
  await call(t, 'list referrals by a bogus status', { method: 'GET', url: `/v1/referrals?status=${phi.queryName}`, token: office.physician.token }, 400);
  await call(t, 'list referrals', { method: 'GET', url: '/v1/referrals?limit=50', token: practice.therapist.token }, 200);
  await call(t, 'accept', { method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token, payload: { acknowledgedPrecautions: true } }, 200);
  await call(t, 'decline an accepted referral', {
    method: 'POST', url: `/v1/referrals/${referral.id}/decline`, token: practice.therapist.token, payload: { reason: phi.illegalDeclineReason },
  }, 409);
  await call(t, 'amend on a stale version', {
    method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, headers: { 'if-match': '"1"' }, payload: { visitsAuthorized: 20, reason: phi.staleAmendReason },
  }, 412);
  await call(t, 'amend', { method: 'PATCH', url: `/v1/referrals/${referral.id}`, token: office.physician.token, payload: { visitsAuthorized: 20, reason: phi.amendReason } }, 200);
  await call(t, 'history', { method: 'GET', url: `/v1/referrals/${referral.id}/history`, token: office.physician.token }, 200);

  const note = {
    visitDate: isoDate(),
    subjective: phi.subjective,
    objective: phi.objective,
    assessment: phi.assessment,
    plan: phi.plan,
    painBefore: 7,
    painAfter: 4,
    rangeOfMotion: [{ joint: phi.joint, movement: phi.movement, degrees: 45 }],
    outcomeMeasures: [{ instrument: 'other', name: phi.outcomeName, score: 38 }],
    techniquesApplied: ['trigger_point'],
    minutes: 60,
    billing: [{ cpt: '97140', units: 2 }],
  };
  const report = (await call(t, 'visit note', {
    method: 'POST', url: `/v1/referrals/${referral.id}/progress-reports`, token: practice.therapist.token, headers: { 'idempotency-key': idempotencyKey() }, payload: note,
  }, 201)).json();
  await call(t, 'visit note dated in the future', {
    method: 'POST', url: `/v1/referrals/${referral.id}/progress-reports`, token: practice.therapist.token, payload: { ...note, visitDate: isoDate(30), subjective: phi.refusedNote },
  }, 400);
  await call(t, 'visit note by the physician', {
    method: 'POST', url: `/v1/referrals/${referral.id}/progress-reports`, token: office.physician.token, payload: { ...note, subjective: phi.refusedNote },
  }, 404);
  await call(t, 'addendum', {
    method: 'POST', url: `/v1/referrals/${referral.id}/progress-reports/${report.id}/addenda`, token: practice.therapist.token, payload: { text: phi.addendum },
  }, 201);
  await call(t, 'addendum to a missing note', {
    method: 'POST', url: `/v1/referrals/${referral.id}/progress-reports/${missingId}/addenda`, token: practice.therapist.token, payload: { text: phi.missingTargetAddendum },
  }, 404);
  await call(t, 'read the visit notes', { method: 'GET', url: `/v1/referrals/${referral.id}/progress-reports`, token: office.physician.token }, 200);

  await call(t, 'message from the office', {
    method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: office.physician.token, headers: { 'idempotency-key': idempotencyKey() }, payload: { body: phi.messageFromOffice },
  }, 201);
  await call(t, 'message from the therapist', { method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: practice.therapist.token, payload: { body: phi.messageFromTherapist } }, 201);
  await call(t, 'message too long', {
    method: 'POST', url: `/v1/referrals/${referral.id}/messages`, token: office.physician.token, payload: { body: `${phi.refusedMessage} ${'x'.repeat(5000)}` },
  }, 400);
  await call(t, 'message to a missing referral', {
    method: 'POST', url: `/v1/referrals/${missingId}/messages`, token: office.physician.token, payload: { body: phi.missingTargetMessage },
  }, 404);
  await call(t, 'read the thread', { method: 'GET', url: `/v1/referrals/${referral.id}/messages`, token: practice.therapist.token }, 200);
  await call(t, 'mark the thread read', { method: 'POST', url: `/v1/referrals/${referral.id}/messages/read`, token: practice.therapist.token }, 200);

  // --- Reports to the prescriber (SPEC §14.3): every text of an evaluation, read as JSON and as a
  // PDF, signed with a comment; renewals (SPEC §14.4) with a justification and a denial; a discharge.
  // Each also refused: by the schema, by the kind's rules, by who sends it, and by the state.
  const evaluation = {
    kind: 'evaluation',
    summary: phi.evaluationSummary,
    goals: [{ description: phi.reportGoal, status: 'new', measure: phi.reportMeasure, target: phi.reportTarget }],
    recommendation: 'continue',
    findings: { posture: phi.posture, palpation: phi.palpation, gait: phi.gait, notes: phi.findingsNotes },
    baseline: { pain: 8, rangeOfMotion: [{ joint: phi.baselineJoint, movement: phi.baselineMovement, degrees: 40 }], outcomeMeasures: [{ instrument: 'other', name: phi.baselineOutcomeName, score: 44 }] },
    plannedFrequencyPerWeek: 2,
    plannedDurationWeeks: 6,
    techniques: ['trigger_point'],
  };
  const reportsUrl = `/v1/referrals/${referral.id}/reports`;
  const evaluated = (await call(t, 'evaluation', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token, headers: { 'idempotency-key': idempotencyKey() }, payload: evaluation,
  }, 201)).json();
  t.match(evaluated, { summary: phi.evaluationSummary, findings: { gait: phi.gait } }, 'the evaluation holds the canaries');
  await call(t, 'evaluation without its plan of care', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token, payload: { ...evaluation, summary: phi.refusedReport, plannedDurationWeeks: undefined },
  }, 400);
  await call(t, 'evaluation with a summary too long', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token, payload: { ...evaluation, summary: `${phi.refusedReport} ${'x'.repeat(10_000)}` },
  }, 400);
  await call(t, 'report by the physician', { method: 'POST', url: reportsUrl, token: office.physician.token, payload: { ...evaluation, summary: phi.refusedReport } }, 404);
  await call(t, 'report on a missing referral', { method: 'POST', url: `/v1/referrals/${missingId}/reports`, token: practice.therapist.token, payload: { ...evaluation, summary: phi.refusedReport } }, 404);
  const progress = (await call(t, 'progress report', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token, payload: { kind: 'progress', summary: phi.progressSummary, goals: [{ description: phi.reportGoal, status: 'progressing' }], recommendation: 'continue' },
  }, 201)).json();
  await call(t, 'read the reports', { method: 'GET', url: reportsUrl, token: office.physician.token }, 200);
  await call(t, 'read the evaluation', { method: 'GET', url: `${reportsUrl}/${evaluated.id}`, token: clientGrant.access_token }, 200);
  await call(t, 'read the evaluation as a PDF', { method: 'GET', url: `${reportsUrl}/${evaluated.id}`, token: office.physician.token, headers: { accept: 'application/pdf' } }, 200);
  await call(t, 'read the evaluation in a format it is not served in', { method: 'GET', url: `${reportsUrl}/${evaluated.id}`, token: office.physician.token, headers: { accept: 'text/csv' } }, 406);
  await call(t, 'sign the evaluation', {
    method: 'POST', url: `${reportsUrl}/${evaluated.id}/sign`, token: office.physician.token, headers: { 'idempotency-key': idempotencyKey() }, payload: { attestation: true, comment: phi.signComment },
  }, 200);
  await call(t, 'sign it again', { method: 'POST', url: `${reportsUrl}/${evaluated.id}/sign`, token: office.physician.token, payload: { attestation: true, comment: phi.refusedComment } }, 409);
  await call(t, 'sign by office staff', { method: 'POST', url: `${reportsUrl}/${progress.id}/sign`, token: office.staff.token, payload: { attestation: true, comment: phi.refusedComment } }, 403);
  await call(t, 'sign without attesting', { method: 'POST', url: `${reportsUrl}/${progress.id}/sign`, token: office.physician.token, payload: { attestation: false, comment: phi.refusedComment } }, 400);

  const renewalsUrl = `/v1/referrals/${referral.id}/renewal-requests`;
  const renewal = (await call(t, 'renewal request', {
    method: 'POST', url: renewalsUrl, token: practice.therapist.token, headers: { 'idempotency-key': idempotencyKey() },
    payload: { additionalVisits: 6, extendWeeks: 4, justification: phi.justification, reportId: progress.id },
  }, 201)).json();
  await call(t, 'renewal request while one is pending', {
    method: 'POST', url: renewalsUrl, token: practice.therapist.token, payload: { additionalVisits: 2, extendWeeks: 0, justification: phi.refusedJustification },
  }, 409);
  await call(t, 'renewal request naming a missing report', {
    method: 'POST', url: renewalsUrl, token: practice.therapist.token, payload: { additionalVisits: 2, extendWeeks: 0, justification: phi.refusedJustification, reportId: missingId },
  }, 400);
  await call(t, 'read the renewal requests', { method: 'GET', url: renewalsUrl, token: office.physician.token }, 200);
  await call(t, 'read the renewal request', { method: 'GET', url: `${renewalsUrl}/${renewal.id}`, token: practice.therapist.token }, 200);
  await call(t, 'approve', { method: 'POST', url: `${renewalsUrl}/${renewal.id}/approve`, token: office.physician.token, payload: { attestation: true, additionalVisits: 4 } }, 200);
  await call(t, 'deny a decided request', { method: 'POST', url: `${renewalsUrl}/${renewal.id}/deny`, token: office.physician.token, payload: { reason: phi.refusedDenyReason } }, 409);
  const secondRenewal = (await call(t, 'second renewal request', {
    method: 'POST', url: renewalsUrl, token: practice.therapist.token, payload: { additionalVisits: 10, extendWeeks: 8, justification: phi.justification },
  }, 201)).json();
  await call(t, 'deny by the therapist', { method: 'POST', url: `${renewalsUrl}/${secondRenewal.id}/deny`, token: practice.therapist.token, payload: { reason: phi.refusedDenyReason } }, 403);
  await call(t, 'deny', { method: 'POST', url: `${renewalsUrl}/${secondRenewal.id}/deny`, token: clientGrant.access_token, payload: { reason: phi.denyReason } }, 200);
  await call(t, 'discharge report', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token,
    payload: { kind: 'discharge', summary: phi.dischargeSummary, goals: [{ description: phi.reportGoal, status: 'met' }], recommendation: 'discharge', reason: 'goals_met' },
  }, 201);
  await call(t, 'report after discharge', {
    method: 'POST', url: reportsUrl, token: practice.therapist.token,
    payload: { kind: 'progress', summary: phi.refusedReport, goals: [{ description: phi.refusedReport, status: 'met' }], recommendation: 'continue' },
  }, 409);

  // --- Documents (SPEC §14.6): a title and a file that are canaries, uploaded under an Idempotency-Key,
  // replayed, read, downloaded and retracted with a reason; refused by type, by form, by size of a part,
  // by an Idempotency-Key reused for another file, and on a missing referral. Appointments (SPEC §14.5).
  const treated = (await call(t, 'a third referral', {
    method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ patient: undefined, patientId: patient.id }),
  }, 201)).json();
  await call(t, 'accept the third', { method: 'POST', url: `/v1/referrals/${treated.id}/accept`, token: practice.therapist.token, payload: { acknowledgedPrecautions: true } }, 200);
  const documentsUrl = `/v1/referrals/${treated.id}/documents`;
  const upload = (label: string, form: { payload: Buffer; contentType: string }, expected: number | readonly number[], headers: Record<string, string> = {}, url = documentsUrl) =>
    call(t, label, { method: 'POST', url, token: office.physician.token, headers: { 'content-type': form.contentType, ...headers }, payload: form.payload }, expected);
  const file = Buffer.concat([Buffer.from(`%PDF-1.7\n% ${phi.documentBytes}\n`, 'latin1'), sampleFile.pdf(512).subarray(9)]);
  const documentKey = idempotencyKey();
  const shared = (await upload('upload a document', documentForm(file, { title: phi.documentTitle, filename: `${phi.documentTitle}.pdf` }), 201, { 'idempotency-key': documentKey })).json();
  t.match(shared, { title: phi.documentTitle }, 'the document holds the canary');
  await upload('replay the upload', documentForm(file, { title: phi.documentTitle }), 201, { 'idempotency-key': documentKey });
  await upload('the same key for another title', documentForm(file, { title: phi.refusedDocumentTitle }), 422, { 'idempotency-key': documentKey });
  await upload('a GIF', documentForm(sampleFile.gif(), { title: phi.refusedDocumentTitle, filename: `${phi.refusedDocumentTitle}.gif` }), 415);
  await upload('a part the form does not take', multipartBody([{ name: 'category', value: 'imaging' }, { name: 'title', value: 'MRI' }, { name: 'notes', value: phi.refusedDocumentTitle }]), 400);
  await upload('a title too long', documentForm(file, { title: `${phi.refusedDocumentTitle} ${'x'.repeat(300)}` }), 400);
  const cut = documentForm(file, { title: phi.refusedDocumentTitle });
  await upload('a form cut short', { ...cut, payload: cut.payload.subarray(0, cut.payload.length - 40) }, 400);
  await upload('a document on a missing referral', documentForm(file, { title: phi.refusedDocumentTitle }), 404, {}, `/v1/referrals/${missingId}/documents`);
  await call(t, 'list documents', { method: 'GET', url: documentsUrl, token: practice.therapist.token }, 200);
  await call(t, 'read the document', { method: 'GET', url: `${documentsUrl}/${shared.id}`, token: clientGrant.access_token }, 200);
  await call(t, 'download the document', { method: 'GET', url: `${documentsUrl}/${shared.id}/content`, token: practice.therapist.token }, 200);
  await call(t, "retract the office's document (practice)", { method: 'DELETE', url: `${documentsUrl}/${shared.id}`, token: practice.therapist.token, payload: { reason: phi.refusedRetractReason } }, 403);
  await call(t, 'retract the document', { method: 'DELETE', url: `${documentsUrl}/${shared.id}`, token: office.staff.token, payload: { reason: phi.retractReason } }, 204);
  await call(t, 'retract it again', { method: 'DELETE', url: `${documentsUrl}/${shared.id}`, token: office.physician.token, payload: { reason: phi.refusedRetractReason } }, 404);
  const visitAt = new Date(Date.now() + 48 * 3_600_000).toISOString();
  const booked = (await call(t, 'book a visit', { method: 'POST', url: `/v1/referrals/${treated.id}/appointments`, token: practice.therapist.token, payload: { startsAt: visitAt, minutes: 60 } }, 201)).json();
  await call(t, 'cancel it', { method: 'PATCH', url: `/v1/referrals/${treated.id}/appointments/${booked.id}`, token: practice.admin.token, payload: { status: 'cancelled_by_patient' } }, 200);

  // --- Urgent news (SPEC §14.10): an urgent message acknowledged; adverse events, a severe one that
  // holds the referral, acknowledged; the prescriber resumes with a comment. Each also refused.
  const urgent = (await call(t, 'urgent message', {
    method: 'POST', url: `/v1/referrals/${treated.id}/messages`, token: practice.therapist.token, payload: { body: phi.urgentMessage, priority: 'urgent' },
  }, 201)).json();
  await call(t, 'the author acknowledges its own', { method: 'POST', url: `/v1/referrals/${treated.id}/messages/${urgent.id}/acknowledge`, token: practice.therapist.token }, 409);
  await call(t, 'acknowledge the urgent message', { method: 'POST', url: `/v1/referrals/${treated.id}/messages/${urgent.id}/acknowledge`, token: office.physician.token }, 200);
  const adverseUrl = `/v1/referrals/${treated.id}/adverse-events`;
  const adverse = { occurredOn: isoDate(), description: phi.adverseDescription, severity: 'severe', actionTaken: phi.adverseAction, treatmentPaused: true };
  const reported = (await call(t, 'report an adverse event', {
    method: 'POST', url: adverseUrl, token: practice.therapist.token, headers: { 'idempotency-key': idempotencyKey() }, payload: adverse,
  }, 201)).json();
  await call(t, 'an adverse event in the future', { method: 'POST', url: adverseUrl, token: practice.therapist.token, payload: { ...adverse, occurredOn: isoDate(3), description: phi.refusedAdverse } }, 400);
  await call(t, 'an adverse event by the office', { method: 'POST', url: adverseUrl, token: office.physician.token, payload: { ...adverse, description: phi.refusedAdverse, actionTaken: phi.refusedAdverse } }, 404);
  await call(t, 'a visit note while on hold', { method: 'POST', url: `/v1/referrals/${treated.id}/progress-reports`, token: practice.therapist.token, payload: note }, 409);
  await call(t, 'read the adverse events', { method: 'GET', url: adverseUrl, token: office.staff.token }, 200);
  await call(t, 'read the adverse event', { method: 'GET', url: `${adverseUrl}/${reported.id}`, token: practice.admin.token }, 200);
  await call(t, 'the reporting side acknowledges', { method: 'POST', url: `${adverseUrl}/${reported.id}/acknowledge`, token: practice.therapist.token }, 409);
  await call(t, 'acknowledge the adverse event', { method: 'POST', url: `${adverseUrl}/${reported.id}/acknowledge`, token: office.staff.token }, 200);
  await call(t, 'resume by office staff', { method: 'POST', url: `/v1/referrals/${treated.id}/resume`, token: office.staff.token, payload: { attestation: true, comment: phi.refusedResume } }, 403);
  await call(t, 'resume on a stale version', {
    method: 'POST', url: `/v1/referrals/${treated.id}/resume`, token: office.physician.token, headers: { 'if-match': '"1"' }, payload: { attestation: true, comment: phi.refusedResume },
  }, 412);
  await call(t, 'resume', { method: 'POST', url: `/v1/referrals/${treated.id}/resume`, token: office.physician.token, payload: { attestation: true, comment: phi.resumeComment } }, 200);
  await call(t, 'resume again', { method: 'POST', url: `/v1/referrals/${treated.id}/resume`, token: office.physician.token, payload: { attestation: true, comment: phi.refusedResume } }, 409);
  // The claim (SPEC §14.9) names the patient and the insurance; the events feed (SPEC §14.7) is read as a partner reads it.
  await call(t, 'the claim as JSON', { method: 'GET', url: `/v1/referrals/${treated.id}/billing`, token: office.physician.token }, 200);
  await call(t, 'the claim as CSV', { method: 'GET', url: `/v1/referrals/${treated.id}/billing`, token: practice.therapist.token, headers: { accept: 'text/csv' } }, 200);
  await call(t, 'the events feed', { method: 'GET', url: '/v1/events?limit=500', token: office.physician.token }, 200);

  // A second referral through decline, reroute and cancel, each with its reason.
  const second = (await call(t, 'create a draft', {
    method: 'POST', url: '/v1/referrals', token: office.physician.token, payload: referralBody({ send: false, therapistId: undefined, practiceId: practice.id }),
  }, 201)).json();
  await call(t, 'send', { method: 'POST', url: `/v1/referrals/${second.id}/send`, token: office.physician.token }, 200);
  await call(t, 'decline', { method: 'POST', url: `/v1/referrals/${second.id}/decline`, token: practice.therapist.token, payload: { reason: phi.declineReason } }, 200);
  await call(t, 'reroute', {
    method: 'POST', url: `/v1/referrals/${second.id}/reroute`, token: office.physician.token, payload: { therapistId: practice.therapist.id, reason: phi.rerouteReason },
  }, 200);
  await call(t, 'cancel', { method: 'POST', url: `/v1/referrals/${second.id}/cancel`, token: office.physician.token, payload: { reason: phi.cancelReason } }, 200);

  // Signed orders (SPEC §14.1): the staff's order sent unsigned is refused with nothing written; a
  // staff draft is signed and sent by the physician, under an Idempotency-Key, and signed once only.
  await call(t, 'referral sent unsigned by office staff', {
    method: 'POST', url: '/v1/referrals', token: office.staff.token, payload: referralBody({ prescriberId: office.physician.id, reason: phi.unsignedReason }),
  }, 409);
  const staffDraft = (await call(t, 'a draft by office staff', {
    method: 'POST', url: '/v1/referrals', token: office.staff.token, payload: referralBody({ patient: undefined, patientId: patient.id, prescriberId: office.physician.id, send: false }),
  }, 201)).json();
  t.equal(staffDraft.signature, null, "the staff's draft is unsigned");
  await call(t, 'send the unsigned draft', { method: 'POST', url: `/v1/referrals/${staffDraft.id}/send`, token: office.staff.token }, 409);
  const signed = (await call(t, 'sign and send', {
    method: 'POST', url: `/v1/referrals/${staffDraft.id}/sign`, token: office.physician.token, headers: { 'idempotency-key': idempotencyKey() }, payload: { attestation: true, send: true },
  }, 200)).json();
  t.match(signed, { status: 'sent', signature: { signedBy: office.physician.id, method: 'physician' }, reason: phi.reason }, 'the signed order holds the canaries');
  await call(t, 'sign again', { method: 'POST', url: `/v1/referrals/${staffDraft.id}/sign`, token: office.physician.token, payload: { attestation: true } }, 409);

  // --- The audit trail, filtered by the patient, and the events the worker delivers.
  await call(t, 'audit events of the patient', { method: 'GET', url: `/v1/audit-events?patientId=${patient.id}`, token: admin }, 200);
  await call(t, 'audit events by a bogus action', { method: 'GET', url: `/v1/audit-events?action=${phi.queryName}`, token: admin }, [200, 400]);
  await call(t, 'who saw the patient', { method: 'GET', url: `/v1/audit-events/viewers?patientId=${patient.id}`, token: admin }, 200);
  await call(t, 'export', { method: 'GET', url: `/v1/audit-events/export?patientId=${patient.id}`, token: admin }, 200);
  const deadline = Date.now() + 15_000;
  while (deliveries < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(deliveries >= 4, `the worker delivered ${deliveries} events, some answered with an error`);
  await call(t, 'list deliveries', { method: 'GET', url: `/v1/webhook-endpoints/${endpoint.id}/deliveries`, token: office.admin.token }, 200);

  const seen = new Set(statuses.map((entry) => entry.status));
  for (const status of [200, 201, 400, 401, 404, 409, 412, 413, 415, 422]) t.ok(seen.has(status), `a request answered ${status}`);
  t.ok([...seen].some((status) => status >= 500), `a request failed with a 5xx (${[...seen].filter((status) => status >= 500).join(', ')}), so the error log path ran`);
});

// ---------------------------------------------------------------------------------------------
// The search: every line as text, and every string (key or value) of every line as JSON decodes it.

/** The forms a value takes once encoded, long enough to be unmistakable. */
function encodedForms(value: string): string[] {
  const forms = new Set([value, encodeURIComponent(value), encodeURIComponent(value).replace(/%20/g, '+'), JSON.stringify(value).slice(1, -1), value.toLowerCase()]);
  // Base64 of the value at each of the three alignments it can have inside a longer encoded text.
  const bytes = Buffer.from(value);
  for (let shift = 0; shift < 3; shift++) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    const inner = encoded.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + bytes.length)) / 6));
    forms.add(inner);
    forms.add(inner.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  // A JWT's claims and signature are its secret parts (the header is the same in every token).
  if (/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(value)) for (const part of value.split('.').slice(1)) forms.add(part);
  if (value.startsWith('whsec_')) forms.add(value.slice('whsec_'.length));
  return [...forms].filter((form) => form.length >= 12);
}

function stringsOf(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) stringsOf(item, into);
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      into.push(key);
      stringsOf(child, into);
    }
  }
  return into;
}

interface Hit {
  label: string;
  line: number;
  msg: string;
}

function search(canaries: Map<string, string>, from = 0, to = lines.length): Hit[] {
  const forms = [...canaries].map(([label, value]) => ({ label, forms: encodedForms(value) }));
  const hits: Hit[] = [];
  for (let index = from; index < to; index++) {
    const text = lines[index]!;
    let decoded: string[] = [];
    let msg = '';
    try {
      const entry = JSON.parse(text) as Json;
      decoded = stringsOf(entry);
      msg = `${entry.msg ?? ''}${entry.req ? ` ${entry.req.method} ${entry.req.url}` : ''}`;
    } catch {
      msg = '(not JSON)';
    }
    for (const { label, forms: candidates } of forms) {
      if (candidates.some((form) => text.includes(form) || decoded.some((field) => field.includes(form)))) hits.push({ label, line: index, msg: msg.slice(0, 200) });
    }
  }
  return hits;
}

const flatPhi = new Map<string, string>(Object.entries(phi));

/**
 * Defects this file found in what src logs, reported rather than fixed here: the lines they write,
 * by their message, each checked apart and marked todo until src is fixed (and still counted in the
 * figure); a canary anywhere else fails the test.
 */
// None known: @fastify/multipart's "Providing options to busboy" line, which logged the request's
// raw headers (the bearer token among them) at trace level, is redacted since (src/logger.ts).
const knownLogDefects: Array<{ msg: string; todo: string }> = [];
/** The todo of the known defect that wrote log line `index`, if one did. */
function defectOfLine(index: number): string | undefined {
  let msg: unknown;
  try {
    msg = (JSON.parse(lines[index]!) as Json).msg;
  } catch {
    return undefined;
  }
  return knownLogDefects.find((defect) => defect.msg === msg)?.todo;
}

t.test('the detector finds a canary in each encoding it searches for', async (t) => {
  const before = lines.length;
  const control = new Map([
    ['plain', word('ControlPlain')],
    ['base64', word('ControlBase64')],
    ['url', `${word('ControlUrl')} name`],
    ['jwt', `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(`{"sub":"${word('ControlJwt')}"}`).toString('base64url')}.${word('ControlSig')}`],
  ]);
  test.app.log.info({ field: control.get('plain') }, 'detector control');
  test.app.log.info({ blob: Buffer.from(`xy${control.get('base64')}z`).toString('base64') }, 'detector control');
  test.app.log.info({ path: `/x/${encodeURIComponent(control.get('url')!)}` }, 'detector control');
  test.app.log.info({ signature: control.get('jwt')!.split('.')[2] }, 'detector control');
  const found = new Set(search(control, before).map((hit) => hit.label));
  t.same([...found].sort(), [...control.keys()].sort(), 'every control canary is found');
  lines.splice(before);
});

t.test('no canary or secret appears in the log', async (t) => {
  // Each request logs a line as it comes in and one as it is answered.
  t.ok(lines.length >= 2 * statuses.length, `${lines.length} log lines were captured for ${statuses.length} requests`);
  const entries = lines.map((line) => {
    try {
      return JSON.parse(line) as Json;
    } catch {
      return undefined;
    }
  });
  t.equal(entries.filter((entry) => entry === undefined).length, 0, 'every line is JSON');
  const requestLines = entries.filter((entry) => entry?.req?.url);
  t.ok(requestLines.length >= statuses.length, `${requestLines.length} incoming-request lines`);
  for (const url of ['/v1/auth/token', '/v1/patients', '/v1/referrals', `/v1/organizations`]) {
    t.ok(requestLines.some((entry) => entry!.req.url === url), `requests to ${url} were logged`);
  }
  t.ok(entries.some((entry) => entry?.res?.statusCode >= 400 && entry?.res?.statusCode < 500), 'refused requests were logged');
  t.ok(entries.some((entry) => entry?.level >= 50 && entry?.err), 'a server error was logged with its error');

  const secrets = new Map<string, string>(Object.entries(secretCanaries));
  idempotencyKeys.forEach((key, index) => secrets.set(`Idempotency-Key ${index + 1}`, key));
  const phiHits = search(flatPhi);
  const secretHits = search(secrets);
  const pathHits = search(new Map(Object.entries(pathCanary)));
  // Hits in the lines of a known defect are checked apart, marked todo; they still count in the figure.
  const unexplained = (hits: Hit[]) => hits.filter((hit) => !defectOfLine(hit.line));
  for (const hit of [...phiHits, ...secretHits]) {
    const todo = defectOfLine(hit.line);
    t.fail(`the ${hit.label} canary is in log line ${hit.line}: ${hit.msg}`, todo ? { todo } : {});
  }
  t.equal(unexplained(phiHits).length, 0, `0 of ${flatPhi.size} PHI canaries in the log`);
  t.equal(unexplained(secretHits).length, 0, `0 of ${secrets.size} tokens and secrets in the log`);
  const authorization = /Bearer |Basic [A-Za-z0-9+/=]{8}/;
  t.notMatch(lines.filter((_, index) => !defectOfLine(index)).join('\n'), authorization, 'no Authorization header value');
  for (const defect of knownLogDefects) {
    const defectLines = lines.filter((_, index) => defectOfLine(index) === defect.todo);
    t.notOk(defectLines.some((line) => authorization.test(line)), `no Authorization header value in the lines "${defect.msg}" (${defectLines.length})`, { todo: defect.todo });
  }
  t.equal(pathHits.length, 0, `a patient name typed into a URL path is not logged (${pathHits.map((hit) => hit.msg).join('; ')})`);

  const hits = phiHits.length + secretHits.length + pathHits.length;
  const figure = `${hits} hits for ${flatPhi.size + 1} PHI canaries and ${secrets.size} tokens/secrets in ${lines.length} log lines`;
  recordFigure({ item: 8, check: 'Log canaries', figure, pass: hits === 0 });
  t.comment(figure);
});
