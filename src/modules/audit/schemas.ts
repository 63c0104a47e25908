// Shapes of audit events, their filters, the chain verification and the "who saw this patient" answer.
import { Type, type Static } from 'typebox';
import { PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { auditActorTypes, auditOutcomes, enumOf } from '../../lib/vocabulary.js';

const ActorType = enumOf(auditActorTypes);
const Outcome = enumOf(auditOutcomes);

export const AuditEvent = Type.Object({
  id: Type.Integer({ description: 'Position in the hash chain: gapless, in the order events were appended' }),
  occurredAt: Timestamp,
  actor: Type.Object({
    type: ActorType,
    id: Type.Union([Uuid, Type.Null()]),
    organizationId: Type.Union([Uuid, Type.Null()]),
    role: Type.Union([Type.String(), Type.Null()]),
  }),
  action: Type.String({ examples: ['referral.read'] }),
  resourceType: Type.Union([Type.String(), Type.Null()]),
  resourceId: Type.Union([Type.String(), Type.Null()]),
  patientId: Type.Union([Uuid, Type.Null()]),
  outcome: Outcome,
  httpStatus: Type.Union([Type.Integer(), Type.Null()]),
  requestId: Type.Union([Type.String(), Type.Null()]),
  clientAddress: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  repeatCount: Type.Optional(
    Type.Integer({
      minimum: 1,
      description:
        'Present on a summary of repeated identical refusals: how many more times the refusal recorded just before it in the same window was repeated',
    }),
  ),
  prevHash: Type.String(),
  hash: Type.String({ description: 'sha256 over this event and prevHash' }),
});
export type AuditEvent = Static<typeof AuditEvent>;

export const AuditFilterFields = {
  actorId: Type.Optional(Type.String({ format: 'uuid' })),
  patientId: Type.Optional(Type.String({ format: 'uuid' })),
  resourceType: Type.Optional(Type.String({ minLength: 1, maxLength: 50 })),
  resourceId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Exact action, or a prefix ending in a dot, e.g. referral.' })),
  outcome: Type.Optional(Outcome),
  from: Type.Optional({ ...Timestamp, description: 'Events at or after this time' }),
  to: Type.Optional({ ...Timestamp, description: 'Events before this time' }),
};

export const AuditListQuery = Type.Object({ ...AuditFilterFields, ...PageQuery }, { additionalProperties: false });
export type AuditListQuery = Static<typeof AuditListQuery>;
export const AuditExportQuery = Type.Object(AuditFilterFields, { additionalProperties: false });
export type AuditExportQuery = Static<typeof AuditExportQuery>;

export const ChainVerification = Type.Object({
  valid: Type.Boolean(),
  checked: Type.Integer({ description: 'Events checked' }),
  firstBrokenId: Type.Optional(Type.Integer({ description: 'The first event where the chain breaks (for a deleted event, its id)' })),
  problem: Type.Optional(
    Type.Enum(['modified', 'missing', 'relinked', 'truncated'], {
      description: 'modified: the event differs from what was hashed; missing: the event was deleted; relinked: its link to the previous event is wrong; truncated: events at the end were deleted',
    }),
  ),
});
export type ChainVerification = Static<typeof ChainVerification>;

export const PatientViewersQuery = Type.Object(
  { patientId: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

export const PatientViewers = Type.Object({
  patientId: Uuid,
  data: Type.Array(
    Type.Object({
      actor: Type.Object({
        type: ActorType,
        id: Type.Union([Uuid, Type.Null()]),
        organizationId: Type.Union([Uuid, Type.Null()]),
        role: Type.Union([Type.String(), Type.Null()]),
      }),
      actions: Type.Array(Type.String()),
      accesses: Type.Integer(),
      firstAt: Timestamp,
      lastAt: Timestamp,
    }),
  ),
});
