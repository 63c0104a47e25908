// Shapes of audit events, their filters, the log's checkpoints, proofs and verification (SPEC §15),
// and the "who saw this patient" answer.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { auditActorTypes, auditOutcomes, enumOf } from '../../lib/vocabulary.js';

const ActorType = enumOf(auditActorTypes);
const Outcome = enumOf(auditOutcomes);

export const AuditEvent = component('AuditEvent', Type.Object({
  id: Type.Integer({ description: 'Unique, rising in the order events were written (not committed); rolled-back changes leave gaps' }),
  leafIndex: Type.Optional(
    Type.Integer({
      minimum: 0,
      description:
        "The event's position in the log's Merkle tree, once sequenced (within about a second of its commit). Its leaf hash is SHA-256(0x00 || JCS(this event without leafIndex))",
    }),
  ),
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
}));
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

const Base64Hash = Type.String({ contentEncoding: 'base64', pattern: '^[A-Za-z0-9+/]{43}=$', description: 'A SHA-256 hash in base64' });

export const Checkpoint = component('AuditCheckpoint', Type.Object({
  origin: Type.String({ description: "Names this deployment's log (the C2SP checkpoint origin line)" }),
  treeSize: Type.Integer({ minimum: 0 }),
  rootHash: Base64Hash,
  timestamp: Timestamp,
  keyId: Type.String({ description: 'The RFC 7638 thumbprint of the signing key: the kid of GET /v1/audit-events/public-key' }),
  signature: Type.String({ contentEncoding: 'base64', description: 'Ed25519 over origin + "\n" + treeSize + "\n" + rootHash + "\n"' }),
  note: Type.String({ description: 'The same checkpoint as a C2SP signed note, for transparency-log tooling' }),
}));
export type Checkpoint = Static<typeof Checkpoint>;

export const CheckpointListQuery = Type.Object(
  {
    ...PageQuery,
  },
  { additionalProperties: false },
);

export const PublicKey = component('AuditPublicKey', Type.Object({
  kty: Type.Literal('OKP'),
  crv: Type.Literal('Ed25519'),
  x: Type.String(),
  kid: Type.String(),
  alg: Type.Literal('EdDSA'),
  use: Type.Literal('sig'),
}));

export const AuditEventParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

export const InclusionProofQuery = Type.Object(
  {
    treeSize: Type.Optional(
      Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: "The tree to prove inclusion in; the latest checkpoint's by default" }),
    ),
  },
  { additionalProperties: false },
);

export const InclusionProof = component('InclusionProof', Type.Object({
  leafIndex: Type.Integer({ minimum: 0 }),
  treeSize: Type.Integer({ minimum: 1 }),
  leafHash: Base64Hash,
  hashes: Type.Array(Base64Hash, { description: 'The RFC 9162 §2.1.3 inclusion path, from the leaf up' }),
}));

export const ConsistencyQuery = Type.Object(
  {
    from: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The older tree size (0: the empty tree, which every tree extends)' }),
    to: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The newer tree size, at most the tree size of the latest checkpoint' }),
  },
  { additionalProperties: false },
);

export const ConsistencyProof = component('ConsistencyProof', Type.Object({
  from: Type.Integer({ minimum: 0 }),
  to: Type.Integer({ minimum: 1 }),
  hashes: Type.Array(Base64Hash, { description: 'The RFC 9162 §2.1.4 consistency proof' }),
}));

export const logProblems = ['missing', 'modified', 'nodes-modified', 'bad-signature'] as const;

export const LogVerification = component('AuditLogVerification', Type.Union([
  Type.Object({
    valid: Type.Literal(true),
    treeSize: Type.Integer({ minimum: 0, description: 'Events checked: the tree size of the latest signed checkpoint' }),
    unsequenced: Type.Integer({ minimum: 0, description: 'Events written since, not yet in a signed checkpoint (never a sign of tampering)' }),
  }),
  Type.Object({
    valid: Type.Literal(false),
    firstBrokenIndex: Type.Integer({ minimum: 0, description: 'The first leaf index where the log no longer matches what was signed' }),
    problem: Type.Enum([...logProblems], {
      description:
        "missing: the leaf's event was deleted; modified: the event differs from what was signed (at this leaf, or at or after it when its hashes were rewritten too); nodes-modified: the stored tree's hashes differ from the events'; bad-signature: a checkpoint's signature does not verify with the log's public key",
    }),
  }),
]));
export type LogVerification = Static<typeof LogVerification>;

export const PatientViewersQuery = Type.Object(
  { patientId: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

export const PatientViewers = component('PatientViewers', Type.Object({
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
}));
