// Shapes of a visit note (progress report) in SOAP form and of its addenda (SPEC §4).
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { IsoDate, PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { CptCode, TechniqueCode } from '../referrals/schemas.js';

const SoapText = Type.String({ minLength: 1, maxLength: 10_000 });
const PainScore = Type.Integer({ minimum: 0, maximum: 10, description: '0–10 numeric pain rating scale' });

export const outcomeInstruments = ['NDI', 'ODI', 'LEFS', 'DASH', 'PSFS', 'other'] as const;

export const RangeOfMotion = component('RangeOfMotion', Type.Object(
  {
    joint: Type.String({ minLength: 1, maxLength: 100, examples: ['lumbar_spine'] }),
    movement: Type.String({ minLength: 1, maxLength: 100, examples: ['flexion'] }),
    degrees: Type.Number({ minimum: 0, maximum: 360 }),
  },
  { additionalProperties: false },
));

export const OutcomeMeasure = component('OutcomeMeasure', Type.Object(
  {
    instrument: Type.Enum([...outcomeInstruments]),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Required when instrument is other' })),
    score: Type.Number({ minimum: 0, maximum: 100 }),
  },
  { additionalProperties: false },
));

/** CMS-1500 box 24D: up to four two-character modifiers (GP therapy plan of care, 59 distinct procedure, KX …). */
export const CptModifier = component('CptModifier', Type.String({ pattern: '^[A-Z0-9]{2}$', description: 'CPT/HCPCS modifier: 2 uppercase letters or digits, e.g. GP, 59, KX', examples: ['GP'] }));

export const BillingLine = component('BillingLine', Type.Object(
  {
    cpt: CptCode,
    units: Type.Integer({ minimum: 1, maximum: 12, description: 'Units of 15 minutes' }),
    modifiers: Type.Optional(Type.Array(CptModifier, { maxItems: 4, uniqueItems: true, description: 'In the order they go on the claim' })),
    diagnosisPointers: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 12 }), {
        minItems: 1,
        maxItems: 4,
        uniqueItems: true,
        description: "Which of the referral's diagnoses the line treats: 1-based positions in its diagnoses list, the main one first (box 24E shows them as letters A–L)",
      }),
    ),
  },
  { additionalProperties: false, description: 'Notes posted before modifiers and diagnosisPointers existed have neither' },
));
export type BillingLine = Static<typeof BillingLine>;

export const CreateProgressReport = component('CreateProgressReport', Type.Object(
  {
    visitDate: { ...IsoDate, description: 'Not in the future, not before the referral was accepted' },
    subjective: SoapText,
    objective: SoapText,
    assessment: SoapText,
    plan: SoapText,
    painBefore: PainScore,
    painAfter: PainScore,
    rangeOfMotion: Type.Optional(Type.Array(RangeOfMotion, { maxItems: 30 })),
    outcomeMeasures: Type.Optional(Type.Array(OutcomeMeasure, { maxItems: 10 })),
    techniquesApplied: Type.Array(TechniqueCode, { minItems: 1, maxItems: 11, uniqueItems: true }),
    minutes: Type.Integer({ minimum: 1, maximum: 240 }),
    billing: Type.Optional(Type.Array(BillingLine, { maxItems: 10 })),
    final: Type.Optional(Type.Boolean({ default: false, description: 'A discharge summary: completes the referral' })),
  },
  {
    additionalProperties: false,
  },
));
export type CreateProgressReport = Static<typeof CreateProgressReport>;

export const Addendum = component('Addendum', Type.Object({
  id: Uuid,
  reportId: Uuid,
  authorId: Uuid,
  text: Type.String(),
  createdAt: Timestamp,
}));
export type Addendum = Static<typeof Addendum>;

export const CreateAddendum = component('CreateAddendum', Type.Object(
  { text: Type.String({ minLength: 1, maxLength: 10_000 }) },
  { additionalProperties: false },
));
export type CreateAddendum = Static<typeof CreateAddendum>;

export const ProgressReport = component('ProgressReport', Type.Object({
  id: Uuid,
  referralId: Uuid,
  visitNumber: Type.Integer({ description: 'Assigned by the server: 1 for the first visit' }),
  authorId: Uuid,
  visitDate: IsoDate,
  subjective: Type.String(),
  objective: Type.String(),
  assessment: Type.String(),
  plan: Type.String(),
  painBefore: Type.Integer(),
  painAfter: Type.Integer(),
  rangeOfMotion: Type.Array(RangeOfMotion),
  outcomeMeasures: Type.Array(OutcomeMeasure),
  techniquesApplied: Type.Array(TechniqueCode),
  minutes: Type.Integer(),
  billing: Type.Array(BillingLine),
  final: Type.Boolean(),
  signedAt: Timestamp,
  addenda: Type.Array(Addendum, { description: 'Corrections, oldest first; the note itself never changes' }),
}));
export type ProgressReport = Static<typeof ProgressReport>;

export const ProgressReportListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const ReportParams = Type.Object({ id: Uuid, reportId: Uuid }, { additionalProperties: false });
