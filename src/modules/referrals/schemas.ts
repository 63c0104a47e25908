// Shapes of a referral (the massage prescription), its target, its transitions and its history (SPEC §3).
import { Type, type Static } from 'typebox';
import { bodyRegions, techniques } from '../../lib/catalog.js';
import { component } from '../../lib/components.js';
import { IsoDate, Location, PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, referralActorTypes, referralPriorities, referralStatuses, ReferralStatus, signatureMethods } from '../../lib/vocabulary.js';
import { CreatePatient } from '../patients/schemas.js';

export const TechniqueCode = component('Technique', Type.Enum([...techniques]));
export const BodyRegionCode = component('BodyRegion', Type.Enum([...bodyRegions]));
export const CptCode = Type.String({ pattern: '^\\d{5}$', description: 'CPT code, 5 digits (e.g. 97124 massage, 97140 manual therapy)' });

// ICD-10-CM: a letter (not U), a digit, a digit or letter, then optionally a dot and 1–4 more.
export const Icd10Code = Type.String({
  pattern: '^[A-TV-Z][0-9][0-9A-Z](\\.[0-9A-Z]{1,4})?$',
  description: 'ICD-10-CM code, e.g. M54.50, G44.209, M79.7',
});

export const Diagnosis = component('Diagnosis', Type.Object(
  {
    code: Icd10Code,
    display: Type.String({ minLength: 1, maxLength: 300 }),
  },
  { additionalProperties: false },
));
export type Diagnosis = Static<typeof Diagnosis>;

export const Insurance = component('Insurance', Type.Object(
  {
    payer: Type.String({ minLength: 1, maxLength: 200 }),
    memberId: Type.String({ minLength: 1, maxLength: 100 }),
    groupNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    authorizationNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    cptCodes: Type.Optional(Type.Array(CptCode, { maxItems: 10, uniqueItems: true, description: 'Suggested CPT codes' })),
  },
  { additionalProperties: false },
));
export type Insurance = Static<typeof Insurance>;

export const NetworkTarget = component('NetworkTarget', Type.Object(
  {
    techniques: Type.Optional(
      Type.Array(TechniqueCode, { minItems: 1, maxItems: 11, uniqueItems: true, description: "Techniques a therapist must offer; default the referral's" }),
    ),
    near: Location,
    radiusKm: Type.Number({ exclusiveMinimum: 0, maximum: 500 }),
  },
  { additionalProperties: false, description: 'An open offer to every matching therapist who accepts referrals; the first to accept wins' },
));
export type NetworkTarget = Static<typeof NetworkTarget>;

/** A network target as kept and shown once sent: the techniques resolved. */
export const NetworkOffer = component('NetworkOffer', Type.Object({ techniques: Type.Array(TechniqueCode), near: Location, radiusKm: Type.Number() }));
export type NetworkOffer = Static<typeof NetworkOffer>;

/** Exactly one of these names who the referral goes to (checked by the server, which names the fields). */
const TargetFields = {
  therapistId: Type.Optional(Type.String({ format: 'uuid', description: 'One therapist' })),
  practiceId: Type.Optional(Type.String({ format: 'uuid', description: 'Any therapist of this practice' })),
  network: Type.Optional(NetworkTarget),
};

export const CreateReferral = component('CreateReferral', Type.Object(
  {
    patientId: Type.Optional(Type.String({ format: 'uuid', description: "An existing patient of the caller's office" })),
    patient: Type.Optional(CreatePatient),
    prescriberId: Type.Optional(
      Type.String({ format: 'uuid', description: 'The prescribing physician of the office; defaults to the caller when the caller is a physician' }),
    ),
    diagnoses: Type.Array(Diagnosis, { minItems: 1, maxItems: 12, description: 'The first is primary' }),
    reason: Type.String({ minLength: 1, maxLength: 2000 }),
    goals: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { maxItems: 20 })),
    precautions: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { maxItems: 20 })),
    contraindications: Type.Optional(Type.String({ maxLength: 2000 })),
    techniques: Type.Array(TechniqueCode, { minItems: 1, maxItems: 11, uniqueItems: true }),
    bodyRegions: Type.Array(BodyRegionCode, { minItems: 1, maxItems: 25, uniqueItems: true }),
    frequencyPerWeek: Type.Integer({ minimum: 1, maximum: 7 }),
    durationWeeks: Type.Integer({ minimum: 1, maximum: 52 }),
    sessionMinutes: Type.Integer({ minimum: 15, maximum: 120 }),
    visitsAuthorized: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Default frequencyPerWeek × durationWeeks (at most 100)' })),
    reportEveryVisits: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 30, default: 10, description: 'A progress report is due after this many visits since the last report' }),
    ),
    continuesReferralId: Type.Optional(
      Type.String({ format: 'uuid', description: "A completed or expired course of the same patient and office that this new course continues; both show the link" }),
    ),
    startDate: Type.Optional({ ...IsoDate, description: 'Default today' }),
    expiresOn: Type.Optional({ ...IsoDate, description: 'After startDate, not in the past; default startDate + 90 days' }),
    priority: Type.Optional(enumOf(referralPriorities, { default: 'routine' })),
    insurance: Type.Optional(Insurance),
    ...TargetFields,
    send: Type.Optional(Type.Boolean({ default: false, description: 'Send at once; otherwise the referral is a draft' })),
  },
  {
    additionalProperties: false,
    description: 'Give exactly one of patientId and patient, and exactly one of therapistId, practiceId and network.',
  },
));
export type CreateReferral = Static<typeof CreateReferral>;

export const PatientSummary = component('PatientSummary', Type.Object(
  {
    id: Uuid,
    givenName: Type.String(),
    familyName: Type.String(),
    birthDate: IsoDate,
    sex: Type.String(),
    phone: Type.Union([Type.String(), Type.Null()]),
    email: Type.Union([Type.String(), Type.Null()]),
  },
  { description: 'The patient in full, as the office and the accepting side see them' },
));
export type PatientSummary = Static<typeof PatientSummary>;

export const LimitedPatient = component('LimitedPatient', Type.Object(
  {
    limited: Type.Literal(true, { description: 'Marks this form; the full form has no such member' }),
    ageYears: Type.Integer({ minimum: 0, description: 'Whole years on the day of the answer' }),
    sex: Type.String(),
    city: Type.Union([Type.String(), Type.Null()], { description: 'Null while the service keeps no patient address' }),
  },
  {
    description:
      'The patient before acceptance (SPEC §14.8): a therapy practice deciding on an offer sees no name, birth date, identifiers or contact',
  },
));
export type LimitedPatient = Static<typeof LimitedPatient>;

export const LimitedInsurance = component('LimitedInsurance', Type.Object({ payer: Type.String() }, { description: 'The insurance before acceptance: the payer only' }));
export type LimitedInsurance = Static<typeof LimitedInsurance>;

export const PainScores = component('PainScores', Type.Object({
  visitNumber: Type.Integer(),
  before: Type.Integer({ minimum: 0, maximum: 10 }),
  after: Type.Integer({ minimum: 0, maximum: 10 }),
}));
export type PainScores = Static<typeof PainScores>;

export const OutcomeScore = component('OutcomeScore', Type.Object({
  instrument: Type.String(),
  name: Type.Optional(Type.String()),
  score: Type.Number(),
  visitNumber: Type.Integer(),
}));
export type OutcomeScore = Static<typeof OutcomeScore>;

export const ProgressSummary = component('ProgressSummary', Type.Object(
  {
    visitsUsed: Type.Integer(),
    visitsAuthorized: Type.Integer(),
    visitsRemaining: Type.Integer(),
    firstPain: Type.Union([PainScores, Type.Null()]),
    latestPain: Type.Union([PainScores, Type.Null()]),
    latestOutcomeScores: Type.Array(OutcomeScore, { description: 'The latest score of each instrument' }),
  },
  { description: 'Progress so far, from the visit notes' },
));

/** A referral as its office sees it. */
export const Signature = component('ReferralSignature', Type.Object(
  {
    signedBy: { ...Uuid, description: 'The prescriber whose order this is' },
    signedAt: Timestamp,
    method: Type.Enum([...signatureMethods], {
      description: "physician: the prescriber signed through this API; ehr_attested: the office's EHR (scope referrals:sign) vouches that the prescriber signed in the EHR",
    }),
    attestation: Type.String({ description: 'The statement the signer attested to, as it was shown' }),
  },
  { additionalProperties: false },
));
export type Signature = Static<typeof Signature>;

export const ReferralHold = component('ReferralHold', Type.Object(
  {
    since: Timestamp,
    adverseEventId: { ...Uuid, description: 'The adverse event that paused treatment' },
  },
  { additionalProperties: false },
));
export type ReferralHold = Static<typeof ReferralHold>;

export const Referral = component('Referral', Type.Object(
  {
    id: Uuid,
    status: ReferralStatus,
    version: Type.Integer({ description: 'Increases with every change; sent as the ETag' }),
    organizationId: Uuid,
    patientId: Type.Union([Uuid, Type.Null()], { description: 'Null in the limited view, where the patient is not identified' }),
    patient: Type.Union([PatientSummary, LimitedPatient], {
      description:
        'In full for the office and, once it is accepted, for the accepting therapist and their practice; ' +
        'before that the practice side gets the limited form (limited: true), and insurance only its payer',
    }),
    prescriberId: Uuid,
    diagnoses: Type.Array(Diagnosis),
    reason: Type.String(),
    goals: Type.Array(Type.String()),
    precautions: Type.Array(Type.String()),
    contraindications: Type.String(),
    techniques: Type.Array(TechniqueCode),
    bodyRegions: Type.Array(BodyRegionCode),
    frequencyPerWeek: Type.Integer(),
    durationWeeks: Type.Integer(),
    sessionMinutes: Type.Integer(),
    visitsAuthorized: Type.Integer(),
    startDate: IsoDate,
    expiresOn: IsoDate,
    priority: enumOf(referralPriorities),
    // The full form first: the serializer takes the first branch that fits, and the limited one would fit it too.
    insurance: Type.Union([Insurance, LimitedInsurance, Type.Null()]),
    therapistId: Type.Union([Uuid, Type.Null()]),
    practiceId: Type.Union([Uuid, Type.Null()]),
    network: Type.Union([NetworkOffer, Type.Null()]),
    acceptedBy: Type.Union([Type.Object({ therapistId: Uuid, practiceId: Uuid, at: Timestamp }), Type.Null()]),
    signature: Type.Union([Signature, Type.Null()], { description: 'The signed order; null until the prescriber signs (a draft cannot be sent before)' }),
    progress: ProgressSummary,
    continuesReferralId: Type.Union([Uuid, Type.Null()], { description: 'The earlier course this referral continues' }),
    continuedByReferralId: Type.Union([Uuid, Type.Null()], { description: 'The later course that continues this referral' }),
    reportEveryVisits: Type.Integer({ description: 'A report to the prescriber is due after this many visits since the last one' }),
    reportDue: Type.Object(
      {
        afterVisit: Type.Integer({ description: 'The visit after which the next report is due' }),
        overdue: Type.Boolean({ description: 'A visit was recorded past afterVisit with no report since (open referrals only)' }),
      },
      { description: 'Report cadence (SPEC §14.3)' },
    ),
    activity: Type.Object(
      {
        lastAt: Type.Union([Timestamp, Type.Null()], {
          description: 'When something last happened in the thread: a message, visit note, addendum, report, signature, renewal request, document, appointment, adverse event or acknowledgement',
        }),
        unreadMessages: Type.Integer({ minimum: 0, description: "Messages by others after the caller's read marker (0 for whoever is not in the thread)" }),
        unacknowledgedUrgent: Type.Integer({
          minimum: 0,
          description:
            "Urgent messages and adverse events not yet acknowledged that the caller's side is the one to acknowledge (SPEC §14.10): " +
            "for the office, the therapist side's urgent messages and every adverse event; for the therapist side of the care team, the office's urgent messages; 0 for anyone else",
        }),
      },
      { description: "The thread as the caller sees it (SPEC §14.7); updatedAt and the sync position move with it" },
    ),
    hold: Type.Union([ReferralHold, Type.Null()], {
      description: 'Treatment on hold after a severe adverse event with treatmentPaused (SPEC §14.10): visit notes are refused until the prescriber resumes; null when not on hold',
    }),
    nextAppointmentAt: Type.Union([Timestamp, Type.Null()], { description: 'The earliest appointment still scheduled from now on (SPEC §14.5)' }),
    noShows: Type.Integer({ minimum: 0, description: 'Appointments the patient did not come to' }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  }
));
export type Referral = Static<typeof Referral>;

export const ReferralListQuery = Type.Object(
  {
    status: Type.Optional(
      Type.String({
        pattern: `^(${referralStatuses.join('|')})(,(${referralStatuses.join('|')}))*$`,
        description: 'One status or several, comma-separated, e.g. sent,accepted',
      }),
    ),
    patientId: Type.Optional(Type.String({ format: 'uuid' })),
    updatedSince: Type.Optional({ ...Timestamp, description: 'Only referrals changed at or after this time' }),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type ReferralListQuery = Static<typeof ReferralListQuery>;

export const ReferralPage = component('ReferralPage', Type.Object({
  data: Type.Array(Referral),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null when nothing more has changed yet' }),
  syncCursor: Type.String({
    description: 'Where this page ended. Keep it and poll with cursor=syncCursor to receive every later change exactly in commit-safe order.',
  }),
}));

const Reason = Type.String({ minLength: 1, maxLength: 2000 });

export const DeclineReferral = component('DeclineReferral', Type.Object({ reason: Reason }, { additionalProperties: false }));
export type DeclineReferral = Static<typeof DeclineReferral>;
export const CancelReferral = component('CancelReferral', Type.Object({ reason: Reason }, { additionalProperties: false }));
export type CancelReferral = Static<typeof CancelReferral>;

export const AcceptReferral = component('AcceptReferral', Type.Object(
  {
    therapistId: Type.Optional(
      Type.String({ format: 'uuid', description: 'A practice admin or practice API client names the accepting therapist; a therapist accepts as themself' }),
    ),
    acknowledgedPrecautions: Type.Optional(
      Type.Boolean({
        description:
          'Required (true) when the referral has precautions or contraindications: the therapist read them. Kept in the history; without it such an accept is 422 precautions-not-acknowledged',
      }),
    ),
  },
  { additionalProperties: false },
));
export type AcceptReferral = Static<typeof AcceptReferral>;

export const RerouteReferral = component('RerouteReferral', Type.Object(
  { ...TargetFields, reason: Type.Optional(Reason) },
  { additionalProperties: false, description: 'Exactly one of therapistId, practiceId and network' },
));
export type RerouteReferral = Static<typeof RerouteReferral>;

export const SignReferral = component('SignReferral', Type.Object(
  {
    attestation: Type.Literal(true, { description: 'The prescriber attests that they ordered this treatment and sign the order' }),
    send: Type.Optional(Type.Boolean({ default: false, description: 'Send the draft to its target in the same change' })),
  },
  { additionalProperties: false },
));
export type SignReferral = Static<typeof SignReferral>;

export const ResumeReferral = component('ResumeReferral', Type.Object(
  {
    attestation: Type.Literal(true, { description: 'The prescriber attests that they reviewed the adverse event and that treatment may go on' }),
    comment: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'Kept in the history as the reason' })),
  },
  { additionalProperties: false },
));
export type ResumeReferral = Static<typeof ResumeReferral>;

export const AmendReferral = component('AmendReferral', Type.Object(
  {
    expiresOn: Type.Optional({ ...IsoDate, description: 'A later expiry date' }),
    visitsAuthorized: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'A higher number of visits' })),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false, minProperties: 1 },
));
export type AmendReferral = Static<typeof AmendReferral>;

export const ReferralEvent = component('ReferralHistoryEntry', Type.Object({
  id: Type.Integer(),
  action: Type.Enum([
    'create',
    'sign',
    'send',
    'accept',
    'decline',
    'decline_offer',
    'cancel',
    'reroute',
    'amend',
    'start',
    'complete',
    'expire',
    'report',
    'sign_report',
    'discharge',
    'request_renewal',
    'renew',
    'deny_renewal',
    'continue',
    'hold',
    'resume',
  ]),
  fromStatus: Type.Union([ReferralStatus, Type.Null()]),
  toStatus: ReferralStatus,
  version: Type.Integer(),
  actor: Type.Object({
    type: enumOf(referralActorTypes),
    id: Type.Union([Uuid, Type.Null()]),
    organizationId: Type.Union([Uuid, Type.Null()]),
  }),
  reason: Type.Union([Type.String(), Type.Null()]),
  changes: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  occurredAt: Timestamp,
}));
export type ReferralEvent = Static<typeof ReferralEvent>;

export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 100, description: 'The ETag of the version this change was based on; 412 when it is stale' })),
});
