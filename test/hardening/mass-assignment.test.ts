// Hardening item 4: fields the server owns (ids, status, version, organization, owner, acceptance,
// timestamps, role, secrets) are never taken from a request. Every POST and PATCH of the OpenAPI
// document gets a valid body plus such fields: at the top level (together, then alone wherever a
// 400 does not name one), in other casings, inside the body's nested objects, in a wrapper, in the
// query string and through __proto__. Either answer is fine (a 400 that names the field, or success
// with the field ignored), but in both cases the rows the request could touch are read back from
// the database, and the resource through its GET: no row created or changed by the attempt, and
// nothing the API shows, may hold a value we sent.
import { randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import t, { type Test } from 'tap';
import {
  apiClients,
  messageReadMarkers,
  messages,
  organizations,
  patients,
  progressReportAddenda,
  progressReports,
  referralEvents,
  referrals,
  refreshTokens,
  therapistProfiles,
  users,
  webhookDeliveries,
  webhookEndpoints,
  webhookEvents,
} from '../../src/db/schema.js';
import { buildTestApp, defaultPassword, nextNpi, type Json, type TestApp } from '../helper.js';
import { decodeJwt } from '../tokens.js';
import { recordFigure } from './figures.js';
import { skipFileUnlessPostgres } from './postgres-only.js';

skipFileUnlessPostgres();

type Response = Awaited<ReturnType<TestApp['request']>>;
type Rec = Record<string, unknown>;

// The worker stays off: nothing is delivered anywhere, and pending deliveries stay as written.
const test = await buildTestApp(t, { env: { ROLE: 'api', REFERRAL_EXPIRY_SWEEP_SECONDS: '0' } });
const db = test.app.db;

// ---------------------------------------------------------------------------------------------
// Values an attacker would plant: foreign ids that exist, and a time the server would never stamp.

const planted = '2001-02-03T04:05:06.000Z';
let sequence = 0;
const mark = (label: string) => `${label}-${++sequence}-${randomUUID().slice(0, 8)}`;
const isoDate = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

const adminToken = await test.loginAsAdmin();

// Only the members the cases use: every user and sign-in costs a slow password hash.
async function organization(kind: 'physician_office' | 'therapy_practice'): Promise<string> {
  const created = await test.create('/v1/organizations', adminToken, {
    kind,
    name: mark(kind),
    ...(kind === 'physician_office' ? { npi: nextNpi() } : {}),
    address: { line1: '1 Test St', city: 'Portland', state: 'OR', postalCode: '97201' },
    location: { lat: 45.5231, lng: -122.6765 },
  });
  return created.id;
}
const therapistProfile = { license: { number: 'MT-1', state: 'OR', expiresOn: '2028-12-31' }, techniques: ['trigger_point'], acceptingReferrals: true, serviceRadiusKm: 25 };
async function member(organizationId: string, role: string, signIn = true): Promise<{ id: string; email: string; token: string }> {
  const email = `${mark(role)}@mass.example`;
  const user = await test.create(`/v1/organizations/${organizationId}/users`, adminToken, {
    role,
    email,
    password: defaultPassword,
    name: `${role} member`,
    ...(role === 'physician' ? { npi: nextNpi() } : role === 'therapist' ? therapistProfile : {}),
  });
  return { id: user.id, email, token: signIn ? await test.login(email) : '' };
}
const officeId = await organization('physician_office');
const office = { id: officeId, physician: await member(officeId, 'physician'), admin: await member(officeId, 'office_admin') };
const otherOfficeId = await organization('physician_office');
const otherOffice = { id: otherOfficeId, physician: await member(otherOfficeId, 'physician') };
const practiceId = await organization('therapy_practice');
const practice = { id: practiceId, therapist: await member(practiceId, 'therapist'), admin: await member(practiceId, 'practice_admin') };
const otherPracticeId = await organization('therapy_practice');
const otherPractice = { id: otherPracticeId, therapist: await member(otherPracticeId, 'therapist', false) };
const colleague = await member(practiceId, 'therapist', false);

async function ok(response: Response, status: number, what: string): Promise<Json> {
  if (response.statusCode !== status) throw new Error(`${what}: ${response.statusCode} ${response.body}`);
  return response.statusCode === 204 ? {} : response.json();
}
const post = (url: string, token: string, payload?: Json, status = 200) =>
  test.request({ method: 'POST', url, token, ...(payload ? { payload } : {}) }).then((response) => ok(response, status, `POST ${url}`));
const getJson = async (url: string, token: string): Promise<Json | undefined> => {
  const response = await test.request({ method: 'GET', url, token });
  return response.statusCode === 200 ? response.json() : undefined;
};

function referralBody(marker: string, overrides: Json = {}): Json {
  return {
    patient: { givenName: marker, familyName: 'Mass-assignment', birthDate: '1978-04-02', sex: 'female', identifiers: [{ system: 'urn:test:mrn', value: marker }] },
    diagnoses: [{ code: 'M54.50', display: 'Low back pain' }],
    reason: marker,
    techniques: ['trigger_point'],
    bodyRegions: ['lower_back'],
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    insurance: { payer: 'Acme Health', memberId: 'AH123' },
    practiceId: practice.id,
    ...overrides,
  };
}
// Referrals the other cases work on share one patient: fewer writes than an inline patient each.
const sharedPatient = await test.create('/v1/patients', office.physician.token, { givenName: 'Shared', familyName: 'Patient', birthDate: '1975-03-04', sex: 'male' });
const newReferral = (send: boolean) => {
  const { patient: _inline, ...body } = referralBody(mark('referral'), { send, patientId: sharedPatient.id });
  return test.create('/v1/referrals', office.physician.token, body);
};
async function acceptedReferral(): Promise<Json> {
  const referral = await newReferral(true);
  return post(`/v1/referrals/${referral.id}/accept`, practice.therapist.token, {});
}
function noteBody(marker: string): Json {
  return {
    visitDate: isoDate(0),
    subjective: marker,
    objective: 'Taut bands L paraspinals',
    assessment: 'Improving',
    plan: 'Continue',
    painBefore: 7,
    painAfter: 4,
    rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 45 }],
    outcomeMeasures: [{ instrument: 'ODI', score: 38 }],
    techniquesApplied: ['trigger_point'],
    minutes: 60,
    billing: [{ cpt: '97140', units: 2 }],
    final: false,
  };
}
const hookBody = (marker: string): Json => ({ url: `https://ehr.example/hooks/${marker}`, eventTypes: ['referral.sent'], description: marker });

// Records of another organization, so a planted id points at something real.
const otherPatient = await test.create('/v1/patients', otherOffice.physician.token, { givenName: 'Other', familyName: 'Patient', birthDate: '1970-01-01', sex: 'male' });
const otherReferral = await test.create('/v1/referrals', otherOffice.physician.token, { ...referralBody(mark('other')), practiceId: otherPractice.id, send: true });
const otherEndpoint = await test.create('/v1/webhook-endpoints', adminToken, { ...hookBody(mark('other-hook')), organizationId: otherOffice.id });
const otherEventId: string = (await post(`/v1/webhook-endpoints/${otherEndpoint.id}/test`, adminToken, undefined, 202)).eventId;
const foreign = {
  org: otherOffice.id,
  practice: otherPractice.id,
  user: otherOffice.physician.id,
  therapist: otherPractice.therapist.id,
  referral: otherReferral.id as string,
  patient: otherPatient.id as string,
  endpoint: otherEndpoint.id as string,
  event: otherEventId,
};

// ---------------------------------------------------------------------------------------------
// Reading back: rows as plain records keyed by table and primary key, so an attempt's effect is
// the set of rows it created or changed.

function canonical(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical((value as Rec)[key])]));
  }
  return value;
}
const sameValue = (a: unknown, b: unknown) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

const keyed = (table: string, key: (row: any) => string) => (rows: Rec[]) => rows.map((row) => ({ ...row, __key: `${table}:${key(row)}` }) as Rec);
const byId = (table: string) => keyed(table, (row) => row.id);

async function userRows(): Promise<Rec[]> {
  const rows = await db.select().from(users).leftJoin(therapistProfiles, eq(therapistProfiles.userId, users.id));
  return keyed('users', (row) => row.id)(
    rows.map(({ users: user, therapist_profiles: profile }) => ({
      ...user,
      ...(profile ? { ...profile, licenseVerified: profile.licenseVerifiedAt !== null } : {}),
    })),
  );
}
async function referralRows(id: string): Promise<Rec[]> {
  return [
    ...byId('referrals')(await db.select().from(referrals).where(eq(referrals.id, id))),
    ...byId('referral_events')(await db.select().from(referralEvents).where(eq(referralEvents.referralId, id))),
  ];
}
async function deliveryRows(): Promise<Rec[]> {
  return [...byId('webhook_events')(await db.select().from(webhookEvents)), ...byId('webhook_deliveries')(await db.select().from(webhookDeliveries))];
}

/** A referral as the API shows it, flattened so its parts can be compared by column name. */
async function referralApi(id: string, token: string): Promise<Rec[]> {
  const referral = await getJson(`/v1/referrals/${id}`, token);
  if (!referral) return [];
  const history = await getJson(`/v1/referrals/${id}/history`, token);
  return [
    {
      ...referral,
      visitsUsed: referral.progress?.visitsUsed,
      acceptedTherapistId: referral.acceptedBy?.therapistId,
      acceptedPracticeId: referral.acceptedBy?.practiceId,
      acceptedAt: referral.acceptedBy?.at,
      targetPracticeId: referral.practiceId,
    },
    ...(history?.data ?? []).map((event: Json) => ({ ...event, actorId: event.actor.id, actorOrganizationId: event.actor.organizationId })),
  ];
}

// ---------------------------------------------------------------------------------------------
// The operations.

interface Owned {
  field: string;
  value: unknown;
  /** Columns (database) and fields (API) that must not take the value; default the field's name. */
  columns?: string[];
  /** For an object value: the columns its parts would land in, and the part each must not take. */
  also?: Rec;
  /** A field the schema takes, whose value must still not decide what the server stores. */
  legit?: boolean;
  /** Statuses besides 2xx and 400 that refuse the legit field properly (e.g. 404 for a foreign organization). */
  statuses?: number[];
  /** Body fields to drop when this one is sent (it replaces them). */
  omit?: string[];
}

interface Ctx {
  url: string;
  token: string;
  /** A fresh valid body; undefined for an operation without one. */
  valid(): Json | undefined;
  rows(): Promise<Rec[]>;
  /** What the API shows afterwards, and any record found under a planted id. */
  api(response: Response, injected: Rec): Promise<Rec[]>;
  headers?: Record<string, string>;
}

interface Op {
  method: 'POST' | 'PATCH';
  path: string;
  setup(): Promise<Ctx>;
  owned: Owned[];
  /** Objects inside the valid body where fields can hide, as property paths. */
  nested?: Array<Array<string | number>>;
  /** A success uses the state up (a referral can be sent once): set up again after one. */
  consumes?: boolean;
  /** Success must create a row (a POST that makes a resource). */
  creates?: boolean;
}

const referralOwned = (status: string): Owned[] => [
  { field: 'id', value: randomUUID() },
  { field: 'status', value: status },
  { field: 'version', value: 42 },
  { field: 'organizationId', value: foreign.org },
  { field: 'createdBy', value: foreign.user },
  { field: 'sentAt', value: planted },
  {
    field: 'acceptedBy',
    value: { therapistId: foreign.therapist, practiceId: foreign.practice, at: planted },
    also: { acceptedTherapistId: foreign.therapist, acceptedPracticeId: foreign.practice, acceptedAt: planted },
  },
  { field: 'progress', value: { visitsUsed: 7, visitsAuthorized: 99, visitsRemaining: 92 }, also: { visitsUsed: 7, visitsAuthorized: 99 } },
  { field: 'acceptedTherapistId', value: foreign.therapist },
  { field: 'acceptedPracticeId', value: foreign.practice },
  { field: 'acceptedAt', value: planted },
  { field: 'visitsUsed', value: 7 },
  { field: 'actorId', value: foreign.user },
  { field: 'createdAt', value: planted },
  { field: 'updatedAt', value: planted },
];

/** A referral move (send, accept, …) on a fresh referral in the given state. */
function moveOp(move: string, status: string, prepare: () => Promise<Json>, token: () => string, body?: () => Json, extra: Owned[] = []): Op {
  return {
    method: 'POST',
    path: `/v1/referrals/{id}/${move}`,
    consumes: true,
    owned: [...referralOwned(status), { field: 'patientId', value: foreign.patient }, { field: 'prescriberId', value: foreign.user }, ...extra],
    async setup() {
      const referral = await prepare();
      return {
        url: `/v1/referrals/${referral.id}/${move}`,
        token: token(),
        valid: () => body?.(),
        rows: () => referralRows(referral.id),
        api: () => referralApi(referral.id, office.physician.token),
      };
    },
  };
}

const ops: Op[] = [
  {
    method: 'POST',
    path: '/v1/auth/token',
    owned: [
      { field: 'role', value: 'network_admin' },
      { field: 'organizationId', value: foreign.org, columns: ['organizationId', 'org'] },
      { field: 'sub', value: foreign.user, columns: ['sub', 'meId'] },
      { field: 'typ', value: 'api_client' },
      { field: 'iss', value: 'https://attacker.example' },
      { field: 'aud', value: 'attacker-api' },
      { field: 'exp', value: 4_102_444_800 },
      { field: 'expiresAt', value: planted },
      { field: 'scope', value: 'patients:write referrals:write', legit: true },
      { field: 'refresh_token', value: `attacker-chosen-refresh-token-${randomUUID()}`, legit: true },
    ],
    async setup() {
      const email = `token.${randomUUID().slice(0, 8)}@mass.example`;
      const user = await test.create(`/v1/organizations/${office.id}/users`, office.admin.token, { role: 'office_staff', email, password: defaultPassword, name: 'Token user' });
      return {
        url: '/v1/auth/token',
        token: '',
        valid: () => ({ grant_type: 'password', username: email, password: defaultPassword }),
        rows: async () => [
          ...(await userRows()).filter((row) => row.id === user.id),
          ...byId('refresh_tokens')(await db.select().from(refreshTokens).where(eq(refreshTokens.userId, user.id))),
        ],
        async api(response, injected) {
          const records: Rec[] = [];
          if (response.statusCode === 200) {
            const claims = decodeJwt(response.json().access_token).payload;
            const me = await getJson('/v1/me', response.json().access_token);
            records.push({ ...claims, organizationId: claims.org }, { meId: me?.id, role: me?.role });
          }
          if (typeof injected.refresh_token === 'string') {
            const refreshed = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'refresh_token', refresh_token: injected.refresh_token } });
            if (refreshed.statusCode === 200) records.push({ refresh_token: injected.refresh_token });
          }
          return records;
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/auth/revoke',
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'userId', value: foreign.user },
      { field: 'familyId', value: randomUUID() },
      { field: 'revokedAt', value: planted },
      { field: 'rotatedAt', value: planted },
      { field: 'expiresAt', value: planted },
      { field: 'createdAt', value: planted },
    ],
    async setup() {
      const email = `revoke.${randomUUID().slice(0, 8)}@mass.example`;
      const user = await test.create(`/v1/organizations/${office.id}/users`, office.admin.token, { role: 'office_staff', email, password: defaultPassword, name: 'Revoke user' });
      const session = await post('/v1/auth/token', '', { grant_type: 'password', username: email, password: defaultPassword });
      return {
        url: '/v1/auth/revoke',
        token: session.access_token,
        valid: () => ({ token: session.refresh_token }),
        rows: async () => byId('refresh_tokens')(await db.select().from(refreshTokens).where(eq(refreshTokens.userId, user.id))),
        api: async () => [],
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/organizations',
    creates: true,
    nested: [['address'], ['location']],
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'createdAt', value: planted },
      { field: 'updatedAt', value: planted },
      { field: 'latitude', value: 12.5 },
    ],
    async setup() {
      return {
        url: '/v1/organizations',
        token: adminToken,
        valid: () => ({
          kind: 'therapy_practice',
          name: mark('org'),
          address: { line1: '3 Test Rd', city: 'Portland', state: 'OR', postalCode: '97201' },
          location: { lat: 45.5, lng: -122.6 },
        }),
        rows: async () => byId('organizations')(await db.select().from(organizations)),
        async api(response, injected) {
          const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
          return (await Promise.all(ids.map((id) => getJson(`/v1/organizations/${id}`, adminToken)))).filter((row): row is Json => row !== undefined);
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/organizations/{id}/users',
    creates: true,
    nested: [['license']],
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'organizationId', value: foreign.practice },
      { field: 'role', value: 'network_admin', legit: true },
      { field: 'active', value: false },
      { field: 'passwordHash', value: 'scrypt$32768$8$1$YXR0YWNrZXI$YXR0YWNrZXI' },
      { field: 'failedLoginCount', value: 99 },
      { field: 'lockedUntil', value: planted },
      { field: 'licenseVerified', value: true },
      { field: 'licenseVerifiedAt', value: planted },
      { field: 'createdAt', value: planted },
      { field: 'updatedAt', value: planted },
    ],
    async setup() {
      return {
        url: `/v1/organizations/${practice.id}/users`,
        token: practice.admin.token,
        valid: () => ({
          role: 'therapist',
          email: `${mark('therapist')}@mass.example`,
          password: defaultPassword,
          name: 'New therapist',
          license: { number: 'MT-NEW', state: 'OR', expiresOn: '2028-12-31' },
          techniques: ['swedish'],
          serviceRadiusKm: 10,
        }),
        rows: userRows,
        async api(response, injected) {
          const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
          const found = await Promise.all(ids.map((id) => getJson(`/v1/organizations/${practice.id}/users/${id}`, practice.admin.token)));
          return found.filter((row): row is Json => row !== undefined).map((user) => ({ ...user, licenseVerified: user.therapist?.license.verified }));
        },
      };
    },
  },
  {
    method: 'PATCH',
    path: '/v1/organizations/{id}/users/{userId}',
    nested: [['license']],
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'organizationId', value: foreign.practice },
      { field: 'role', value: 'practice_admin' },
      { field: 'email', value: 'attacker@attacker.example' },
      { field: 'passwordHash', value: 'scrypt$32768$8$1$YXR0YWNrZXI$YXR0YWNrZXI' },
      { field: 'failedLoginCount', value: 99 },
      { field: 'lockedUntil', value: planted },
      { field: 'licenseVerified', value: true, legit: true },
      { field: 'licenseVerifiedAt', value: planted },
      { field: 'createdAt', value: planted },
      { field: 'updatedAt', value: planted },
    ],
    async setup() {
      const url = `/v1/organizations/${practice.id}/users/${colleague.id}`;
      return {
        url,
        token: practice.admin.token,
        valid: () => ({ name: mark('renamed'), license: { number: 'MT-COLL', state: 'OR', expiresOn: '2029-12-31' } }),
        rows: userRows,
        async api() {
          const user = await getJson(url, practice.admin.token);
          return user ? [{ ...user, licenseVerified: user.therapist?.license.verified }] : [];
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/organizations/{id}/api-clients',
    creates: true,
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'organizationId', value: foreign.org },
      { field: 'clientId', value: 'cli_attacker_chosen' },
      { field: 'clientSecret', value: 'cs_attacker_chosen_secret' },
      { field: 'secretHash', value: 'scrypt$32768$8$1$YXR0YWNrZXI$YXR0YWNrZXI' },
      { field: 'active', value: false },
      { field: 'revokedAt', value: planted },
      { field: 'createdBy', value: foreign.user },
      { field: 'createdAt', value: planted },
    ],
    async setup() {
      const url = `/v1/organizations/${office.id}/api-clients`;
      return {
        url,
        token: office.admin.token,
        valid: () => ({ name: mark('client'), scopes: ['patients:read'] }),
        rows: async () => byId('api_clients')(await db.select().from(apiClients)),
        async api(response, injected) {
          const listed = (await getJson(`${url}?limit=200`, office.admin.token))?.data ?? [];
          const records = listed.filter((client: Json) => client.id === injected.id || (response.statusCode === 201 && client.id === response.json().id));
          // A secret the caller picked would let it authenticate with it.
          if (response.statusCode === 201 && typeof injected.clientSecret === 'string') {
            const attempt = await test.request({
              method: 'POST',
              url: '/v1/auth/token',
              payload: { grant_type: 'client_credentials', client_id: response.json().clientId, client_secret: injected.clientSecret },
            });
            if (attempt.statusCode === 200) records.push({ clientSecret: injected.clientSecret });
          }
          return records;
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/patients',
    creates: true,
    nested: [['identifiers', 0]],
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'organizationId', value: foreign.org },
      { field: 'createdBy', value: foreign.user },
      { field: 'createdAt', value: planted },
      { field: 'updatedAt', value: planted },
    ],
    async setup() {
      return {
        url: '/v1/patients',
        token: office.physician.token,
        valid: () => ({ givenName: mark('patient'), familyName: 'Mass-assignment', birthDate: '1980-05-06', sex: 'female', identifiers: [{ system: 'urn:test:mrn', value: mark('mrn') }] }),
        rows: async () => byId('patients')(await db.select().from(patients)),
        async api(response, injected) {
          const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
          return (await Promise.all(ids.map((id) => getJson(`/v1/patients/${id}`, office.physician.token)))).filter((row): row is Json => row !== undefined);
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/referrals',
    creates: true,
    nested: [['patient'], ['patient', 'identifiers', 0], ['diagnoses', 0], ['insurance']],
    owned: [
      ...referralOwned('completed'),
      { field: 'prescriberId', value: foreign.user, legit: true },
      { field: 'patientId', value: foreign.patient, legit: true, omit: ['patient'] },
    ],
    async setup() {
      return {
        url: '/v1/referrals',
        token: office.physician.token,
        valid: () => referralBody(mark('new-referral')),
        rows: async () => [
          ...byId('referrals')(await db.select().from(referrals)),
          ...byId('patients')(await db.select().from(patients)),
          ...byId('referral_events')(await db.select().from(referralEvents)),
        ],
        async api(response, injected) {
          const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
          return (await Promise.all(ids.map((id) => referralApi(id, office.physician.token)))).flat();
        },
      };
    },
  },
  {
    method: 'PATCH',
    path: '/v1/referrals/{id}',
    owned: [
      ...referralOwned('completed'),
      { field: 'patientId', value: foreign.patient },
      { field: 'prescriberId', value: foreign.user },
      { field: 'practiceId', value: foreign.practice, columns: ['targetPracticeId', 'practiceId'] },
    ],
    async setup() {
      const referral = await newReferral(true);
      let days = 91;
      return {
        url: `/v1/referrals/${referral.id}`,
        token: office.physician.token,
        // Each amendment must extend the expiry further.
        valid: () => ({ expiresOn: isoDate(++days) }),
        rows: () => referralRows(referral.id),
        api: () => referralApi(referral.id, office.physician.token),
      };
    },
  },
  moveOp('send', 'accepted', () => newReferral(false), () => office.physician.token),
  moveOp('accept', 'completed', () => newReferral(true), () => practice.therapist.token, () => ({}), [
    // A therapist accepts as themself; naming a colleague must not make the colleague the acceptor.
    { field: 'therapistId', value: colleague.id, legit: true, columns: ['acceptedTherapistId'] },
  ]),
  moveOp('decline', 'accepted', () => newReferral(true), () => practice.therapist.token, () => ({ reason: mark('decline') })),
  moveOp('cancel', 'completed', () => newReferral(true), () => office.physician.token, () => ({ reason: mark('cancel') })),
  moveOp(
    'reroute',
    'accepted',
    async () => {
      const referral = await newReferral(true);
      return post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'No availability' });
    },
    () => office.physician.token,
    () => ({ practiceId: otherPractice.id, reason: mark('reroute') }),
  ),
  {
    method: 'POST',
    path: '/v1/referrals/{id}/progress-reports',
    creates: true,
    nested: [['rangeOfMotion', 0], ['outcomeMeasures', 0], ['billing', 0]],
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'visitNumber', value: 77 },
      { field: 'authorId', value: foreign.therapist },
      { field: 'referralId', value: foreign.referral },
      { field: 'signedAt', value: planted },
      { field: 'createdAt', value: planted },
      { field: 'status', value: 'completed' },
      { field: 'visitsUsed', value: 9 },
    ],
    async setup() {
      const referral = await acceptedReferral();
      const listUrl = `/v1/referrals/${referral.id}/progress-reports`;
      return {
        url: listUrl,
        token: practice.therapist.token,
        valid: () => noteBody(mark('note')),
        rows: async () => [
          ...byId('progress_reports')(await db.select().from(progressReports).where(eq(progressReports.referralId, referral.id))),
          ...(await referralRows(referral.id)),
        ],
        async api() {
          const notes = (await getJson(listUrl, practice.therapist.token))?.data ?? [];
          return [...notes, ...(await referralApi(referral.id, practice.therapist.token))];
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/referrals/{id}/progress-reports/{reportId}/addenda',
    creates: true,
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'authorId', value: foreign.therapist },
      { field: 'reportId', value: randomUUID() },
      { field: 'createdAt', value: planted },
    ],
    async setup() {
      const referral = await acceptedReferral();
      const listUrl = `/v1/referrals/${referral.id}/progress-reports`;
      const report = await post(listUrl, practice.therapist.token, noteBody(mark('note')), 201);
      return {
        url: `${listUrl}/${report.id}/addenda`,
        token: practice.therapist.token,
        valid: () => ({ text: mark('addendum') }),
        rows: async () => byId('addenda')(await db.select().from(progressReportAddenda).where(eq(progressReportAddenda.reportId, report.id))),
        async api() {
          const notes = (await getJson(listUrl, practice.therapist.token))?.data ?? [];
          return notes.flatMap((note: Json) => note.addenda);
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/referrals/{id}/messages',
    creates: true,
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'authorId', value: foreign.user },
      { field: 'authorType', value: 'api_client' },
      { field: 'authorOrganizationId', value: foreign.org },
      {
        field: 'author',
        value: { type: 'api_client', id: foreign.user, organizationId: foreign.org },
        also: { authorType: 'api_client', authorId: foreign.user, authorOrganizationId: foreign.org },
      },
      { field: 'referralId', value: foreign.referral },
      { field: 'seq', value: 999_999 },
      { field: 'createdAt', value: planted },
    ],
    async setup() {
      const referral = await newReferral(true);
      const url = `/v1/referrals/${referral.id}/messages`;
      return {
        url,
        token: office.physician.token,
        valid: () => ({ body: mark('message') }),
        rows: async () => byId('messages')(await db.select().from(messages).where(inArray(messages.referralId, [referral.id, foreign.referral]))),
        async api() {
          const thread = (await getJson(`${url}?limit=200`, office.physician.token))?.data ?? [];
          return thread.map((message: Json) => ({ ...message, authorId: message.author.id, authorType: message.author.type, authorOrganizationId: message.author.organizationId }));
        },
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/referrals/{id}/messages/read',
    owned: [
      { field: 'readerId', value: foreign.user },
      { field: 'referralId', value: foreign.referral },
      { field: 'lastReadSeq', value: 999_999 },
      { field: 'updatedAt', value: planted },
    ],
    async setup() {
      const referral = await newReferral(true);
      await post(`/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: 'Question about the referral' }, 201);
      return {
        url: `/v1/referrals/${referral.id}/messages/read`,
        token: office.physician.token,
        valid: () => ({}),
        rows: async () =>
          keyed('read_markers', (row) => `${row.referralId}/${row.readerId}`)(
            await db.select().from(messageReadMarkers).where(inArray(messageReadMarkers.referralId, [referral.id, foreign.referral])),
          ),
        api: async () => [],
      };
    },
  },
  {
    method: 'POST',
    path: '/v1/webhook-endpoints',
    creates: true,
    owned: [
      { field: 'id', value: randomUUID() },
      { field: 'organizationId', value: foreign.org, legit: true, statuses: [404] },
      { field: 'secret', value: 'whsec_YXR0YWNrZXItY2hvc2VuLXNlY3JldA==' },
      { field: 'status', value: 'disabled' },
      { field: 'disabledReason', value: 'planted' },
      { field: 'previousSecret', value: 'whsec_cHJldmlvdXMtYXR0YWNrZXI=' },
      { field: 'previousSecretExpiresAt', value: planted },
      { field: 'failingSince', value: planted },
      { field: 'lastSuccessAt', value: planted },
      { field: 'createdBy', value: foreign.user },
      { field: 'createdAt', value: planted },
      { field: 'updatedAt', value: planted },
      { field: 'deletedAt', value: planted },
    ],
    async setup() {
      return {
        url: '/v1/webhook-endpoints',
        token: office.admin.token,
        valid: () => hookBody(mark('hook')),
        rows: async () => byId('webhook_endpoints')(await db.select().from(webhookEndpoints)),
        async api(response, injected) {
          const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
          return (await Promise.all(ids.map((id) => getJson(`/v1/webhook-endpoints/${id}`, office.admin.token)))).filter((row): row is Json => row !== undefined);
        },
      };
    },
  },
  ...(['PATCH', 'POST'] as const).map(
    (method): Op => ({
      method,
      path: method === 'PATCH' ? '/v1/webhook-endpoints/{id}' : '/v1/webhook-endpoints/{id}/rotate-secret',
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'organizationId', value: foreign.org },
        { field: 'secret', value: 'whsec_YXR0YWNrZXItY2hvc2VuLXNlY3JldA==' },
        { field: 'previousSecret', value: 'whsec_cHJldmlvdXMtYXR0YWNrZXI=' },
        { field: 'previousSecretExpiresAt', value: planted },
        { field: 'disabledReason', value: 'planted' },
        { field: 'failingSince', value: planted },
        { field: 'lastSuccessAt', value: planted },
        { field: 'createdBy', value: foreign.user },
        { field: 'createdAt', value: planted },
        { field: 'updatedAt', value: planted },
        { field: 'deletedAt', value: planted },
        // Status is the caller's to set on PATCH (active/disabled); rotating must not change it.
        ...(method === 'POST' ? [{ field: 'status', value: 'disabled' }] : []),
      ],
      async setup() {
        const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, hookBody(mark('hook')));
        return {
          url: method === 'PATCH' ? `/v1/webhook-endpoints/${endpoint.id}` : `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`,
          token: office.admin.token,
          valid: () => (method === 'PATCH' ? { description: mark('described') } : undefined),
          rows: async () => byId('webhook_endpoints')(await db.select().from(webhookEndpoints)),
          async api(response) {
            const shown = await getJson(`/v1/webhook-endpoints/${endpoint.id}`, office.admin.token);
            // The rotated secret is shown once, in the answer.
            return [...(shown ? [shown] : []), ...(response.statusCode === 200 && response.json().secret ? [{ secret: response.json().secret }] : [])];
          },
        };
      },
    }),
  ),
  ...(['test', 'resend', 'recover'] as const).map(
    (action): Op => ({
      method: 'POST',
      path: action === 'resend' ? '/v1/webhook-deliveries/{id}/resend' : `/v1/webhook-endpoints/{id}/${action}`,
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'eventId', value: foreign.event },
        { field: 'endpointId', value: foreign.endpoint },
        { field: 'type', value: 'referral.accepted' },
        { field: 'referralId', value: foreign.referral },
        { field: 'status', value: 'succeeded' },
        { field: 'attempts', value: 99 },
        { field: 'nextAttemptAt', value: planted },
        { field: 'leaseExpiresAt', value: planted },
        { field: 'occurredAt', value: planted },
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, hookBody(mark('hook')));
        const { eventId } = await post(`/v1/webhook-endpoints/${endpoint.id}/test`, office.admin.token, undefined, 202);
        const [delivery] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId));
        // Recovery only picks up dead deliveries.
        if (action === 'recover') await db.update(webhookDeliveries).set({ status: 'dead' }).where(eq(webhookDeliveries.id, delivery!.id));
        const url =
          action === 'resend' ? `/v1/webhook-deliveries/${delivery!.id}/resend` : `/v1/webhook-endpoints/${endpoint.id}/${action}`;
        return {
          url,
          token: office.admin.token,
          valid: () => (action === 'recover' ? { from: '2000-01-01T00:00:00Z' } : undefined),
          rows: deliveryRows,
          async api() {
            const listed = (await getJson(`/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=200`, office.admin.token))?.data ?? [];
            return listed.map((delivery: Json) => ({ ...delivery, type: delivery.eventType }));
          },
        };
      },
    }),
  ),
];

// ---------------------------------------------------------------------------------------------
// Attempts.

const pascal = (name: string) => name.charAt(0).toUpperCase() + name.slice(1);
const snake = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
/** Another spelling: snake_case, or upper case for a one-word name. */
const otherSpelling = (name: string) => (snake(name) !== name ? snake(name) : name.toUpperCase());
const pathName = (path: Array<string | number>) => path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`)).join('');

interface Attempt {
  label: string;
  /** What is planted: the field's canonical name and its value, whatever spelling carries it. */
  injected: Owned[];
  payload?: Json | string;
  query?: string;
  /** Field names a 400 must mention, one per planted field. */
  names: string[];
  /** The top-level group: fields a 400 does not name (or all, after a success on a route that takes a body) are then sent one by one. */
  singlesAfter?: boolean;
}

/** The field alone at the top level (replacing the body fields it stands for). */
function single(owned: Owned, base: () => Json): Attempt {
  const payload = base();
  for (const name of owned.omit ?? []) delete payload[name];
  payload[owned.field] = owned.value;
  return { label: `${owned.field} alone at the top level`, injected: [owned], payload, names: owned.legit ? [] : [owned.field] };
}

function attemptsFor(op: Op, valid: () => Json | undefined): Attempt[] {
  const plain = op.owned.filter((owned) => !owned.omit);
  const base = () => valid() ?? {};
  const attempts: Attempt[] = [];
  // Fields the schema takes change what the request means (a 404 for a foreign organization, say):
  // each goes alone. The others go together; the run loop then sends alone any field a 400 did not
  // name, so a field the server quietly takes is never hidden behind another field's 400.
  for (const owned of op.owned.filter((owned) => owned.legit || owned.omit)) attempts.push(single(owned, base));
  const unknown = plain.filter((owned) => !owned.legit);
  const together = base();
  for (const owned of unknown) together[owned.field] = owned.value;
  attempts.push({ label: 'all at the top level', injected: unknown, payload: together, names: unknown.map((owned) => owned.field), singlesAfter: true });
  const spelled = (label: string, spell: (name: string) => string) => {
    const payload = base();
    for (const owned of plain) payload[spell(owned.field)] = owned.value;
    attempts.push({ label, injected: plain, payload, names: plain.map((owned) => spell(owned.field)) });
  };
  spelled('PascalCase', pascal);
  spelled('snake_case or UPPER CASE', otherSpelling);
  for (const path of op.nested ?? []) {
    const payload = base();
    let target: any = payload;
    for (const part of path) target = target[part];
    for (const owned of plain) target[owned.field] = owned.value;
    attempts.push({ label: `nested in ${pathName(path)}`, injected: plain, payload, names: plain.map((owned) => `${pathName(path)}.${owned.field}`) });
  }
  attempts.push({
    label: 'in an attributes wrapper',
    injected: plain,
    payload: { ...base(), attributes: Object.fromEntries(plain.map((owned) => [owned.field, owned.value])) },
    names: ['attributes'],
  });
  const query = new URLSearchParams();
  for (const owned of plain) {
    const text = typeof owned.value === 'object' ? JSON.stringify(owned.value) : String(owned.value);
    query.append(owned.field, text);
    query.append(otherSpelling(owned.field), text);
  }
  attempts.push({ label: 'in the query string', injected: plain, payload: valid(), query: query.toString(), names: [] });
  const plantedJson = JSON.stringify(Object.fromEntries(plain.map((owned) => [owned.field, owned.value])));
  // Raw text: JSON.stringify would drop a __proto__ key before it ever reached the server.
  const raw = (key: string, inner: string) => {
    const body = JSON.stringify(base()).slice(1, -1);
    return `{${body}${body ? ',' : ''}"${key}":${inner}}`;
  };
  attempts.push({ label: 'through __proto__', injected: plain, payload: raw('__proto__', plantedJson), names: [] });
  attempts.push({ label: 'through constructor.prototype', injected: plain, payload: raw('constructor', `{"prototype":${plantedJson}}`), names: [] });
  return attempts;
}

const tally = { injected: 0, persisted: 0, requests: 0, ops: 0, serverErrors: 0 };
const persistedFindings: string[] = [];

/** Runs one attempt; `before` is the state the previous attempt left, when nothing ran since. */
async function run(t: Test, op: Op, ctx: Ctx, attempt: Attempt, previous?: Rec[]): Promise<{ succeeded: boolean; after: Rec[]; named: Set<string> }> {
  const before = previous ?? (await ctx.rows());
  const response = await test.request({
    method: op.method,
    url: attempt.query ? `${ctx.url}?${attempt.query}` : ctx.url,
    ...(ctx.token ? { token: ctx.token } : {}),
    ...(attempt.payload !== undefined ? { payload: attempt.payload as never, headers: { 'content-type': 'application/json' } } : {}),
  });
  tally.requests++;
  tally.injected += attempt.injected.length;
  const status = response.statusCode;
  const succeeded = status >= 200 && status < 300;
  const label = `${attempt.label}: ${status}`;

  if (status >= 500) tally.serverErrors++;
  t.ok(status < 500, `${label}: no server error`);
  const allowed = new Set([400, ...attempt.injected.flatMap((owned) => owned.statuses ?? [])]);
  t.ok(succeeded || allowed.has(status), `${label}: refused with 400 or taken with the field ignored (${response.body.slice(0, 160)})`);
  if (!succeeded) t.match(response.headers['content-type'], /^application\/problem\+json/, `${attempt.label}: problem+json`);
  const named = new Set<string>(status === 400 ? (response.json().errors ?? []).map((problem: Json) => problem.field) : []);
  if (status === 400 && attempt.names.length > 0) {
    const unnamed = attempt.names.filter((name) => !named.has(name));
    t.same(unnamed, [], `${attempt.label}: the 400 names every planted field`);
  }

  const after = await ctx.rows();
  const beforeByKey = new Map(before.map((row) => [row.__key, JSON.stringify(canonical(row))]));
  const touched = after.filter((row) => beforeByKey.get(row.__key) !== JSON.stringify(canonical(row)));
  const gone = before.filter((row) => !after.some((other) => other.__key === row.__key));
  t.same(gone.map((row) => row.__key), [], `${attempt.label}: no row disappeared`);
  if (!succeeded) {
    t.same(touched.map((row) => row.__key), [], `${attempt.label}: refused, so nothing was created or changed`);
  } else if (op.creates) {
    t.ok(touched.length > 0, `${attempt.label}: the resource was created`);
  }

  const injected: Rec = Object.fromEntries(attempt.injected.map((owned) => [owned.field, owned.value]));
  // After a refusal the rows are unchanged: the API can only add a record found under a planted id.
  const shown = succeeded || 'id' in injected ? await ctx.api(response, injected) : [];
  const checks = (owned: Owned): Array<[string, unknown]> => [
    ...(owned.columns ?? [owned.field]).map((column): [string, unknown] => [column, owned.value]),
    ...Object.entries(owned.also ?? {}),
  ];
  const persisted = attempt.injected.filter((owned) =>
    [...touched, ...shown].some((record) => checks(owned).some(([column, value]) => column in record && sameValue(record[column], value))),
  );
  tally.persisted += persisted.length;
  for (const owned of persisted) persistedFindings.push(`${op.method} ${op.path} ${owned.field} (${attempt.label})`);
  t.same(
    persisted.map((owned) => owned.field),
    [],
    `${attempt.label}: no planted value in the database rows it touched or in what the API shows`,
  );
  return { succeeded, after, named };
}

// ---------------------------------------------------------------------------------------------

const document = test.app.swagger() as { paths: Record<string, Record<string, { requestBody?: unknown }>> };
const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
  Object.keys(methods)
    .filter((method) => method === 'post' || method === 'patch')
    .map((method) => `${method.toUpperCase()} ${path}`),
);

t.test('every POST and PATCH of the OpenAPI document has a case', async (t) => {
  const covered = new Set(ops.map((op) => `${op.method} ${op.path}`));
  t.ok(documented.length >= 20, `the document lists ${documented.length} POST/PATCH operations`);
  t.same(documented.filter((operation) => !covered.has(operation)), [], 'no documented operation without a case');
  t.same([...covered].filter((operation) => !documented.includes(operation)), [], 'no case for an operation the document lacks');
  t.equal(covered.size, ops.length, 'one case per operation');
});

for (const op of ops) {
  t.test(`${op.method} ${op.path}`, async (t) => {
    tally.ops++;
    let ctx = await op.setup();
    // Reads after an attempt change none of these rows, so its "after" is the next one's "before";
    // if one did, the next attempt would report a change it did not make, never hide one.
    let previous: Rec[] | undefined;
    const attempt = async (attempt: Attempt) => {
      const result = await run(t, op, ctx, attempt, previous);
      previous = result.after;
      if (result.succeeded && op.consumes) {
        ctx = await op.setup();
        previous = undefined;
      }
      return result;
    };
    // A route that declares no body never reads one: once the whole set is ignored, so is each field.
    const takesBody = document.paths[op.path]?.[op.method.toLowerCase()]?.requestBody !== undefined;
    for (const planned of attemptsFor(op, () => ctx.valid())) {
      const { succeeded, named } = await attempt(planned);
      if (!planned.singlesAfter) continue;
      for (const owned of planned.injected.filter((owned) => (succeeded ? takesBody : !named.has(owned.field)))) {
        await attempt(single(owned, () => ctx.valid() ?? {}));
      }
    }
  });
}

t.test('figure', async (t) => {
  const pass = tally.persisted === 0 && tally.serverErrors === 0 && tally.ops === documented.length;
  const figure = `${tally.persisted} of ${tally.injected} server-owned fields persisted across ${tally.ops} POST/PATCH operations (read back from the database); ${tally.requests} requests, ${tally.serverErrors} answered 5xx`;
  recordFigure({ item: 4, check: 'Mass assignment', figure, pass });
  t.comment(figure);
  for (const finding of persistedFindings) t.comment(`persisted: ${finding}`);
  t.equal(tally.persisted, 0, 'no planted value persisted');
  t.equal(tally.serverErrors, 0, 'no 5xx');
});
