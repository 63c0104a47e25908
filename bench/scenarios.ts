// The requests of each scenario, built per request so that every one carries a real token and a
// realistic body (SPEC §13): new patients and MRNs, random referrals, random deep cursors.
import type { Request } from 'autocannon';

export interface BenchData {
  tokens: { physician: string; therapist: string };
  therapistId: string;
  practiceId: string;
  /** Referrals of the physician's office, for reads. */
  officeReferralIds: string[];
  /** Cursors at random depths of the therapist's sync feed. */
  pullCursors: string[];
  /** Referrals the therapist has accepted, for visit notes and messages. */
  treatingReferralIds: string[];
  /** Cursors at random depths of the therapist's events feed (GET /v1/events). */
  feedCursors?: string[];
  /** A multipart document upload (base64 of the body, as it crosses the IPC channel) and its content type. */
  documentUpload?: { body: string; contentType: string };
}

export type ScenarioName = 'create' | 'read' | 'pull' | 'fhir-task' | 'note' | 'message' | 'events' | 'upload' | 'mixed' | 'floor-transaction' | 'floor-hello';

const pick = <T,>(items: T[]): T => items[Math.floor(Math.random() * items.length)]!;
const today = () => new Date().toISOString().slice(0, 10);
const daysFromNow = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
const json = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

const givenNames = ['Maria', 'James', 'Aiko', 'Noah', 'Fatima', 'Liam', 'Grace', 'Mateo'];
const familyNames = ['Gomez', 'Smith', 'Tanaka', 'Okafor', 'Nguyen', 'Kowalski', 'Haddad', 'Silva'];
const diagnoses = [
  { code: 'M54.50', display: 'Low back pain, unspecified' },
  { code: 'G44.209', display: 'Tension-type headache, unspecified, not intractable' },
  { code: 'M79.7', display: 'Fibromyalgia' },
  { code: 'S13.4XXA', display: 'Sprain of ligaments of cervical spine (whiplash), initial encounter' },
];

export function referralBody(data: BenchData): string {
  const diagnosis = pick(diagnoses);
  return JSON.stringify({
    patient: {
      givenName: pick(givenNames),
      familyName: pick(familyNames),
      birthDate: `19${50 + Math.floor(Math.random() * 50)}-0${1 + Math.floor(Math.random() * 9)}-1${Math.floor(Math.random() * 10)}`,
      sex: pick(['female', 'male']),
      identifiers: [{ system: 'urn:riverside:mrn', value: `MRN-${crypto.randomUUID().slice(0, 12)}` }],
    },
    diagnoses: [diagnosis],
    reason: `${diagnosis.display}: paraspinal trigger points, reduced range of motion`,
    goals: ['Pain at or below 3/10', 'Return to full work duties'],
    techniques: ['trigger_point', 'myofascial_release'],
    bodyRegions: ['lower_back'],
    precautions: ['No deep pressure over L4–L5'],
    contraindications: '',
    frequencyPerWeek: 2,
    durationWeeks: 6,
    sessionMinutes: 60,
    startDate: today(),
    expiresOn: daysFromNow(90),
    priority: 'routine',
    insurance: { payer: 'Acme Health', memberId: 'AH123456789', authorizationNumber: 'PA-77812', cptCodes: ['97124', '97140'] },
    therapistId: data.therapistId,
    send: true,
  });
}

function noteBody(): string {
  const before = 4 + Math.floor(Math.random() * 6);
  return JSON.stringify({
    visitDate: today(),
    subjective: `Pain ${before}/10 after work shifts`,
    objective: 'Taut bands L paraspinals',
    assessment: 'Improving tolerance to pressure',
    plan: 'Continue 2x/week',
    painBefore: before,
    painAfter: Math.max(0, before - 3),
    rangeOfMotion: [{ joint: 'lumbar_spine', movement: 'flexion', degrees: 45 }],
    outcomeMeasures: [{ instrument: 'ODI', score: 38 }],
    techniquesApplied: ['trigger_point'],
    minutes: 60,
    billing: [{ cpt: '97140', units: 2 }, { cpt: '97124', units: 2 }],
    final: false,
  });
}

type Built = Pick<Request, 'method' | 'path' | 'headers' | 'body'>;

let decodedUpload: { from: string; body: Buffer } | undefined;
/** The upload's bytes, decoded once per load generator rather than once per request. */
function uploadBody(data: BenchData): Buffer {
  if (decodedUpload?.from !== data.documentUpload!.body) decodedUpload = { from: data.documentUpload!.body, body: Buffer.from(data.documentUpload!.body, 'base64') };
  return decodedUpload.body;
}

const builders: Record<Exclude<ScenarioName, 'mixed'>, (data: BenchData) => Built> = {
  create: (data) => ({ method: 'POST', path: '/v1/referrals', headers: json(data.tokens.physician), body: referralBody(data) }),
  read: (data) => ({ method: 'GET', path: `/v1/referrals/${pick(data.officeReferralIds)}`, headers: json(data.tokens.physician) }),
  pull: (data) => ({
    method: 'GET',
    path: `/v1/referrals?limit=50&cursor=${pick(data.pullCursors)}`,
    headers: json(data.tokens.therapist),
  }),
  // The same page as pull, through the FHIR façade: the therapist's Tasks after the same cursors.
  'fhir-task': (data) => ({
    method: 'GET',
    path: `/fhir/R4/Task?_count=50&_cursor=${pick(data.pullCursors)}`,
    headers: { ...json(data.tokens.therapist), accept: 'application/fhir+json' },
  }),
  note: (data) => ({
    method: 'POST',
    path: `/v1/referrals/${pick(data.treatingReferralIds)}/progress-reports`,
    headers: json(data.tokens.therapist),
    body: noteBody(),
  }),
  message: (data) => {
    const fromTherapist = Math.random() < 0.5;
    return {
      method: 'POST',
      path: `/v1/referrals/${pick(data.treatingReferralIds)}/messages`,
      headers: json(fromTherapist ? data.tokens.therapist : data.tokens.physician),
      body: JSON.stringify({ body: fromTherapist ? 'Patient reports numbness after session 2, please advise.' : 'Thanks, reduce pressure over the lumbar area.' }),
    };
  },
  events: (data) => ({
    method: 'GET',
    path: `/v1/events?limit=100&after=${encodeURIComponent(pick(data.feedCursors!))}`,
    headers: json(data.tokens.therapist),
  }),
  upload: (data) => ({
    method: 'POST',
    path: `/v1/referrals/${pick(data.treatingReferralIds)}/documents`,
    headers: { authorization: `Bearer ${data.tokens.therapist}`, 'content-type': data.documentUpload!.contentType },
    body: uploadBody(data),
  }),
  'floor-transaction': () => ({
    method: 'POST',
    path: '/',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'Chronic low back pain', goals: ['Pain at or below 3/10'], frequencyPerWeek: 2 }),
  }),
  'floor-hello': () => ({ method: 'GET', path: '/' }),
};

/** 60% pulls and reads, 25% notes and messages, 15% creates. */
function mixed(data: BenchData): Built {
  const roll = Math.random() * 100;
  if (roll < 30) return builders.pull(data);
  if (roll < 60) return builders.read(data);
  if (roll < 72.5) return builders.note(data);
  if (roll < 85) return builders.message(data);
  return builders.create(data);
}

export function requestOf(scenario: ScenarioName, data: BenchData): Built {
  return scenario === 'mixed' ? mixed(data) : builders[scenario](data);
}
