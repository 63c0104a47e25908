// Request bodies of the clinical loop (SPEC §14.3, §14.4) the hardening files share, valid as they
// stand: reports to the prescriber of each kind, and a renewal request. A case overrides only what
// it is about.
import type { Json } from '../helper.js';

/** An evaluation, the plan of care: the kind with the most members (findings, baseline, plan). */
export function evaluationReportBody(overrides: Json = {}): Json {
  return {
    kind: 'evaluation',
    summary: 'Chronic mechanical low back pain with lumbar paraspinal trigger points.',
    goals: [{ description: 'Reduce disability', status: 'new', measure: 'ODI', target: '≤ 20' }],
    recommendation: 'continue',
    findings: { posture: 'Anterior pelvic tilt', palpation: 'Taut bands L3-L5 paraspinals', gait: 'Antalgic', notes: 'Guarded lumbar flexion' },
    baseline: { pain: 8, rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 40 }], outcomeMeasures: [{ instrument: 'ODI', score: 44 }] },
    plannedFrequencyPerWeek: 2,
    plannedDurationWeeks: 6,
    techniques: ['trigger_point'],
    ...overrides,
  };
}

export function progressReportBody(overrides: Json = {}): Json {
  return {
    kind: 'progress',
    summary: 'Steady improvement; sitting tolerance up to 45 minutes.',
    goals: [{ description: 'Reduce disability', status: 'progressing', measure: 'ODI', target: '≤ 20' }],
    recommendation: 'continue',
    ...overrides,
  };
}

/** A discharge: it completes the referral. */
export function dischargeReportBody(overrides: Json = {}): Json {
  return {
    kind: 'discharge',
    summary: 'Goals met; independent with the home program.',
    goals: [{ description: 'Reduce disability', status: 'met' }],
    recommendation: 'discharge',
    reason: 'goals_met',
    ...overrides,
  };
}

export function renewalRequestBody(overrides: Json = {}): Json {
  return { additionalVisits: 6, extendWeeks: 4, justification: 'ODI 44 → 30; the goal of ≤ 20 is not met yet', ...overrides };
}
