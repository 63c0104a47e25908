// Shapes of renewal (recertification) requests, SPEC §14.4.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, renewalStatuses } from '../../lib/vocabulary.js';

const AdditionalVisits = Type.Integer({ minimum: 1, maximum: 100, description: 'Visits to add to visitsAuthorized' });
const ExtendWeeks = Type.Integer({ minimum: 0, maximum: 52, description: 'Weeks to move expiresOn by (from today, if the referral already expired)' });

export const CreateRenewalRequest = component('CreateRenewalRequest', Type.Object(
  {
    additionalVisits: AdditionalVisits,
    extendWeeks: ExtendWeeks,
    justification: Type.String({ minLength: 1, maxLength: 5000 }),
    reportId: Type.Optional(Type.String({ format: 'uuid', description: 'A report of this referral that backs the request' })),
  },
  {
    additionalProperties: false,
  },
));
export type CreateRenewalRequest = Static<typeof CreateRenewalRequest>;

export const ApproveRenewal = component('ApproveRenewal', Type.Object(
  {
    attestation: Type.Literal(true, { description: 'The prescriber orders the additional care' }),
    additionalVisits: Type.Optional({ ...AdditionalVisits, description: 'Default: what was requested' }),
    extendWeeks: Type.Optional({ ...ExtendWeeks, description: 'Default: what was requested' }),
  },
  { additionalProperties: false },
));
export type ApproveRenewal = Static<typeof ApproveRenewal>;

export const DenyRenewal = component('DenyRenewal', Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 2000 }) },
  { additionalProperties: false },
));
export type DenyRenewal = Static<typeof DenyRenewal>;

export const RenewalRequest = component('RenewalRequest', Type.Object({
  id: Uuid,
  referralId: Uuid,
  status: enumOf(renewalStatuses),
  requestedBy: Uuid,
  additionalVisits: Type.Integer(),
  extendWeeks: Type.Integer(),
  justification: Type.String(),
  reportId: Type.Union([Uuid, Type.Null()]),
  decision: Type.Union(
    [
      Type.Object({
        decidedBy: Uuid,
        decidedAt: Timestamp,
        approvedVisits: Type.Union([Type.Integer(), Type.Null()], { description: 'Approved: the visits added' }),
        approvedWeeks: Type.Union([Type.Integer(), Type.Null()], { description: 'Approved: the weeks expiresOn moved by' }),
        reason: Type.Union([Type.String(), Type.Null()], { description: 'Denied: why' }),
        attestation: Type.Union([Type.String(), Type.Null()]),
      }),
      Type.Null(),
    ],
    { description: 'null while pending' },
  ),
  createdAt: Timestamp,
}));
export type RenewalRequest = Static<typeof RenewalRequest>;

export const RenewalParams = Type.Object({ id: Uuid, requestId: Uuid }, { additionalProperties: false });
