// Shapes of organizations, their users and API clients, and the therapist directory.
import { Type, type Static } from 'typebox';
import { techniques } from '../../lib/catalog.js';
import { component } from '../../lib/components.js';
import { Address, Email, IsoDate, Location, Npi, PageQuery, Password, Timestamp, Uuid } from '../../lib/schemas.js';
import type { FieldProblem } from '../../lib/errors.js';
import { npiProblem } from '../../lib/npi.js';
import { apiClientScopes } from '../auth/policy.js';
import { JwkSet } from '../auth/schemas.js';
import { apiClientAuthMethods, OrganizationKind, StaffRole, staffRolesOf, UserRole } from '../../lib/vocabulary.js';

const TechniqueCode = Type.Enum([...techniques]);

/**
 * Who carries an NPI (SPEC §2, §14.9): physicians and offices must, for the orders they sign;
 * therapists (Type 1, individual) and practices (Type 2, organizational) may, for the claims they
 * bill; nobody else has one to give.
 */
type NpiRule = 'required' | 'optional';
export const npiRuleOfRole: Partial<Record<UserRole, NpiRule>> = { physician: 'required', therapist: 'optional' };
export const npiRuleOfKind: Record<OrganizationKind, NpiRule> = { physician_office: 'required', therapy_practice: 'optional' };
const npiHolderRoles = Object.keys(npiRuleOfRole).map((role) => `a ${role}`).join(' or ');

/** The NPI of a body as the holder's rule takes it, named `npi` when refused; `holder` names the kind of holder in the message. */
export function npiRuleProblem(npi: string | null | undefined, rule: NpiRule | undefined, holder: string): FieldProblem | undefined {
  if (rule === undefined) return npi === undefined ? undefined : { field: 'npi', message: `is only taken for ${npiHolderRoles}` };
  if (npi === null) return rule === 'required' ? { field: 'npi', message: `is required for ${holder}` } : undefined;
  if (npi === undefined && rule === 'optional') return undefined;
  return npiProblem(npi, holder, true);
}

const UsState = Type.String({ pattern: '^[A-Z]{2}$', description: 'Two-letter state code' });

export const CreateOrganization = component('CreateOrganization', Type.Object(
  {
    kind: OrganizationKind,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    npi: Type.Optional(Npi),
    address: Address,
    location: Location,
  },
  {
    additionalProperties: false,
    description: 'An NPI is required for a physician office and optional for a therapy practice (its Type 2 NPI, the billing provider of its claims); unique across organizations.',
  },
));
export type CreateOrganization = Static<typeof CreateOrganization>;

export const Organization = component('Organization', Type.Object({
  id: Uuid,
  kind: OrganizationKind,
  name: Type.String(),
  npi: Type.Union([Type.String(), Type.Null()]),
  address: Address,
  location: Location,
  createdAt: Timestamp,
  updatedAt: Timestamp,
}));
export type Organization = Static<typeof Organization>;

export const OrganizationListQuery = Type.Object(
  { kind: Type.Optional(OrganizationKind), ...PageQuery },
  { additionalProperties: false },
);
export type OrganizationListQuery = Static<typeof OrganizationListQuery>;

const License = Type.Object(
  {
    number: Type.String({ minLength: 1, maxLength: 50 }),
    state: UsState,
    expiresOn: IsoDate,
  },
  { additionalProperties: false },
);

/** Roles as a sentence names them: a, b or c. */
const roleList = (roles: readonly string[]) => `${roles.slice(0, -1).join(', ')} or ${roles.at(-1)}`;

export const CreateUser = component('CreateUser', Type.Object(
  {
    role: StaffRole,
    email: Email,
    password: Password,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    npi: Type.Optional(Npi),
    license: Type.Optional(License),
    techniques: Type.Optional(Type.Array(TechniqueCode, { minItems: 1, maxItems: techniques.length, uniqueItems: true })),
    certifications: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 20, uniqueItems: true })),
    acceptingReferrals: Type.Optional(Type.Boolean()),
    serviceRadiusKm: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    licenseVerified: Type.Optional(
      Type.Boolean({ description: 'Network admins only: the license was checked with the state board when onboarding the therapist' }),
    ),
  },
  {
    additionalProperties: false,
    description:
      `The role must fit the organization: ${roleList(staffRolesOf.physician_office)} in an office; ${roleList(staffRolesOf.therapy_practice)} in a practice. ` +
      'Physicians need an npi; a therapist may give theirs (Type 1, the rendering provider of their claims); other roles take none. ' +
      'Therapists need license, techniques and serviceRadiusKm. ' +
      'A therapist is matched and may accept referrals only once a network admin has verified a current license (licenseVerified).',
  },
));
export type CreateUser = Static<typeof CreateUser>;

export const TherapistProfile = component('TherapistProfile', Type.Object({
  license: Type.Object({
    number: Type.String(),
    state: Type.String(),
    expiresOn: IsoDate,
    verified: Type.Boolean({ description: 'Verified by a network admin' }),
  }),
  techniques: Type.Array(TechniqueCode),
  certifications: Type.Array(Type.String()),
  acceptingReferrals: Type.Boolean(),
  serviceRadiusKm: Type.Integer(),
}));
export type TherapistProfile = Static<typeof TherapistProfile>;

export const User = component('User', Type.Object({
  id: Uuid,
  organizationId: Type.Union([Uuid, Type.Null()]),
  role: UserRole,
  email: Email,
  name: Type.String(),
  npi: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
  therapist: Type.Union([TherapistProfile, Type.Null()]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}));
export type User = Static<typeof User>;

export const UpdateUser = component('UpdateUser', Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    npi: Type.Optional(
      Type.Union([Npi, Type.Null()], { description: "A physician's or therapist's NPI; null removes a therapist's (a physician's is required)" }),
    ),
    active: Type.Optional(Type.Boolean({ description: 'false signs the user out everywhere and refuses their tokens' })),
    techniques: Type.Optional(Type.Array(TechniqueCode, { minItems: 1, maxItems: techniques.length, uniqueItems: true })),
    certifications: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 20, uniqueItems: true })),
    acceptingReferrals: Type.Optional(Type.Boolean()),
    serviceRadiusKm: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    license: Type.Optional(License),
    licenseVerified: Type.Optional(Type.Boolean({ description: 'Network admins only' })),
  },
  { additionalProperties: false, minProperties: 1 },
));
export type UpdateUser = Static<typeof UpdateUser>;

export const UserParams = Type.Object({ id: Uuid, userId: Uuid }, { additionalProperties: false });
export type UserParams = Static<typeof UserParams>;

export const UserListQuery = Type.Object(
  {
    role: Type.Optional(StaffRole),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type UserListQuery = Static<typeof UserListQuery>;

const JwksUrl = Type.String({
  minLength: 1,
  maxLength: 2000,
  description: 'https URL serving the JSON Web Key Set (public keys) the client signs its assertions with; fetched when needed and cached for 10 minutes',
});

export const CreateApiClient = component('CreateApiClient', Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    scopes: Type.Array(Type.Enum([...apiClientScopes]), { minItems: 1, uniqueItems: true }),
    authMethod: Type.Optional(
      Type.Enum([...apiClientAuthMethods], {
        default: 'client_secret',
        description:
          'client_secret (default): the answer carries a secret. private_key_jwt (SMART Backend Services): no secret; the client signs assertions with the keys of jwks or jwksUrl',
      }),
    ),
    jwks: Type.Optional(JwkSet),
    jwksUrl: Type.Optional(JwksUrl),
  },
  {
    additionalProperties: false,
  },
));
export type CreateApiClient = Static<typeof CreateApiClient>;

/** New keys for a private_key_jwt client: one of the two, replacing whichever it had. */
export const ReplaceApiClientKeys = component('ReplaceApiClientKeys', Type.Object(
  { jwks: Type.Optional(JwkSet), jwksUrl: Type.Optional(JwksUrl) },
  { additionalProperties: false, description: 'Exactly one of jwks and jwksUrl' },
));
export type ReplaceApiClientKeys = Static<typeof ReplaceApiClientKeys>;

export const ApiClient = component('ApiClient', Type.Object({
  id: Uuid,
  organizationId: Uuid,
  name: Type.String(),
  clientId: Type.String({ description: 'Public identifier used as client_id' }),
  scopes: Type.Array(Type.Enum([...apiClientScopes])),
  authMethod: Type.Enum([...apiClientAuthMethods]),
  jwksUrl: Type.Union([Type.String(), Type.Null()], { description: 'private_key_jwt: the URL its keys are fetched from, if it registered one' }),
  keyIds: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'private_key_jwt: the kid of each key it registered, if it registered a key set' }),
  active: Type.Boolean(),
  createdAt: Timestamp,
  revokedAt: Type.Union([Timestamp, Type.Null()]),
}));
export type ApiClient = Static<typeof ApiClient>;

export const ApiClientWithSecret = component('ApiClientWithSecret', Type.Intersect([
  ApiClient,
  Type.Object({
    clientSecret: Type.Optional(
      Type.String({
        description:
          'client_secret clients: shown only in the answer that creates the client; store it now. Absent from a replay of that answer (same Idempotency-Key), and for private_key_jwt clients',
      }),
    ),
  }),
]));
export type ApiClientWithSecret = Static<typeof ApiClientWithSecret>;

export const ApiClientParams = Type.Object({ id: Uuid, apiClientId: Uuid }, { additionalProperties: false });
export type ApiClientParams = Static<typeof ApiClientParams>;

export const ApiClientListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export type ApiClientListQuery = Static<typeof ApiClientListQuery>;

export const TherapistSearchQuery = Type.Object(
  {
    technique: Type.Optional(TechniqueCode),
    near: Type.Optional(
      Type.String({
        pattern: '^-?\\d{1,2}(\\.\\d+)?,-?\\d{1,3}(\\.\\d+)?$',
        description: 'lat,lng of the patient, e.g. 45.5231,-122.6765; orders results by distance',
        examples: ['45.5231,-122.6765'],
      }),
    ),
    radiusKm: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: 'Only with near' })),
    accepting: Type.Optional(Type.Boolean({ description: 'Only therapists accepting referrals (true) or not (false)' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type TherapistSearchQuery = Static<typeof TherapistSearchQuery>;

export const DirectoryTherapist = component('DirectoryTherapist', Type.Object({
  id: Uuid,
  name: Type.String(),
  practice: Type.Object({ id: Uuid, name: Type.String(), address: Address, location: Location }),
  techniques: Type.Array(TechniqueCode),
  certifications: Type.Array(Type.String()),
  acceptingReferrals: Type.Boolean(),
  serviceRadiusKm: Type.Integer(),
  license: Type.Object({ state: Type.String(), expiresOn: IsoDate, verified: Type.Boolean() }),
  distanceKm: Type.Union([Type.Number(), Type.Null()], { description: 'Great-circle distance from near, if given' }),
}));
export type DirectoryTherapist = Static<typeof DirectoryTherapist>;
