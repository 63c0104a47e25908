// What the server adds to a report from what it knows (SPEC §14.3): the visits it covers, visits
// used of authorized, the pain trend and each outcome instrument's series with baseline and change.
import type { VisitMeasurement } from '../progress-reports/index.js';
import type { Baseline, OutcomeSeries, ReportFacts } from './schemas.js';

interface ReferralCounts {
  visitsUsed: number;
  visitsAuthorized: number;
  lastReportedVisit: number;
}

const keyOf = (measure: { instrument: string; name?: string | undefined }) => `${measure.instrument}\u0000${measure.name ?? ''}`;
/** Scores are whole or tenths on every instrument; a difference is shown the same way, without float noise. */
const difference = (latest: number, baseline: number) => Math.round((latest - baseline) * 100) / 100;

/**
 * @param baseline the evaluation's baseline (the report's own, for an evaluation; else the latest
 *   evaluation's), which takes precedence over the first visit as the starting point of each series
 */
export function reportFacts(referral: ReferralCounts, visits: VisitMeasurement[], baseline: Baseline | null): ReportFacts {
  const series = new Map<string, OutcomeSeries>();
  const entry = (measure: { instrument: string; name?: string | undefined }) => {
    const key = keyOf(measure);
    let found = series.get(key);
    if (!found) {
      found = { instrument: measure.instrument, ...(measure.name ? { name: measure.name } : {}), baseline: null, latest: null, change: null, series: [] };
      series.set(key, found);
    }
    return found;
  };
  for (const measure of baseline?.outcomeMeasures ?? []) entry(measure).baseline = measure.score;
  for (const visit of visits) {
    for (const measure of visit.outcomeMeasures) entry(measure).series.push({ visitNumber: visit.visitNumber, date: visit.visitDate, score: measure.score });
  }
  for (const outcome of series.values()) {
    outcome.baseline ??= outcome.series[0]?.score ?? null;
    outcome.latest = outcome.series.at(-1)?.score ?? null;
    outcome.change = outcome.baseline !== null && outcome.latest !== null ? difference(outcome.latest, outcome.baseline) : null;
  }
  return {
    visitsCovered: referral.visitsUsed > referral.lastReportedVisit ? { from: referral.lastReportedVisit + 1, to: referral.visitsUsed } : null,
    visitsUsed: referral.visitsUsed,
    visitsAuthorized: referral.visitsAuthorized,
    painTrend: visits.map((visit) => ({ visitNumber: visit.visitNumber, date: visit.visitDate, before: visit.painBefore, after: visit.painAfter })),
    outcomes: [...series.values()],
  };
}
