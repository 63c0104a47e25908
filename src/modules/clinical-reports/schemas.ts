// Shapes of the reports a therapist sends the prescriber (SPEC §14.3): what the therapist writes,
// what the server adds from the visit notes, and the prescriber's signature.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { TechniqueCode } from '../referrals/schemas.js';
import { IsoDate, Timestamp, Uuid } from '../../lib/schemas.js';
import { dischargeReasons, enumOf, goalStatuses, reportKinds, reportRecommendations, signatureMethods } from '../../lib/vocabulary.js';
import { OutcomeMeasure, RangeOfMotion } from '../progress-reports/schemas.js';

const Text = (maxLength: number, description?: string) => Type.String({ minLength: 1, maxLength, ...(description ? { description } : {}) });

export const Goal = component('ReportGoal', Type.Object(
  {
    description: Text(500),
    status: enumOf(goalStatuses, { description: 'met, progressing, not_met, or new (set in this report)' }),
    measure: Type.Optional(Text(200, 'How the goal is measured, e.g. "ODI" or "sitting tolerance (minutes)"')),
    target: Type.Optional(Text(200, 'The value that meets it, e.g. "≤ 20 %" or "60 minutes"')),
  },
  { additionalProperties: false },
));
export type Goal = Static<typeof Goal>;

export const Findings = component('ReportFindings', Type.Object(
  {
    posture: Type.Optional(Text(2000)),
    palpation: Type.Optional(Text(2000)),
    gait: Type.Optional(Text(2000)),
    notes: Type.Optional(Text(5000)),
  },
  { additionalProperties: false, minProperties: 1, description: 'What the evaluation found; at least one member' },
));
export type Findings = Static<typeof Findings>;

export const Baseline = component('ReportBaseline', Type.Object(
  {
    pain: Type.Integer({ minimum: 0, maximum: 10, description: 'Pain on the 0–10 numeric scale at evaluation' }),
    rangeOfMotion: Type.Optional(Type.Array(RangeOfMotion, { maxItems: 30 })),
    outcomeMeasures: Type.Optional(Type.Array(OutcomeMeasure, { maxItems: 10 })),
  },
  { additionalProperties: false },
));
export type Baseline = Static<typeof Baseline>;

export const CreateReport = component('CreateClinicalReport', Type.Object(
  {
    kind: enumOf(reportKinds, { description: 'evaluation (the plan of care), progress, or discharge (completes the referral)' }),
    summary: Text(10_000),
    goals: Type.Array(Goal, { minItems: 1, maxItems: 20 }),
    recommendation: enumOf(reportRecommendations),
    findings: Type.Optional(Findings),
    baseline: Type.Optional(Baseline),
    plannedFrequencyPerWeek: Type.Optional(Type.Integer({ minimum: 1, maximum: 7, description: 'Evaluation only: the plan of care' })),
    plannedDurationWeeks: Type.Optional(Type.Integer({ minimum: 1, maximum: 52, description: 'Evaluation only: the plan of care' })),
    techniques: Type.Optional(Type.Array(TechniqueCode, { minItems: 1, maxItems: 11, uniqueItems: true, description: 'Evaluation only: the plan of care' })),
    reason: Type.Optional(enumOf(dischargeReasons, { description: 'Discharge only (required there): why care ends' })),
  },
  {
    additionalProperties: false,
    description:
      'An evaluation also needs findings, baseline, plannedFrequencyPerWeek, plannedDurationWeeks and techniques; a discharge needs reason. ' +
      'Those members are refused on other kinds.',
  },
));
export type CreateReport = Static<typeof CreateReport>;

export const SignReport = component('SignClinicalReport', Type.Object(
  {
    attestation: Type.Literal(true, { description: 'The prescriber read the report and signs it (for an evaluation: certifies the plan of care)' }),
    comment: Type.Optional(Text(2000)),
  },
  { additionalProperties: false },
));
export type SignReport = Static<typeof SignReport>;

export const PainPoint = component('PainPoint', Type.Object({
  visitNumber: Type.Integer(),
  date: IsoDate,
  before: Type.Integer({ minimum: 0, maximum: 10 }),
  after: Type.Integer({ minimum: 0, maximum: 10 }),
}));
export type PainPoint = Static<typeof PainPoint>;

export const OutcomeSeries = component('OutcomeSeries', Type.Object({
  instrument: Type.String(),
  name: Type.Optional(Type.String()),
  baseline: Type.Union([Type.Number(), Type.Null()], { description: "The evaluation's baseline score, else the first visit's" }),
  latest: Type.Union([Type.Number(), Type.Null()]),
  change: Type.Union([Type.Number(), Type.Null()], { description: 'latest − baseline' }),
  series: Type.Array(Type.Object({ visitNumber: Type.Integer(), date: IsoDate, score: Type.Number() })),
}));
export type OutcomeSeries = Static<typeof OutcomeSeries>;

/** What the server knew when the report was submitted, kept with it. */
export const ReportFacts = component('ReportFacts', Type.Object({
  visitsCovered: Type.Union([Type.Object({ from: Type.Integer(), to: Type.Integer() }), Type.Null()], {
    description: 'The visits since the previous report; null when there were none',
  }),
  visitsUsed: Type.Integer(),
  visitsAuthorized: Type.Integer(),
  painTrend: Type.Array(PainPoint, { description: 'Every visit so far, oldest first' }),
  outcomes: Type.Array(OutcomeSeries),
}));
export type ReportFacts = Static<typeof ReportFacts>;

export const ReportSignature = component('ClinicalReportSignature', Type.Object({
  signedBy: Uuid,
  signedAt: Timestamp,
  method: enumOf(signatureMethods),
  attestation: Type.String(),
  comment: Type.Union([Type.String(), Type.Null()]),
}));
export type ReportSignature = Static<typeof ReportSignature>;

export const Report = component('ClinicalReport', Type.Object({
  id: Uuid,
  referralId: Uuid,
  kind: enumOf(reportKinds),
  authorId: Uuid,
  summary: Type.String(),
  goals: Type.Array(Goal),
  recommendation: enumOf(reportRecommendations),
  findings: Type.Union([Findings, Type.Null()]),
  baseline: Type.Union([Baseline, Type.Null()]),
  planOfCare: Type.Union([
    Type.Object({ plannedFrequencyPerWeek: Type.Integer(), plannedDurationWeeks: Type.Integer(), techniques: Type.Array(TechniqueCode) }),
    Type.Null(),
  ]),
  dischargeReason: Type.Union([enumOf(dischargeReasons), Type.Null()]),
  ...ReportFacts.properties,
  signature: Type.Union([ReportSignature, Type.Null()], { description: 'null until the prescriber signs' }),
  createdAt: Timestamp,
}));
export type Report = Static<typeof Report>;

export const ReportParams = Type.Object({ id: Uuid, reportId: Uuid }, { additionalProperties: false });
