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
    examples: [{ additionalVisits: 6, extendWeeks: 4, justification: 'ODI improved 44 → 30; goal of ≤ 20 not met yet. Plan: 2×/week for 3 more weeks.' }],
  },
));
export type CreateRenewalRequest = Static<typeof CreateRenewalRequest>;

export const ApproveRenewal = component('ApproveRenewal', Type.Object(
  {
    attestation: Type.Literal(true, { description: 'The prescriber orders the additional care' }),
    additionalVisits: Type.Optional({ ...AdditionalVisits, description: 'Default: what was requested' }),
    extendWeeks: Type.Optional({ ...ExtendWeeks, description: 'Default: what was requested' }),
  },
  { additionalProperties: false, examples: [{ attestation: true }, { attestation: true, additionalVisits: 4 }] },
));
export type ApproveRenewal = Static<typeof ApproveRenewal>;

export const DenyRenewal = component('DenyRenewal', Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 2000 }) },
  { additionalProperties: false, examples: [{ reason: 'Refer back for re-evaluation first' }] },
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
}, {
  examples: [
    {
      id: '3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d',
      referralId: '0b8e7f8e-8d3c-4d5e-9f4a-1b2c3d4e5f60',
      status: 'approved',
      requestedBy: '7c6b5a49-3827-4165-a4b3-c2d1e0f9a8b7',
      additionalVisits: 6,
      extendWeeks: 4,
      justification: 'ODI improved 44 to 30; the goal of 20 or less is not met yet.',
      reportId: '5d0c7b1e-3f6a-4e2b-9c8d-7a6b5c4d3e2f',
      decision: {
        decidedBy: '1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a',
        decidedAt: '2027-01-05T15:00:00.000Z',
        approvedVisits: 6,
        approvedWeeks: 4,
        reason: null,
        attestation: 'I order the additional care approved here.',
      },
      createdAt: '2027-01-05T10:00:00.000Z',
    },
  ],
}));
export type RenewalRequest = Static<typeof RenewalRequest>;

export const RenewalParams = Type.Object({ id: Uuid, requestId: Uuid }, { additionalProperties: false });
