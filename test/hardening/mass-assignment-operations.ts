// The mass-assignment test's cases (mass-assignment.test.ts): what an operation is, the fields the
// server owns on each, and how to set one up and read back its effect. This file holds the
// sign-in, organization, user, API client and patient operations; referrals and webhooks have
// files of their own beside it.
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { apiClients, organizations, patients, refreshTokens } from '../../src/db/schema.js';
import type { Part } from '../fixtures/documents.js';
import { defaultPassword, type Json } from '../helper.js';
import { jwksOf, signingKey } from '../fixtures/smart.js';
import { decodeJwt } from '../tokens.js';
import { byId, type MassAssignmentWorld, type Rec, type Response } from './mass-assignment-world.js';

export interface Owned {
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

export interface Ctx {
  url: string;
  token: string;
  /** A fresh valid body; undefined for an operation without one (or one that takes a form). */
  valid(): Json | undefined;
  /** For an operation that takes multipart/form-data: the parts of a fresh valid form. */
  form?(): Part[];
  rows(): Promise<Rec[]>;
  /** What the API shows afterwards, and any record found under a planted id. */
  api(response: Response, injected: Rec): Promise<Rec[]>;
  headers?: Record<string, string>;
}

export interface Op {
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
  /** The body is multipart/form-data (Ctx.form), not JSON; `declared` are fields the file part may claim by its own headers. */
  multipart?: { declared?: { contentType?: Owned } };
  /**
   * A FHIR resource under /fhir/R4 (mass-assignment-fhir-operations.ts): the body goes as
   * application/fhir+json, a refusal is an OperationOutcome, and a 400 names a field by its element
   * path, `${resourceType}.${field}`, in an issue's expression or details.text.
   */
  fhir?: { resourceType: string };
}

/** Sign-in, revocation, organizations, users, API clients and patients. */
export function accountOperations(world: MassAssignmentWorld): Op[] {
  const { test, db, planted, mark, adminToken, office, practice, colleague, post, getJson, foreign, userRows } = world;
  return [
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
        // A body field since SPEC §14.2, for network admins only: a practice admin's is refused by name.
        { field: 'licenseVerified', value: true, legit: true },
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
      method: 'PATCH',
      path: '/v1/organizations/{id}/api-clients/{apiClientId}',
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'organizationId', value: foreign.org },
        { field: 'name', value: 'attacker-renamed-client' },
        // Key rotation replaces keys only: the scopes granted at creation are not the caller's to widen here.
        { field: 'scopes', value: ['patients:write', 'referrals:sign'] },
        { field: 'clientId', value: 'cli_attacker_chosen' },
        { field: 'authMethod', value: 'client_secret' },
        { field: 'clientSecret', value: 'cs_attacker_chosen_secret' },
        { field: 'secretHash', value: 'scrypt$32768$8$1$YXR0YWNrZXI$YXR0YWNrZXI' },
        { field: 'keyIds', value: ['attacker-kid'] },
        { field: 'active', value: false },
        { field: 'revokedAt', value: planted },
        { field: 'createdBy', value: foreign.user },
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const listUrl = `/v1/organizations/${office.id}/api-clients`;
        const first = await signingKey('ES384');
        const client = await post(listUrl, office.admin.token, { name: mark('jwt-client'), scopes: ['referrals:read'], authMethod: 'private_key_jwt', jwks: jwksOf(first) }, 201);
        const rotated = await signingKey('ES384');
        return {
          url: `${listUrl}/${client.id}`,
          token: office.admin.token,
          valid: () => ({ jwks: jwksOf(first, rotated) }),
          rows: async () => byId('api_clients')(await db.select().from(apiClients)),
          async api(_response, injected) {
            const listed = (await getJson(`${listUrl}?limit=200`, office.admin.token))?.data ?? [];
            const records = listed.filter((row: Json) => row.id === client.id || row.id === injected.id);
            // A secret the caller picked would let the client authenticate with it.
            if (typeof injected.clientSecret === 'string') {
              const attempt = await test.request({
                method: 'POST',
                url: '/v1/auth/token',
                payload: { grant_type: 'client_credentials', client_id: client.clientId, client_secret: injected.clientSecret },
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
  ];
}
