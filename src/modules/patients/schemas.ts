// Patient shapes: the minimum necessary to identify a patient across office, therapist and EHR.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { Email, IsoDate, PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, sexes } from '../../lib/vocabulary.js';

export const Identifier = component('PatientIdentifier', Type.Object(
  {
    system: Type.String({ minLength: 1, maxLength: 200, description: 'Namespace of the identifier, e.g. urn:riverside:mrn' }),
    value: Type.String({ minLength: 1, maxLength: 100 }),
  },
  { additionalProperties: false },
));

export const CreatePatient = component('CreatePatient', Type.Object(
  {
    givenName: Type.String({ minLength: 1, maxLength: 100 }),
    familyName: Type.String({ minLength: 1, maxLength: 100 }),
    birthDate: IsoDate,
    sex: enumOf(sexes),
    phone: Type.Optional(Type.String({ pattern: '^\\+?[0-9 ()\\-.]{7,20}$' })),
    email: Type.Optional(Email),
    identifiers: Type.Optional(Type.Array(Identifier, { maxItems: 10 })),
  },
  {
    additionalProperties: false,
  },
));
export type CreatePatient = Static<typeof CreatePatient>;

export const Patient = component('Patient', Type.Object({
  id: Uuid,
  organizationId: Uuid,
  givenName: Type.String(),
  familyName: Type.String(),
  birthDate: IsoDate,
  sex: enumOf(sexes),
  phone: Type.Union([Type.String(), Type.Null()]),
  email: Type.Union([Type.String(), Type.Null()]),
  identifiers: Type.Array(Identifier),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}));
export type Patient = Static<typeof Patient>;

export const PatientListQuery = Type.Object(
  {
    identifier: Type.Optional(
      Type.String({ pattern: '^[^|]+\\|[^|]+$', maxLength: 301, description: 'system|value, e.g. urn:riverside:mrn|MRN-0042' }),
    ),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type PatientListQuery = Static<typeof PatientListQuery>;
