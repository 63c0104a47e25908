// A small demo network for the embedded database: one office, two practices, one partner EHR client.
import type { Database, Executor } from '../db/database.js';
import type { Passwords } from '../modules/auth/passwords.js';
import { ApiClientsRepository } from '../modules/network/api-clients-repository.js';
import { OrganizationsRepository } from '../modules/network/organizations-repository.js';
import { UsersRepository, type NewUser } from '../modules/network/users-repository.js';

/** Demo accounts of a local demo database, documented in the README; never seeded on PostgreSQL unless asked. */
export const demoCredentials = {
  password: 'demo-massage-2026',
  users: {
    networkAdmin: 'netadmin@network.example',
    physician: 'dr.lee@riverside.example',
    officeStaff: 'frontdesk@riverside.example',
    officeAdmin: 'admin@riverside.example',
    harborTherapist: 'sam@harbor.example',
    harborTherapist2: 'jo@harbor.example',
    harborAdmin: 'admin@harbor.example',
    eastsideTherapist: 'alex@eastside.example',
    eastsideAdmin: 'admin@eastside.example',
  },
  apiClient: { clientId: 'cli_demo_riverside_ehr', clientSecret: 'cs_demo_riverside_ehr_secret' },
} as const;

export function demoCredentialsMessage(): string {
  const { password, users, apiClient } = demoCredentials;
  return [
    'Demo network seeded. Sign in with POST /v1/auth/token using any of these demo accounts',
    `(password for all: ${password}): ${Object.values(users).join(', ')}.`,
    `Partner API client: client_id ${apiClient.clientId}, client_secret ${apiClient.clientSecret}.`,
  ].join(' ');
}

/** Seeds in the caller's transaction: the repositories are the app's, the transaction is passed to each write. */
export async function seedDemoNetwork(db: Database, tx: Executor, passwords: Passwords): Promise<void> {
  const organizations = new OrganizationsRepository(db);
  const users = new UsersRepository(db);
  const apiClients = new ApiClientsRepository(db);
  const passwordHash = await passwords.hash(demoCredentials.password);
  const { users: emails } = demoCredentials;

  const riverside = await organizations.create({
    kind: 'physician_office',
    name: 'Riverside Family Medicine',
    npi: '1234567893',
    address: { line1: '12 Main St', city: 'Portland', state: 'OR', postalCode: '97201' },
    location: { lat: 45.5231, lng: -122.6765 },
  }, tx);
  const harbor = await organizations.create({
    kind: 'therapy_practice',
    name: 'Harbor Massage Therapy',
    address: { line1: '410 SW Harbor Way', city: 'Portland', state: 'OR', postalCode: '97204' },
    location: { lat: 45.5152, lng: -122.6734 },
  }, tx);
  const eastside = await organizations.create({
    kind: 'therapy_practice',
    name: 'Eastside Bodywork',
    address: { line1: '88 NE Division St', city: 'Gresham', state: 'OR', postalCode: '97030' },
    location: { lat: 45.4984, lng: -122.4302 },
  }, tx);

  const therapist = (license: string, techniques: string[], serviceRadiusKm: number, certifications: string[] = []) => ({
    licenseNumber: license,
    licenseState: 'OR',
    licenseExpiresOn: '2028-06-30',
    techniques,
    certifications,
    acceptingReferrals: true,
    serviceRadiusKm,
    // Verified when the network onboarded them, so the demo matches and accepts as production would.
    licenseVerifiedAt: new Date(),
  });
  const people: NewUser[] = [
    { organizationId: null, role: 'network_admin', email: emails.networkAdmin, name: 'Nia Network', passwordHash },
    { organizationId: riverside.id, role: 'physician', email: emails.physician, name: 'Dana Lee, MD', passwordHash, npi: '1000000004' },
    { organizationId: riverside.id, role: 'office_staff', email: emails.officeStaff, name: 'Pat Front', passwordHash },
    { organizationId: riverside.id, role: 'office_admin', email: emails.officeAdmin, name: 'Riley Admin', passwordHash },
    {
      organizationId: harbor.id, role: 'therapist', email: emails.harborTherapist, name: 'Sam Ortiz, LMT', passwordHash,
      therapist: therapist('MT-12345', ['trigger_point', 'myofascial_release', 'deep_tissue'], 25, ['CMMP']),
    },
    {
      organizationId: harbor.id, role: 'therapist', email: emails.harborTherapist2, name: 'Jo Kim, LMT', passwordHash,
      therapist: therapist('MT-22871', ['swedish', 'lymphatic_drainage', 'prenatal'], 15),
    },
    { organizationId: harbor.id, role: 'practice_admin', email: emails.harborAdmin, name: 'Harbor Admin', passwordHash },
    {
      organizationId: eastside.id, role: 'therapist', email: emails.eastsideTherapist, name: 'Alex Rivera, LMT', passwordHash,
      therapist: therapist('MT-30419', ['deep_tissue', 'sports', 'cupping', 'trigger_point'], 40, ['CMMP', 'NCBTMB']),
    },
    { organizationId: eastside.id, role: 'practice_admin', email: emails.eastsideAdmin, name: 'Eastside Admin', passwordHash },
  ];
  for (const person of people) await users.create(person, tx);

  await apiClients.create({
    organizationId: riverside.id,
    name: 'Riverside EHR (demo)',
    clientId: demoCredentials.apiClient.clientId,
    authMethod: 'client_secret',
    secretHash: await passwords.hash(demoCredentials.apiClient.clientSecret),
    scopes: ['directory:read', 'patients:read', 'patients:write', 'referrals:read', 'referrals:write'],
    createdBy: null,
  }, tx);
}
