// Logs (SPEC §10): pino JSON carrying the request id, never secrets, tokens or patient data.
import t from 'tap';
import { captureLog } from './fixtures/captured-log.js';
import { adminPassword, buildTestApp, createOffice, defaultPassword, type Json } from './helper.js';

const canary = {
  givenName: 'Zebulon-CANARY-GIVEN',
  familyName: 'CANARY-FAMILY',
  mrn: 'CANARY-MRN',
  phone: '+1 555 0199 777',
  email: 'canary.patient@mail.example',
  birthDate: '1931-02-03',
};

const log = captureLog();
const { lines } = log;
const logOutput = () => lines.join('\n');
const logEntries = log.entries;

const test = await buildTestApp(t, { logger: log.logger });

/** Everything that must never reach a log line, filled in as the requests below reveal it. */
const secrets = new Map<string, string>([
  ['admin password', adminPassword],
  ['user password', defaultPassword],
  ['given name', canary.givenName],
  ['family name', canary.familyName],
  ['MRN', canary.mrn],
  ['phone', canary.phone],
  ['patient email', canary.email],
  ['birth date', canary.birthDate],
]);

async function tokenRequest(payload: Json) {
  const response = await test.request({ method: 'POST', url: '/v1/auth/token', payload });
  if (response.statusCode !== 200) throw new Error(`token request failed: ${response.statusCode} ${response.body}`);
  return response.json();
}

t.test('a tour of sign-ins, patient reads and secrets leaves nothing sensitive in the logs', async (t) => {
  const adminTokens = await tokenRequest({ grant_type: 'password', username: 'root@network.example', password: adminPassword });
  secrets.set('admin access token', adminTokens.access_token);
  secrets.set('admin refresh token', adminTokens.refresh_token);

  const office = await createOffice(test, adminTokens.access_token);
  secrets.set('physician access token', office.physician.token);

  const patient = await test.create('/v1/patients', office.physician.token, {
    givenName: canary.givenName,
    familyName: canary.familyName,
    birthDate: canary.birthDate,
    sex: 'other',
    phone: canary.phone,
    email: canary.email,
    identifiers: [{ system: 'urn:x', value: canary.mrn }],
  });
  const found = await test.request({
    method: 'GET',
    url: `/v1/patients?identifier=${encodeURIComponent(`urn:x|${canary.mrn}`)}`,
    token: office.physician.token,
  });
  t.equal(found.statusCode, 200);
  t.equal(found.json().data.length, 1, 'the patient is found by MRN');
  const read = await test.request({ method: 'GET', url: `/v1/patients/${patient.id}`, token: office.physician.token });
  t.equal(read.statusCode, 200);

  const refused = await test.request({
    method: 'POST',
    url: '/v1/patients',
    token: office.physician.token,
    payload: { givenName: canary.givenName, familyName: canary.familyName, birthDate: '2999-01-01', sex: 'other' },
  });
  t.equal(refused.statusCode, 400, 'a refused patient (birth date in the future)');

  const me = await test.request({ method: 'GET', url: '/v1/me', token: adminTokens.access_token });
  t.equal(me.statusCode, 200);

  const client = await test.create(`/v1/organizations/${office.id}/api-clients`, office.admin.token, {
    name: 'Canary EHR',
    scopes: ['patients:read'],
  });
  secrets.set('client secret', client.clientSecret);
  const clientTokens = await tokenRequest({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret });
  secrets.set('client access token', clientTokens.access_token);
  const basic = await test.request({
    method: 'POST',
    url: '/v1/auth/token',
    headers: { authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}` },
    payload: { grant_type: 'client_credentials' },
  });
  t.equal(basic.statusCode, 200, 'client_secret_basic works too');

  const rotated = await tokenRequest({ grant_type: 'refresh_token', refresh_token: adminTokens.refresh_token });
  secrets.set('rotated access token', rotated.access_token);
  secrets.set('rotated refresh token', rotated.refresh_token);
  const reused = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'refresh_token', refresh_token: adminTokens.refresh_token } });
  t.equal(reused.statusCode, 400, 'a reused refresh token is refused');
  const wrong = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'password', username: 'root@network.example', password: 'wrong-password-CANARY' } });
  t.equal(wrong.statusCode, 400, 'a wrong password is refused');
  secrets.set('wrong password', 'wrong-password-CANARY');

  t.ok(lines.length > 10, `${lines.length} log lines captured`);
  const output = logOutput();
  for (const [label, value] of secrets) t.notOk(output.includes(value), `the logs do not contain the ${label}`);
  t.notMatch(output, /CANARY/, 'no canary string at all');
  t.notMatch(output, /Bearer /, 'no authorization header');
});

t.test('every log line is JSON; request lines carry the request id', async (t) => {
  const id = 'log-correlation-0001';
  const response = await test.request({ method: 'GET', url: '/health/live', headers: { 'x-request-id': id } });
  t.equal(response.headers['x-request-id'], id);
  const entries = logEntries();
  const ofRequest = entries.filter((entry) => entry.reqId === id);
  t.ok(ofRequest.some((entry) => entry.req?.url === '/health/live'), 'the incoming-request line has the reqId');
  t.ok(ofRequest.some((entry) => entry.res?.statusCode === 200), 'the completed-request line has the reqId');
  for (const entry of entries.filter((line) => line.req || line.res)) {
    t.type(entry.reqId, 'string', `a request line has a reqId: ${entry.msg}`);
  }
});

t.test('logged request URLs carry no query string', async (t) => {
  for (const entry of logEntries().filter((line) => line.req)) {
    t.notMatch(entry.req.url, /\?/, `${entry.req.method} ${entry.req.url}`);
  }
});

t.test('a failing query with patient data logs the error without the data', async (t) => {
  const admin = await test.loginAsAdmin();
  const office = await createOffice(test, admin);
  const before = lines.length;
  // PostgreSQL refuses a NUL character in text: the insert fails inside the database.
  const response = await test.request({
    method: 'POST',
    url: '/v1/patients',
    token: office.physician.token,
    payload: { givenName: `${canary.givenName}\u0000`, familyName: canary.familyName, birthDate: canary.birthDate, sex: 'other', phone: canary.phone },
  });
  t.ok(response.statusCode >= 400, `refused (${response.statusCode})`);
  t.notMatch(response.body, /CANARY/, 'the response does not echo the data');
  const added = lines.slice(before).join('\n');
  if (response.statusCode >= 500) t.match(added, /request failed/, 'the failure is logged');
  t.notMatch(added, /CANARY/, 'the log lines do not contain the patient data');
  t.notOk(added.includes(canary.phone), 'nor the phone number');
});

t.test('LOG_FORMAT: JSON for machines, pino-pretty for a person at a terminal, redacted either way', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { loadConfig } = await import('../src/config.js');
  const sample = (format: string | undefined, extra: Record<string, string> = {}) =>
    promisify(execFile)(process.execPath, ['--import=./tools/typescript-loader/register.mjs', 'test/fixtures/log-sample.ts'], {
      env: { PATH: process.env.PATH, ...(format && { LOG_FORMAT: format }), ...extra },
    }).then(({ stdout }) => stdout);

  const pretty = await sample('pretty');
  t.match(pretty, /INFO.*a line about a patient/, 'pretty: a line for people');
  t.throws(() => JSON.parse(pretty.split('\n')[0]!), 'pretty: not JSON');
  t.match(pretty, /\[redacted\]/, 'pretty: patient fields redacted');
  t.notOk(/Zelda|Quistgaard|1978-04-02/.test(pretty), 'pretty: no patient data');

  for (const [format, what] of [['json', 'json'], [undefined, 'auto with stdout a pipe']] as const) {
    const line = JSON.parse((await sample(format)).trim()) as Json;
    t.equal(line.msg, 'a line about a patient', `${what}: a JSON line`);
    t.same(line.patient, { givenName: '[redacted]', familyName: '[redacted]', birthDate: '[redacted]' }, `${what}: patient fields redacted`);
  }
  t.equal(loadConfig({}, { stdoutIsTerminal: true }).logFormat, 'pretty', 'auto: pretty on a terminal');
  t.equal(loadConfig({ NODE_ENV: 'production' }, { stdoutIsTerminal: true }).logFormat, 'json', 'auto: JSON in production, terminal or not');
  t.equal(loadConfig({ LOG_FORMAT: 'json' }, { stdoutIsTerminal: true }).logFormat, 'json', 'json when asked for');
  t.throws(() => loadConfig({ LOG_FORMAT: 'xml' }), /LOG_FORMAT/, 'another format is a configuration error naming it');
});
