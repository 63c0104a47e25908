// The principals of the policy property test (policy-property.test.ts), made once through the API:
// two offices and two practices laid out as the oracle (policy-oracle.ts) describes them, with a
// member of every role, partner API clients of several scopes, and the network admin.
import { randomBytes } from 'node:crypto';
import { defaultPassword, nextNpi, type Json, type TestApp } from '../helper.js';
import { practiceLocations, serviceRadiusKm, therapistKeys, therapistProfiles, type OfficeKey, type PracticeKey, type Principal, type Side, type TherapistKey } from './policy-oracle.js';

const tag = () => randomBytes(4).toString('hex');
const allScopes = ['referrals:read', 'referrals:write', 'patients:read', 'patients:write'];

export async function buildPolicyNetwork(test: TestApp) {
  const networkAdminToken = await test.loginAsAdmin();

  async function signInClient(clientId: string, clientSecret: string): Promise<string> {
    const response = await test.request({ method: 'POST', url: '/v1/auth/token', payload: { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret } });
    if (response.statusCode !== 200) throw new Error(`client_credentials failed: ${response.statusCode} ${response.body}`);
    return response.json().access_token;
  }

  async function user(org: OfficeKey | PracticeKey, orgId: string, side: Side, role: Principal['role'], key: string, extra: Json = {}): Promise<Principal> {
    const email = `${key.replace('.', '-').toLowerCase()}.${tag()}@policy.example`;
    const created = await test.create(`/v1/organizations/${orgId}/users`, networkAdminToken, { role, email, password: defaultPassword, name: `${key} ${tag()}`, ...extra });
    const signIn = () => test.login(email);
    return { key, side, org, role, client: false, scopes: [], id: created.id, token: await signIn(), signIn };
  }

  async function client(org: OfficeKey | PracticeKey, orgId: string, side: Side, key: string, scopes: string[]): Promise<Principal> {
    const created = await test.create(`/v1/organizations/${orgId}/api-clients`, networkAdminToken, { name: key, scopes });
    const signIn = () => signInClient(created.clientId, created.clientSecret);
    const role = side === 'office' ? 'office_staff' : 'practice_admin';
    return { key, side, org, role, client: true, scopes, id: created.id, token: await signIn(), signIn };
  }

  const orgIds = {} as Record<OfficeKey | PracticeKey, string>;
  const principals: Principal[] = [];

  for (const office of ['A', 'B'] as const) {
    const created = await test.create('/v1/organizations', networkAdminToken, {
      kind: 'physician_office',
      name: `Office ${office} ${tag()}`,
      npi: nextNpi(),
      address: { line1: '1 Test St', city: 'Eugene', state: 'OR', postalCode: '97401' },
      location: { lat: 44.05, lng: -123.09 },
    });
    orgIds[office] = created.id;
    principals.push(await user(office, created.id, 'office', 'physician', `${office}.physician`, { npi: nextNpi() }));
    // Every office role and kind of client once, not in both offices: each principal costs feed
    // reads, and the oracle gives all of an office's principals the same referrals. (The writing
    // EHRs are two kinds: A's vouches for its prescribers' signatures, B's does not.)
    if (office === 'A') {
      principals.push(
        await user(office, created.id, 'office', 'office_staff', 'A.staff'),
        // An EHR that vouches for its prescribers (SPEC §14.1): its referrals are created signed.
        await client(office, created.id, 'office', 'A.client', [...allScopes, 'referrals:sign']),
        // A read-only EHR feed: it lists and reads referrals; every write and patient route is closed to it.
        await client(office, created.id, 'office', 'A.feed', ['referrals:read']),
      );
    } else {
      principals.push(
        await user(office, created.id, 'office', 'office_admin', 'B.admin'),
        // An EHR that does not vouch (no referrals:sign, SPEC §14.1): it drafts, and its physician signs.
        await client(office, created.id, 'office', 'B.client', allScopes),
      );
    }
  }
  for (const practice of ['P1', 'P2'] as const) {
    const created = await test.create('/v1/organizations', networkAdminToken, {
      kind: 'therapy_practice',
      name: `Practice ${practice} ${tag()}`,
      address: { line1: '2 Test Ave', city: 'Eugene', state: 'OR', postalCode: '97401' },
      location: practiceLocations[practice],
    });
    orgIds[practice] = created.id;
    for (const therapist of therapistKeys.filter((key) => therapistProfiles[key].practice === practice)) {
      const profile = therapistProfiles[therapist];
      const principal = await user(practice, created.id, 'practice', 'therapist', therapist, {
        license: { number: `MT-${tag()}`, state: 'OR', expiresOn: '2030-12-31' },
        licenseVerified: profile.licensed,
        techniques: profile.techniques,
        acceptingReferrals: profile.accepting,
        serviceRadiusKm,
      });
      principals.push({ ...principal, therapist });
    }
    principals.push(await user(practice, created.id, 'practice', 'practice_admin', `${practice}.admin`));
    if (practice === 'P1') principals.push(await client(practice, created.id, 'practice', 'P1.client', ['referrals:read', 'referrals:write']));
  }
  const networkAdminId: string = (await test.request({ method: 'GET', url: '/v1/me', token: networkAdminToken })).json().id;
  principals.push({ key: 'network-admin', side: 'network', org: null, role: 'network_admin', client: false, scopes: [], id: networkAdminId, token: networkAdminToken, signIn: () => test.loginAsAdmin() });

  const byKey = new Map(principals.map((principal) => [principal.key, principal]));
  const principalOf = (key: string) => byKey.get(key)!;
  const therapistIds = Object.fromEntries(therapistKeys.map((key) => [key, principalOf(key).id])) as Record<TherapistKey, string>;
  const officePrincipals = principals.filter((principal) => principal.side === 'office');
  const practicePrincipals = principals.filter((principal) => principal.side === 'practice');
  const physicianOf = (office: OfficeKey) => principalOf(`${office}.physician`);

  let signedInAt = Date.now();
  /** Access tokens live 15 minutes; a slow machine must not turn expiry into counterexamples. */
  async function keepSignedIn(): Promise<void> {
    if (Date.now() - signedInAt < 10 * 60_000) return;
    for (const principal of principals) principal.token = await principal.signIn();
    signedInAt = Date.now();
  }

  return { networkAdminToken, orgIds, principals, principalOf, therapistIds, officePrincipals, practicePrincipals, physicianOf, keepSignedIn };
}
