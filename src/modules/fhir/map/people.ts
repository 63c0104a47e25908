// Patients, practitioners (users) and organizations as FHIR resources; a resource's id is its /v1 id.
import type { Organization, User } from '../../network/index.js';
import type { Patient } from '../../patients/index.js';
import { systems } from '../codes.js';
import { metaOf, organization } from './references.js';

/** What a patient's record holds in whichever view the caller has of it: the office's full record, or the referral's summary. */
export type PatientRecord = Pick<Patient, 'id' | 'givenName' | 'familyName' | 'birthDate' | 'phone' | 'email'> & { sex: string } & Partial<Pick<Patient, 'identifiers' | 'updatedAt'>>;

export function toPatient(record: PatientRecord) {
  const telecom = [
    ...(record.phone ? [{ system: 'phone', value: record.phone }] : []),
    ...(record.email ? [{ system: 'email', value: record.email }] : []),
  ];
  return {
    resourceType: 'Patient',
    id: record.id,
    ...(record.updatedAt && { meta: metaOf({ updatedAt: record.updatedAt }) }),
    identifier: [{ system: systems.patientId, value: record.id }, ...(record.identifiers ?? []).map(({ system, value }) => ({ system, value }))],
    name: [{ family: record.familyName, given: [record.givenName] }],
    ...(telecom.length > 0 && { telecom }),
    gender: record.sex,
    birthDate: record.birthDate,
  };
}

const npiIdentifier = (npi: string | null) => (npi ? [{ system: systems.npi, value: npi }] : []);

/**
 * A person of the network; a therapist's license is their qualification, its number shown only to
 * their own organization and network admins, as /v1 shows it. No e-mail: it is their sign-in, not a contact.
 */
export function toPractitioner(user: User, { licenseNumber }: { licenseNumber: boolean }) {
  const license = user.therapist?.license;
  return {
    resourceType: 'Practitioner',
    id: user.id,
    meta: metaOf({ updatedAt: user.updatedAt }),
    ...(user.npi && { identifier: npiIdentifier(user.npi) }),
    active: user.active,
    name: [{ text: user.name }],
    ...(license && {
      qualification: [
        {
          ...(licenseNumber && { identifier: [{ system: `${systems.licenseState}:${license.state}`, value: license.number }] }),
          code: { text: `Massage therapist license, ${license.state}${license.verified ? ', verified by the network' : ''}` },
          period: { end: license.expiresOn },
          issuer: { display: `${license.state} massage therapy licensing board` },
        },
      ],
    }),
  };
}

const roleTexts: Record<User['role'], string> = {
  physician: 'Physician',
  office_staff: 'Office staff',
  office_admin: 'Office administrator',
  therapist: 'Licensed massage therapist',
  practice_admin: 'Practice administrator',
  network_admin: 'Network administrator',
};

/** What the person does, and where: one role per user, so its id is the user's. */
export function toPractitionerRole(user: User) {
  return {
    resourceType: 'PractitionerRole',
    id: user.id,
    meta: metaOf({ updatedAt: user.updatedAt }),
    ...(user.npi && { identifier: npiIdentifier(user.npi) }),
    active: user.active,
    practitioner: { reference: `Practitioner/${user.id}` },
    ...(user.organizationId && { organization: organization(user.organizationId) }),
    code: [{ coding: [{ system: systems.role, code: user.role, display: roleTexts[user.role] }], text: roleTexts[user.role] }],
    ...(user.therapist && {
      specialty: user.therapist.techniques.map((technique) => ({ coding: [{ system: systems.technique, code: technique }] })),
      availabilityExceptions: user.therapist.acceptingReferrals ? undefined : 'Not accepting referrals',
    }),
  };
}

export function toOrganization(record: Organization) {
  const { address } = record;
  return {
    resourceType: 'Organization',
    id: record.id,
    meta: metaOf({ updatedAt: record.updatedAt }),
    ...(record.npi && { identifier: npiIdentifier(record.npi) }),
    active: true,
    type: [{ coding: [{ system: systems.organizationType, code: 'prov', display: 'Healthcare Provider' }] }],
    name: record.name,
    address: [
      {
        line: [address.line1, ...(address.line2 ? [address.line2] : [])],
        city: address.city,
        state: address.state,
        postalCode: address.postalCode,
        ...(address.country && { country: address.country }),
      },
    ],
  };
}
