// The mass-assignment test's cases for the clinical loop (mass-assignment.test.ts): reports to the
// prescriber and their signature (SPEC §14.3), renewal requests and the prescriber's decisions
// (SPEC §14.4). What the server adds to a report (visit counts, pain trend, outcome series), who
// wrote or signed it, and how a renewal was decided are the server's alone.
import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import { clinicalReportSignatures, clinicalReports, renewalRequests } from '../../src/db/schema.js';
import type { Json } from '../helper.js';
import { evaluationReportBody, renewalRequestBody } from './clinical-bodies.js';
import type { Op, Owned } from './mass-assignment-operations.js';
import { byId, keyed, type MassAssignmentWorld, type Rec } from './mass-assignment-world.js';

export async function clinicalOperations(world: MassAssignmentWorld): Promise<Op[]> {
  const { db, planted, mark, office, practice, post, getJson, acceptedReferral, noteBody, foreign, referralRows, signatureParts, referralApi } = world;

  const reportsUrl = (referralId: string) => `/v1/referrals/${referralId}/reports`;
  const renewalsUrl = (referralId: string) => `/v1/referrals/${referralId}/renewal-requests`;

  // An evaluation: the kind with the most members, so that planted fields have the most places to hide.
  const evaluationBody = (marker: string): Json => evaluationReportBody({ summary: marker });
  const renewalBody = (marker: string): Json => renewalRequestBody({ justification: marker });

  /** An accepted referral with one visit, so that the server's facts (visitsUsed, painTrend, outcomes) are not empty. */
  async function treatedReferral(): Promise<Json> {
    const referral = await acceptedReferral();
    await post(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, noteBody(mark('visit')), 201);
    return referral;
  }

  // A report the same therapist wrote on another referral: real, visible to them, and not this referral's.
  const elsewhere = await treatedReferral();
  const elsewhereReport: string = (await post(reportsUrl(elsewhere.id), practice.therapist.token, evaluationBody(mark('elsewhere')), 201)).id;

  /**
   * Report rows (with their signatures) of the referral, of the foreign referral a planted referralId
   * names, and of the referral whose report a planted reportId names.
   */
  async function reportRows(referralId: string): Promise<Rec[]> {
    const reports = await db.select().from(clinicalReports).where(inArray(clinicalReports.referralId, [referralId, foreign.referral, elsewhere.id]));
    const signatures = reports.length === 0 ? [] : await db.select().from(clinicalReportSignatures).where(inArray(clinicalReportSignatures.reportId, reports.map((report) => report.id)));
    return [
      ...byId('clinical_reports')(reports.map((report) => ({ ...report, ...report.facts }))),
      ...keyed('clinical_report_signatures', (row) => row.reportId)(signatures.map((signature) => ({ ...signature, signatureMethod: signature.method }))),
      ...(await referralRows(referralId)),
    ];
  }
  /** Reports as the API shows them, a signature's members as columns of their own. */
  async function reportsApi(referralId: string, token: string): Promise<Rec[]> {
    const reports: Json[] = (await getJson(`${reportsUrl(referralId)}?limit=200`, token))?.data ?? [];
    return [
      ...reports.map((report) => ({ ...report, ...signatureParts(report.signature), comment: report.signature?.comment })),
      ...(await referralApi(referralId, office.physician.token)),
    ];
  }

  async function renewalRows(referralId: string): Promise<Rec[]> {
    return [
      ...byId('renewal_requests')(await db.select().from(renewalRequests).where(inArray(renewalRequests.referralId, [referralId, foreign.referral]))),
      ...(await referralRows(referralId)),
    ];
  }
  /** Renewal requests as the API shows them, the decision's members as columns of their own. */
  async function renewalsApi(referralId: string, token: string): Promise<Rec[]> {
    const requests: Json[] = (await getJson(`${renewalsUrl(referralId)}?limit=200`, token))?.data ?? [];
    return [
      ...requests.map((request) => ({ ...request, ...(request.decision ? { ...request.decision, decisionReason: request.decision.reason } : {}) })),
      ...(await referralApi(referralId, office.physician.token)),
    ];
  }

  const forgedSignature: Owned = {
    field: 'signature',
    value: { signedBy: foreign.user, signedAt: planted, method: 'ehr_attested', attestation: 'forged', comment: 'forged' },
    also: { signedBy: foreign.user, signedAt: planted, signatureMethod: 'ehr_attested', attestation: 'forged', comment: 'forged' },
  };
  /** What the server knows of the visits and adds to a report; planted, none of it may stand. */
  const reportFacts: Owned[] = [
    { field: 'visitsUsed', value: 9 },
    { field: 'visitsAuthorized', value: 99 },
    { field: 'visitsCovered', value: { from: 3, to: 9 } },
    { field: 'painTrend', value: [{ visitNumber: 1, date: '2001-02-03', before: 10, after: 0 }] },
    { field: 'outcomes', value: [{ instrument: 'ODI', baseline: 90, latest: 2, change: -88, series: [] }] },
    {
      field: 'facts',
      value: { visitsCovered: null, visitsUsed: 9, visitsAuthorized: 99, painTrend: [], outcomes: [] },
      also: { visitsUsed: 9, visitsAuthorized: 99 },
    },
  ];
  const decision = {
    field: 'decision',
    value: { decidedBy: foreign.user, decidedAt: planted, approvedVisits: 99, approvedWeeks: 52, reason: 'forged', attestation: 'forged' },
    also: { decidedBy: foreign.user, decidedAt: planted, approvedVisits: 99, approvedWeeks: 52, decisionReason: 'forged', attestation: 'forged' },
  };
  /** A renewal's decision and what it moves on the referral. */
  const decisionOwned = (status: string): Owned[] => [
    { field: 'id', value: randomUUID() },
    { field: 'referralId', value: foreign.referral },
    { field: 'requestedBy', value: foreign.therapist },
    { field: 'status', value: status },
    decision,
    { field: 'decidedBy', value: foreign.user },
    { field: 'decidedAt', value: planted },
    { field: 'approvedVisits', value: 99 },
    { field: 'approvedWeeks', value: 52 },
    { field: 'decisionReason', value: 'forged' },
    { field: 'visitsAuthorized', value: 99 },
    { field: 'expiresOn', value: '2099-12-31' },
    { field: 'version', value: 42 },
    { field: 'createdAt', value: planted },
  ];

  return [
    {
      method: 'POST',
      path: '/v1/referrals/{id}/reports',
      creates: true,
      nested: [['goals', 0], ['findings'], ['baseline'], ['baseline', 'outcomeMeasures', 0]],
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'referralId', value: foreign.referral },
        { field: 'authorId', value: foreign.therapist },
        // The referral's status: only a discharge report moves it, and then the server decides where to.
        { field: 'status', value: 'completed' },
        { field: 'planOfCare', value: { plannedFrequencyPerWeek: 7, plannedDurationWeeks: 52, techniques: ['cupping'] } },
        { field: 'dischargeReason', value: 'moved' },
        ...reportFacts,
        { field: 'lastReportedVisit', value: 77 },
        forgedSignature,
        { field: 'signedBy', value: foreign.user },
        { field: 'signedAt', value: planted },
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const referral = await treatedReferral();
        return {
          url: reportsUrl(referral.id),
          token: practice.therapist.token,
          valid: () => evaluationBody(mark('report')),
          rows: () => reportRows(referral.id),
          api: () => reportsApi(referral.id, practice.therapist.token),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/reports/{reportId}/sign',
      // A report is signed once.
      consumes: true,
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'reportId', value: elsewhereReport },
        { field: 'referralId', value: foreign.referral },
        { field: 'authorId', value: foreign.therapist },
        { field: 'kind', value: 'discharge' },
        { field: 'status', value: 'completed' },
        forgedSignature,
        { field: 'signedBy', value: foreign.user },
        { field: 'signedAt', value: planted },
        // The method follows from who signs (the physician), never from the body.
        { field: 'method', value: 'ehr_attested', columns: ['method', 'signatureMethod'] },
        ...reportFacts,
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const referral = await treatedReferral();
        const report = await post(reportsUrl(referral.id), practice.therapist.token, evaluationBody(mark('to-sign')), 201);
        return {
          url: `${reportsUrl(referral.id)}/${report.id}/sign`,
          token: office.physician.token,
          valid: () => ({ attestation: true, comment: mark('sign') }),
          rows: () => reportRows(referral.id),
          api: () => reportsApi(referral.id, office.physician.token),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/renewal-requests',
      creates: true,
      // One request is pending at a time.
      consumes: true,
      owned: [
        ...decisionOwned('approved'),
        // A report may back the request, but only one of this referral: the therapist's report on another is refused.
        { field: 'reportId', value: elsewhereReport, legit: true },
        { field: 'attestation', value: 'forged' },
      ],
      async setup() {
        const referral = await acceptedReferral();
        return {
          url: renewalsUrl(referral.id),
          token: practice.therapist.token,
          valid: () => renewalBody(mark('renewal')),
          rows: () => renewalRows(referral.id),
          api: () => renewalsApi(referral.id, practice.therapist.token),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/renewal-requests/{requestId}/approve',
      // A request is decided once.
      consumes: true,
      owned: [
        ...decisionOwned('denied'),
        // Denial only: on an approval it is refused.
        { field: 'reason', value: 'forged', columns: ['reason', 'decisionReason'] },
        { field: 'justification', value: 'forged' },
        { field: 'additionalVisitsRequested', value: 99 },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const request = await post(renewalsUrl(referral.id), practice.therapist.token, renewalBody(mark('to-approve')), 201);
        return {
          url: `${renewalsUrl(referral.id)}/${request.id}/approve`,
          token: office.physician.token,
          // Fewer than asked, as the prescriber may: the request's own numbers are not the answer either.
          valid: () => ({ attestation: true, additionalVisits: 3, extendWeeks: 2 }),
          rows: () => renewalRows(referral.id),
          api: () => renewalsApi(referral.id, office.physician.token),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/renewal-requests/{requestId}/deny',
      consumes: true,
      owned: [
        ...decisionOwned('approved'),
        { field: 'attestation', value: 'forged' },
        { field: 'justification', value: 'forged' },
        { field: 'additionalVisits', value: 99, columns: ['additionalVisits', 'approvedVisits'] },
        { field: 'extendWeeks', value: 52, columns: ['extendWeeks', 'approvedWeeks'] },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const request = await post(renewalsUrl(referral.id), practice.therapist.token, renewalBody(mark('to-deny')), 201);
        return {
          url: `${renewalsUrl(referral.id)}/${request.id}/deny`,
          token: office.physician.token,
          valid: () => ({ reason: mark('deny') }),
          rows: () => renewalRows(referral.id),
          api: () => renewalsApi(referral.id, office.physician.token),
        };
      },
    },
  ];
}
