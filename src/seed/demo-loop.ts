// The clinical loop of SPEC §14 in the demo network, made through the API as its users would: Dr.
// Lee prescribes to Sam for Jon Park's tension headache; Sam accepts (acknowledging the precaution),
// evaluates (Dr. Lee certifies the plan of care), treats three visits, sends a progress report that
// waits for Dr. Lee's signature, and asks for more visits. Going through the routes keeps every
// rule, history entry, audit event and webhook event what a real loop would leave.
import type { FastifyInstance } from 'fastify';
import { apiPrefix } from '../lib/api-prefix.js';
import { todayUtc } from '../lib/dates.js';
import { demoCredentials } from './demo-network.js';

type Json = Record<string, any>;

export async function seedDemoLoop(app: FastifyInstance): Promise<void> {
  const call = async (method: 'GET' | 'POST', url: string, token: string | undefined, payload?: Json): Promise<Json> => {
    const response = await app.inject({
      method,
      url: `${apiPrefix}${url}`,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'user-agent': 'demo-seed' },
      ...(payload ? { payload } : {}),
    });
    if (response.statusCode >= 300) throw new Error(`demo loop: ${method} ${url} answered ${response.statusCode}`);
    return response.json();
  };
  const signIn = async (username: string) =>
    (await call('POST', '/auth/token', undefined, { grant_type: 'password', username, password: demoCredentials.password })).access_token as string;
  const [dr, sam] = await Promise.all([signIn(demoCredentials.users.physician), signIn(demoCredentials.users.harborTherapist)]);

  const me = await call('GET', '/me', sam);
  const referral = await call('POST', '/referrals', dr, {
    patient: { givenName: 'Jon', familyName: 'Park', birthDate: '1985-09-14', sex: 'male', identifiers: [{ system: 'urn:riverside:mrn', value: 'MRN-0107' }] },
    diagnoses: [{ code: 'G44.209', display: 'Tension-type headache, unspecified, not intractable' }],
    reason: 'Frequent tension-type headaches with cervical and upper trapezius trigger points',
    goals: ['Headache days at most 4 a month', 'Neck Disability Index below 10'],
    precautions: ['No cervical manipulation'],
    techniques: ['trigger_point', 'myofascial_release'],
    bodyRegions: ['neck', 'upper_back'],
    frequencyPerWeek: 1,
    durationWeeks: 6,
    sessionMinutes: 45,
    reportEveryVisits: 3,
    therapistId: me.id,
    send: true,
  });
  const id = referral.id as string;
  await call('POST', `/referrals/${id}/accept`, sam, { acknowledgedPrecautions: true });
  const evaluation = await call('POST', `/referrals/${id}/reports`, sam, {
    kind: 'evaluation',
    summary: 'Bilateral upper trapezius and suboccipital trigger points reproduce the usual headache; forward head posture.',
    goals: [
      { description: 'Headache days at most 4 a month', status: 'new', measure: 'headache diary', target: '<= 4 days' },
      { description: 'Neck Disability Index below 10', status: 'new', measure: 'NDI', target: '< 10' },
    ],
    recommendation: 'continue',
    findings: { posture: 'Forward head posture', palpation: 'Active trigger points in both upper trapezius and suboccipitals' },
    baseline: { pain: 6, rangeOfMotion: [{ joint: 'cervical_spine', movement: 'rotation', degrees: 60 }], outcomeMeasures: [{ instrument: 'NDI', score: 22 }] },
    plannedFrequencyPerWeek: 1,
    plannedDurationWeeks: 6,
    techniques: ['trigger_point', 'myofascial_release'],
  });
  await call('POST', `/referrals/${id}/reports/${evaluation.id}/sign`, dr, { attestation: true, comment: 'Plan of care certified.' });
  for (const [before, after, ndi] of [
    [6, 4, 20],
    [5, 3, 16],
    [4, 2, 13],
  ] as const) {
    await call('POST', `/referrals/${id}/progress-reports`, sam, {
      visitDate: todayUtc(),
      subjective: 'Fewer headache days this week',
      objective: 'Trigger points less reactive',
      assessment: 'Responding to treatment',
      plan: 'Continue as planned',
      painBefore: before,
      painAfter: after,
      outcomeMeasures: [{ instrument: 'NDI', score: ndi }],
      techniquesApplied: ['trigger_point', 'myofascial_release'],
      minutes: 45,
      billing: [{ cpt: '97140', units: 3 }],
    });
  }
  const progress = await call('POST', `/referrals/${id}/reports`, sam, {
    kind: 'progress',
    summary: 'Headache days down from 12 to 6 a month; NDI 22 to 13.',
    goals: [
      { description: 'Headache days at most 4 a month', status: 'progressing', measure: 'headache diary', target: '<= 4 days' },
      { description: 'Neck Disability Index below 10', status: 'progressing', measure: 'NDI', target: '< 10' },
    ],
    recommendation: 'continue',
  });
  await call('POST', `/referrals/${id}/renewal-requests`, sam, {
    additionalVisits: 4,
    extendWeeks: 4,
    justification: 'Steady progress (NDI 22 to 13); four more weekly visits to reach the goals.',
    reportId: progress.id,
  });
}
