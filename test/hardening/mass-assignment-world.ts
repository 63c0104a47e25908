// The world of the mass-assignment test (mass-assignment.test.ts): the offices, practices and
// people the cases act as, records of other organizations whose real ids an attacker would plant,
// and reading back, as plain records, the rows and API views an attempt could have touched.
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { referralEvents, referrals, therapistProfiles, users, webhookDeliveries, webhookEvents } from '../../src/db/schema.js';
import { defaultPassword, nextNpi, type Json, type TestApp } from '../helper.js';

export type Response = Awaited<ReturnType<TestApp['request']>>;
export type Rec = Record<string, unknown>;

/** Rows as records keyed by table and primary key, so an attempt's effect is the set of rows it created or changed. */
export const keyed = (table: string, key: (row: any) => string) => (rows: Rec[]) => rows.map((row) => ({ ...row, __key: `${table}:${key(row)}` }) as Rec);
export const byId = (table: string) => keyed(table, (row) => row.id);

export type MassAssignmentWorld = Awaited<ReturnType<typeof buildMassAssignmentWorld>>;

export async function buildMassAssignmentWorld(test: TestApp) {
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
  /** A member created by the network admin; a therapist's license is verified unless told (an unverified one is a planted value's witness). */
  async function member(organizationId: string, role: string, signIn = true, licenseVerified = true): Promise<{ id: string; email: string; token: string }> {
    const email = `${mark(role)}@mass.example`;
    const user = await test.create(`/v1/organizations/${organizationId}/users`, adminToken, {
      role,
      email,
      password: defaultPassword,
      name: `${role} member`,
      ...(role === 'physician' ? { npi: nextNpi() } : role === 'therapist' ? { ...therapistProfile, licenseVerified } : {}),
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
  const colleague = await member(practiceId, 'therapist', false, false);

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
  /** A draft the office admin prepared in the physician's name: unsigned until the physician signs it (SPEC §14.1). */
  const unsignedDraft = async () => {
    const { patient: _inline, ...body } = referralBody(mark('unsigned'), { send: false, patientId: sharedPatient.id, prescriberId: office.physician.id });
    const draft = await test.create('/v1/referrals', office.admin.token, body);
    if (draft.signature !== null) throw new Error(`the office admin's draft is signed: ${JSON.stringify(draft.signature)}`);
    return draft;
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

  // Reading back: the rows and API views an attempt could touch.

  async function userRows(): Promise<Rec[]> {
    const rows = await db.select().from(users).leftJoin(therapistProfiles, eq(therapistProfiles.userId, users.id));
    return keyed('users', (row) => row.id)(
      rows.map(({ users: user, therapist_profiles: profile }) => ({
        ...user,
        ...(profile ? { ...profile, licenseVerified: profile.licenseVerifiedAt !== null } : {}),
      })),
    );
  }
  /** A signature's members as columns of their own, so that a planted part of one is found too. */
  const signatureParts = (signature: Json | null | undefined): Rec =>
    signature ? { signedBy: signature.signedBy, signedAt: signature.signedAt, signatureMethod: signature.method, attestation: signature.attestation } : {};
  async function referralRows(id: string): Promise<Rec[]> {
    return [
      ...byId('referrals')((await db.select().from(referrals).where(eq(referrals.id, id))).map((row) => ({ ...row, ...signatureParts(row.signature) }))),
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
        ...signatureParts(referral.signature),
      },
      ...(history?.data ?? []).map((event: Json) => ({ ...event, actorId: event.actor.id, actorOrganizationId: event.actor.organizationId })),
    ];
  }

  return {
    test,
    db,
    planted,
    mark,
    isoDate,
    adminToken,
    office,
    otherOffice,
    practice,
    otherPractice,
    colleague,
    post,
    getJson,
    referralBody,
    newReferral,
    unsignedDraft,
    acceptedReferral,
    noteBody,
    hookBody,
    foreign,
    userRows,
    referralRows,
    signatureParts,
    deliveryRows,
    referralApi,
  };
}
