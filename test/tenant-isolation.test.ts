// Tenant isolation (SPEC §6, §7): a caller from another organization never learns that an
// org-scoped resource exists. Where the route's policy admits the caller's role, the answer is the
// same 404 as for a missing record; where the policy refuses the role outright, 403 (which says
// nothing about the resource). Either way the attempt is audited as denied against the resource.
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import { addApiClient, createOffice, createPractice } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { auditEvents, buildTestApp, defaultPassword, type Json, type TestResponse as Response } from './helper.js';
type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();

/** Signs in a new API client of the organization, with every scope, and returns its id and token. */
const apiClient = (organizationId: string, adminToken: string) =>
  addApiClient(test, adminToken, organizationId, ['directory:read', 'patients:read', 'patients:write', 'referrals:read', 'referrals:write']);

// The organizations whose resources are aimed at: an office with a patient, and a practice.
const officeA = await createOffice(test, networkAdmin);
const practiceQ = await createPractice(test, networkAdmin);
interface Target {
  label: string;
  org: string;
  user: string;
  apiClient: string;
  patient?: string;
}
const targets: Target[] = [
  {
    label: 'an office',
    org: officeA.id,
    user: officeA.physician.id,
    apiClient: (await apiClient(officeA.id, officeA.admin.token)).id,
    patient: (await test.create('/v1/patients', officeA.physician.token, { givenName: 'Maria', familyName: 'Gomez', birthDate: '1978-04-02', sex: 'female' })).id,
  },
  { label: 'a practice', org: practiceQ.id, user: practiceQ.therapist.id, apiClient: (await apiClient(practiceQ.id, practiceQ.admin.token)).id },
];

// The callers, none of them a member of a target organization.
const officeB = await createOffice(test, networkAdmin);
const practiceP = await createPractice(test, networkAdmin);
interface Caller {
  label: string;
  id: string;
  token: string;
  role: string;
  client?: boolean;
}
const officeBAdmin: Caller = { label: 'the office admin of office B', role: 'office_admin', ...officeB.admin };
const callers: Caller[] = [
  officeBAdmin,
  { label: 'a physician of office B', role: 'physician', ...officeB.physician },
  { label: 'an API client of office B (every scope)', role: 'office_staff', client: true, ...(await apiClient(officeB.id, officeB.admin.token)) },
  { label: 'a practice admin of practice P', role: 'practice_admin', ...practiceP.admin },
  { label: 'a therapist of practice P', role: 'therapist', ...practiceP.therapist },
];

const everyone = ['physician', 'office_staff', 'office_admin', 'therapist', 'practice_admin'];
const organizationAdmins = ['office_admin', 'practice_admin'];
const officeRoles = ['physician', 'office_staff', 'office_admin'];

interface Route {
  label: string;
  method: Method;
  /** The URL aimed at the target's resource. */
  url: (target: Target) => string;
  /** The id in the URL whose access is decided first: the organization, or the patient. */
  resourceId: (target: Target) => string | undefined;
  /** The resource is a patient, so denied attempts also carry its patientId. */
  patient?: boolean;
  payload?: () => Json;
  /** Roles the route's policy admits, and the scope it asks of API clients (none: closed to them). */
  roles: string[];
  clientScope?: string;
  action: string;
}

const users = (organizationId: string) => `/v1/organizations/${organizationId}/users`;
const apiClients = (organizationId: string) => `/v1/organizations/${organizationId}/api-clients`;
const newUser = () => ({ role: 'office_staff', email: `intruder.${randomBytes(4).toString('hex')}@example.com`, password: defaultPassword, name: 'Intruder' });
const newClient = () => ({ name: 'Intruder EHR', scopes: ['patients:read'] });
// Keys an intruder would like a client to trust (SMART Backend Services): a rotation of someone else's client.
const intruderKeys = () => ({ jwksUrl: 'https://jwks.intruder.example/jwks.json' });
const byOrganization = (target: Target) => target.org;

// Every org-scoped route that takes an id (SPEC §12), with its policy as declared in src/modules.
const routes: Route[] = [
  { label: 'GET /v1/organizations/{id}', method: 'GET', url: (x) => `/v1/organizations/${x.org}`, resourceId: byOrganization, roles: everyone, clientScope: 'any', action: 'organization.read' },
  { label: 'GET /v1/organizations/{id}/users', method: 'GET', url: (x) => users(x.org), resourceId: byOrganization, roles: everyone, action: 'user.list' },
  { label: 'POST /v1/organizations/{id}/users', method: 'POST', url: (x) => users(x.org), resourceId: byOrganization, payload: newUser, roles: organizationAdmins, action: 'user.create' },
  { label: 'GET /v1/organizations/{id}/users/{userId}', method: 'GET', url: (x) => `${users(x.org)}/${x.user}`, resourceId: byOrganization, roles: everyone, action: 'user.read' },
  { label: 'PATCH /v1/organizations/{id}/users/{userId}', method: 'PATCH', url: (x) => `${users(x.org)}/${x.user}`, resourceId: byOrganization, payload: () => ({ name: 'Hijacked' }), roles: organizationAdmins, action: 'user.update' },
  { label: 'GET /v1/organizations/{id}/api-clients', method: 'GET', url: (x) => apiClients(x.org), resourceId: byOrganization, roles: organizationAdmins, action: 'api_client.list' },
  { label: 'POST /v1/organizations/{id}/api-clients', method: 'POST', url: (x) => apiClients(x.org), resourceId: byOrganization, payload: newClient, roles: organizationAdmins, action: 'api_client.create' },
  { label: 'DELETE /v1/organizations/{id}/api-clients/{apiClientId}', method: 'DELETE', url: (x) => `${apiClients(x.org)}/${x.apiClient}`, resourceId: byOrganization, roles: organizationAdmins, action: 'api_client.revoke' },
  { label: 'PATCH /v1/organizations/{id}/api-clients/{apiClientId}', method: 'PATCH', url: (x) => `${apiClients(x.org)}/${x.apiClient}`, resourceId: byOrganization, payload: intruderKeys, roles: organizationAdmins, action: 'api_client.update_keys' },
  { label: 'GET /v1/patients/{id}', method: 'GET', url: (x) => `/v1/patients/${x.patient}`, resourceId: (x) => x.patient, patient: true, roles: officeRoles, clientScope: 'patients:read', action: 'patient.read' },
];

/** Whether the route's policy lets the caller in (the API client holds every scope, so any declared scope will do). */
const admitted = (route: Route, caller: Caller) => route.roles.includes(caller.role) && (!caller.client || route.clientScope !== undefined);

let requestCounter = 0;
/** Calls with a request id of its own, so the audit event of exactly this call can be found. */
async function send(caller: Caller, method: Method, url: string, payload?: Json): Promise<{ response: Response; requestId: string }> {
  const requestId = `isolation-${++requestCounter}-${randomBytes(4).toString('hex')}`;
  const response = await test.request({ method, url, token: caller.token, headers: { 'x-request-id': requestId }, ...(payload ? { payload } : {}) });
  return { response, requestId };
}

async function auditedAs(caller: Caller, requestId: string) {
  return (await auditEvents(test, { actorId: caller.id, outcome: 'denied' })).filter((event) => event.requestId === requestId);
}

/** The parts of a problem that must not tell a foreign record from a missing one. */
const shapeOf = (response: Response) => {
  const { type, title, status, detail, ...rest } = response.json();
  return { type, title, status, detail, members: Object.keys(rest).sort() };
};

/** What a target organization holds, as its network admin sees it. */
async function stateOf(target: Target) {
  const list = async (url: string) => (await test.request({ method: 'GET', url: `${url}?limit=200`, token: networkAdmin })).json().data as Json[];
  return {
    users: (await list(users(target.org))).map(({ id, name, email, active }) => ({ id, name, email, active })),
    apiClients: (await list(apiClients(target.org))).map(({ id, active }) => ({ id, active })),
  };
}
const before = await Promise.all(targets.map(stateOf));

for (const target of targets) {
  for (const route of routes) {
    const resourceId = route.resourceId(target);
    if (resourceId === undefined) continue;
    for (const caller of callers) {
      const status = admitted(route, caller) ? 404 : 403;
      const outcome = status === 404 ? 'gets 404, as for a missing record' : 'gets 403, as the route policy refuses its role';
      t.test(`${route.label} › ${caller.label}, aiming at ${target.label}, ${outcome}, audited as denied`, async (t) => {
        const { response, requestId } = await send(caller, route.method, route.url(target), route.payload?.());
        assertProblem(t, response, status);
        const denied = await auditedAs(caller, requestId);
        t.equal(denied.length, 1, 'one denied audit event for the call');
        const resourceType = route.patient ? 'patient' : 'organization';
        t.match(denied[0], { action: route.action, httpStatus: status, resourceType, resourceId }, 'naming the resource aimed at');
        if (route.patient && status === 404) t.equal(denied[0]?.patientId, resourceId, 'and the patient, for "who tried to see this patient"');

        const missing = await send(caller, route.method, route.url(target).replace(resourceId, randomUUID()), route.payload?.());
        assertProblem(t, missing.response, status);
        t.same(shapeOf(missing.response), shapeOf(response), 'a missing id answers exactly like a foreign one');
      });
    }
  }
}

// A foreign record addressed under the caller's own organization is just as missing.
const ownOrganizationRoutes: { label: string; method: Method; url: (own: string, target: Target) => string; payload?: Json; resourceType: string; id: (target: Target) => string; action: string }[] = [
  { label: 'GET /v1/organizations/{own}/users/{foreign userId}', method: 'GET', url: (own, x) => `${users(own)}/${x.user}`, resourceType: 'user', id: (x) => x.user, action: 'user.read' },
  { label: 'PATCH /v1/organizations/{own}/users/{foreign userId}', method: 'PATCH', url: (own, x) => `${users(own)}/${x.user}`, payload: { name: 'Hijacked' }, resourceType: 'user', id: (x) => x.user, action: 'user.update' },
  { label: 'DELETE /v1/organizations/{own}/api-clients/{foreign apiClientId}', method: 'DELETE', url: (own, x) => `${apiClients(own)}/${x.apiClient}`, resourceType: 'api_client', id: (x) => x.apiClient, action: 'api_client.revoke' },
  { label: 'PATCH /v1/organizations/{own}/api-clients/{foreign apiClientId}', method: 'PATCH', url: (own, x) => `${apiClients(own)}/${x.apiClient}`, payload: intruderKeys(), resourceType: 'api_client', id: (x) => x.apiClient, action: 'api_client.update_keys' },
];
for (const route of ownOrganizationRoutes) {
  for (const target of targets) {
    t.test(`${route.label} › the office admin of office B, aiming at ${target.label}, gets 404 like a missing id, audited as denied`, async (t) => {
      const { response, requestId } = await send(officeBAdmin, route.method, route.url(officeB.id, target), route.payload);
      assertProblem(t, response, 404);
      const denied = await auditedAs(officeBAdmin, requestId);
      t.equal(denied.length, 1, 'one denied audit event for the call');
      t.match(denied[0], { action: route.action, httpStatus: 404, resourceType: route.resourceType, resourceId: route.id(target) });
      const missing = await send(officeBAdmin, route.method, route.url(officeB.id, target).replace(route.id(target), randomUUID()), route.payload);
      t.same(shapeOf(missing.response), shapeOf(response), 'a missing id answers exactly like a foreign one');
    });
  }
}

t.test('tenant isolation › none of the refused requests changed the target organizations', async (t) => {
  t.same(await Promise.all(targets.map(stateOf)), before);
});

t.test("tenant isolation › the target's own members and network admins still reach every resource", async (t) => {
  const get = (url: string, token: string) => test.request({ method: 'GET', url, token });
  const office = targets[0]!;
  t.equal((await get(`/v1/organizations/${office.org}`, officeA.physician.token)).statusCode, 200);
  t.equal((await get(`${users(office.org)}/${office.user}`, officeA.staff.token)).statusCode, 200);
  t.equal((await get(apiClients(office.org), officeA.admin.token)).statusCode, 200);
  t.equal((await get(`/v1/patients/${office.patient}`, officeA.staff.token)).statusCode, 200);
  for (const target of targets) t.equal((await get(`${users(target.org)}/${target.user}`, networkAdmin)).statusCode, 200);
});
