// Item 2 of the hardening issue: a property test of who sees what (SPEC §3, §6, §10, §12, §14.1, §14.8).
// Each fast-check run builds a small random referral graph through the HTTP API — who prescribes (and
// so whether the order is signed), for which patient, to which target, then a random sequence of
// signatures, sends, accepts, declines, cancels, reroutes and amendments by whoever the run picks,
// strangers included (policy-run-input.ts) —
// while a small policy oracle written from the spec (policy-oracle.ts, not from
// src/modules/referrals/access.ts) predicts every answer. Then the principals page through
// GET /v1/referrals (plain, or with random status / updatedSince / patientId filters), an office
// searches GET /v1/patients by identifier, and a sample of single records is read; each result
// must equal what the oracle lets that principal see.
//
// Users are slow to make (scrypt), so the principals are made once (policy-network.ts); each run
// adds only referrals and patients, and reads the feeds from where the previous run ended (a sync
// cursor), as a syncing app polls, so a run costs a page or two however large the table grows.
// Every request costs milliseconds on the embedded database, so a run reads the feeds of the
// principals it touched and a sample of the rest; the last test reads every principal's whole feed
// against all runs' graphs at once (POLICY_EVERY_PRINCIPAL=1 reads every feed in every run instead).
// Replay a failure with POLICY_SEED=<seed> POLICY_PATH=<path> (both printed in the report).
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { decodeCursor } from '../../src/lib/pagination.js';
import { buildTestApp, testDatabaseServer, type Json } from '../helper.js';
import { recordFigure } from './figures.js';
import { buildPolicyNetwork } from './policy-network.js';
import {
  eligibleToAccept,
  expectMove,
  knowsPatient,
  mayOrder,
  mayPrescribe,
  signatureMethod,
  signsAtCreate,
  mayReadPatients,
  mayReadReferrals,
  mayWritePatients,
  nearTargets,
  offeredTo,
  officeMoves,
  practiceOf,
  sees,
  techniqueSets,
  therapistKeys,
  therapistProfiles,
  type ConflictCode,
  type MoveRequest,
  type OfficeKey,
  type PatientModel,
  type Principal,
  type ReferralModel,
  type Side,
  type Target,
  type TherapistKey,
} from './policy-oracle.js';
import { describeTarget, nextStepsOf, pick, resolveTarget, runInputArbitrary, type RunInput } from './policy-run-input.js';
import { skipFileUnlessPostgres } from './postgres-only.js';
import { withParametersInline } from '../fixtures/openapi-parameters.js';

skipFileUnlessPostgres();

const test = await buildTestApp(t);
const { orgIds, principals, therapistIds, officePrincipals, practicePrincipals, physicianOf, keepSignedIn } = await buildPolicyNetwork(test);
const prescribers = principals.filter(mayPrescribe);
const registrars = principals.filter(mayWritePatients);
const runInput = runInputArbitrary(principals.length);

function targetBody(target: Target): Json {
  if (target.kind === 'therapist') return { therapistId: therapistIds[target.therapist] };
  if (target.kind === 'practice') return { practiceId: orgIds[target.practice] };
  const { near, radiusKm } = nearTargets[target.near];
  return { network: { near, radiusKm } };
}

// ─── Running one graph ──────────────────────────────────────────────────────────────────────────

/** Why a run failed: the property throws it, and fast-check shrinks the run to the smallest that still does. */
class Counterexample extends Error {}

/**
 * Where the runs so far end in the sync feed (the later of the two offices' syncCursors, since an
 * office sees every row it wrote). Each run reads its feeds from here, as a syncing app polls from
 * its last cursor, so a run costs a page or two however large the table has grown.
 */
let runBoundary: string | undefined;
/** Referrals and patients of every run that ended without a counterexample (their models are trusted). */
const trustedReferrals: ReferralModel[] = [];
const trustedPatients: PatientModel[] = [];

let changes = 0;
/** Principals' feeds compared with the oracle, over all runs. */
let feedChecks = 0;
/** POLICY_EVERY_PRINCIPAL=1 reads every principal's feed in every run (slower by about a third). */
const everyPrincipal = process.env.POLICY_EVERY_PRINCIPAL === '1';
/** What the runs did, by outcome ("accept 200", "create 409", …): shows the graphs reach the states that matter. */
const tally = new Map<string, number>();
const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
let executions = 0;
let listCalls = 0;
let singleReads = 0;
let requestsMade = 0;

// PostgreSQL serves the principals' reads side by side; the embedded database runs one statement
// at a time whatever the test does, so there they go one after another.
const parallel = testDatabaseServer !== undefined;
async function forEach<T>(items: readonly T[], each: (item: T, index: number) => Promise<void>): Promise<void> {
  if (parallel) await Promise.all(items.map(each));
  else for (const [index, item] of items.entries()) await each(item, index);
}

type Response = Awaited<ReturnType<typeof test.request>>;
async function call(principal: Principal, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: Json, headers?: Record<string, string>): Promise<Response> {
  requestsMade++;
  return test.request({ method, url, token: principal.token, ...(payload ? { payload } : {}), ...(headers ? { headers } : {}) });
}

/** A problem's `code` (for the tally, and for the 409s whose code the spec names). */
function problemCode(response: Response): string | undefined {
  try {
    const code = response.json()?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * §14.1: each referral's signature as it was first shown (by id): every later answer about it must
 * show the same one, and an unsigned referral none.
 */
const signatures = new Map<string, Json>();
/** What is wrong with the signature an answer shows for a referral, if anything. */
function signatureProblem(referral: ReferralModel, shown: Json | undefined): string | undefined {
  if (!referral.signed) return shown === null ? undefined : `${referral.label} shows signature ${JSON.stringify(shown)}, expected null (unsigned)`;
  const kept = signatures.get(referral.id);
  if (!isDeepStrictEqual(shown, kept)) return `${referral.label} shows signature ${JSON.stringify(shown)}, expected the one it was signed with, ${JSON.stringify(kept)}`;
  return undefined;
}
/** Records the signature a referral was just signed with: the prescriber's, by the method the signer used. */
function signatureMade(referral: ReferralModel, shown: Json | undefined, signer: Principal, prescriberId: string, at: { from: number; to: number }): string | undefined {
  const problem =
    shown === null || typeof shown !== 'object'
      ? 'none'
      : shown.signedBy !== prescriberId
        ? `signedBy ${shown.signedBy}, expected the prescriber ${prescriberId}`
        : shown.method !== signatureMethod(signer)
          ? `method ${shown.method}, expected ${signatureMethod(signer)}`
          : typeof shown.attestation !== 'string' || shown.attestation.length === 0
            ? `attestation ${JSON.stringify(shown.attestation)}`
            : !(Date.parse(shown.signedAt) >= at.from - 1000 && Date.parse(shown.signedAt) <= at.to + 1000)
              ? `signedAt ${shown.signedAt}, not the time of the request`
              : undefined;
  if (problem) return `${referral.label} signed by ${signer.key}: signature ${JSON.stringify(shown)} (${problem})`;
  signatures.set(referral.id, shown!);
  return undefined;
}

interface Walk {
  ids: string[];
  pages: number;
  status: number;
  body?: string;
  terminated: boolean;
  syncCursor: string | undefined;
}

/** Follows nextCursor to the end (or a page cap, so that a cursor loop fails instead of hanging). */
async function walkReferrals(principal: Principal, filters: Record<string, string>, start: string | undefined, limit: number, maxPages = 40): Promise<Walk> {
  const ids: string[] = [];
  let cursor = start;
  let syncCursor = start;
  for (let pages = 1; ; pages++) {
    const query = new URLSearchParams({ ...filters, limit: String(limit), ...(cursor ? { cursor } : {}) });
    const response = await call(principal, 'GET', `/v1/referrals?${query}`);
    listCalls++;
    if (response.statusCode !== 200) return { ids, pages, status: response.statusCode, body: response.body, terminated: false, syncCursor };
    const page = response.json();
    ids.push(...page.data.map((referral: Json) => referral.id as string));
    syncCursor = page.syncCursor;
    if (page.nextCursor === null) return { ids, pages, status: 200, terminated: true, syncCursor };
    if (pages >= maxPages) return { ids, pages, status: 200, terminated: false, syncCursor };
    cursor = page.nextCursor;
  }
}

async function walkPatients(principal: Principal, identifier: string | undefined, limit: number, maxPages = 200): Promise<Walk> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 1; ; pages++) {
    const query = new URLSearchParams({ ...(identifier ? { identifier } : {}), limit: String(limit), ...(cursor ? { cursor } : {}) });
    const response = await call(principal, 'GET', `/v1/patients?${query}`);
    listCalls++;
    if (response.statusCode !== 200) return { ids, pages, status: response.statusCode, body: response.body, terminated: false, syncCursor: undefined };
    const page = response.json();
    ids.push(...page.data.map((patient: Json) => patient.id as string));
    if (page.nextCursor === null) return { ids, pages, status: 200, terminated: true, syncCursor: undefined };
    if (pages >= maxPages) return { ids, pages, status: 200, terminated: false, syncCursor: undefined };
    cursor = page.nextCursor;
  }
}

const duplicatesIn = (ids: string[]) => ids.filter((id, index) => ids.indexOf(id) !== index);
const byChange = (a: ReferralModel, b: ReferralModel) => a.changeNumber - b.changeNumber;

/** The later of two sync cursors (a cursor is the [transaction, id] key of the last row shown). */
function laterCursor(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  const [xa, ia] = decodeCursor(a, ['digits', 'uuid']) as [string, string];
  const [xb, ib] = decodeCursor(b, ['digits', 'uuid']) as [string, string];
  return BigInt(xa) > BigInt(xb) || (xa === xb && ia > ib) ? a : b;
}

async function execute(input: RunInput): Promise<void> {
  executions++;
  await keepSignedIn();
  const run = executions;
  const system = `urn:policy-property:run-${run}`;
  const runStart = new Date().toISOString();
  const referrals: ReferralModel[] = [];
  const patients: PatientModel[] = [];
  const trace: string[] = [];
  const problems: string[] = [];
  const labelOf = new Map<string, string>();
  const name = (id: string) => labelOf.get(id) ?? `not of this run ${id}`;
  const fail = (problem: string): never => {
    throw new Counterexample(`${problem}\n  run ${run}:\n    ${trace.join('\n    ')}`);
  };

  const patientBody = (mrn: number) => ({
    givenName: 'Maria',
    familyName: `Gomez-${run}`,
    birthDate: '1978-04-02',
    sex: 'female',
    identifiers: [{ system, value: `MRN-${mrn}` }],
  });

  // Patients registered on their own (POST /v1/patients).
  for (const spec of input.patients) {
    const creator = pick(spec.creator.pool === 'any' ? principals : spec.creator.pool === 'side' ? officePrincipals : registrars, spec.creator.index);
    const response = await call(creator, 'POST', '/v1/patients', patientBody(spec.mrn));
    const expected = mayWritePatients(creator) ? 201 : 403;
    trace.push(`${creator.key} registers a patient MRN-${spec.mrn} → ${response.statusCode}`);
    if (response.statusCode !== expected) fail(`POST /v1/patients as ${creator.key}: expected ${expected}, got ${response.statusCode} ${response.body}`);
    if (response.statusCode === 201) {
      const patient = { label: `patient#${patients.length} (office ${creator.org}, MRN-${spec.mrn})`, id: response.json().id, office: creator.org as OfficeKey, mrn: spec.mrn };
      patients.push(patient);
      labelOf.set(patient.id, patient.label);
    }
  }

  // Whose feed this run touched: everyone the oracle let see one of its referrals at any moment,
  // so that losing sight of one is checked too.
  const watchers = new Set<Principal>();
  const watch = () => {
    for (const principal of principals) if (referrals.some((r) => sees(principal, r))) watchers.add(principal);
  };

  // The referrals.
  for (const spec of input.referrals) {
    const creator = pick(spec.creator.pool === 'any' ? principals : spec.creator.pool === 'side' ? officePrincipals : prescribers, spec.creator.index);
    const office = creator.side === 'office' ? (creator.org as OfficeKey) : 'A';
    const target = resolveTarget(spec.target);
    const techniques = techniqueSets[spec.techniques % techniqueSets.length]!;
    const wanted = spec.patient;
    const candidates = wanted.kind === 'existing' ? patients.filter((p) => !wanted.ofOffice || p.office === office) : [];
    const existing = wanted.kind === 'existing' && candidates.length > 0 ? pick(candidates, wanted.index) : undefined;
    const mrn = spec.patient.kind === 'inline' ? spec.patient.mrn : spec.patient.index % 2;
    const prescriber = spec.prescriber === 'own' ? physicianOf(office).id : spec.prescriber === 'foreign' ? physicianOf(office === 'A' ? 'B' : 'A').id : undefined;
    const body: Json = {
      ...(existing ? { patientId: existing.id } : { patient: patientBody(mrn) }),
      ...(prescriber ? { prescriberId: prescriber } : {}),
      diagnoses: [{ code: 'M54.50', display: 'Low back pain, unspecified' }],
      reason: 'Chronic low back pain',
      techniques,
      bodyRegions: ['lower_back'],
      frequencyPerWeek: 2,
      durationWeeks: 6,
      sessionMinutes: 60,
      ...targetBody(target),
      ...(spec.precautions ? { precautions: ['No deep pressure over L4-L5'] } : {}),
      send: spec.send,
    };
    let expected = 201;
    let expectedCode: ConflictCode | undefined;
    if (!mayPrescribe(creator)) expected = 403;
    // §3 prescriberId: the caller when a physician prescribes, else a physician of the same office.
    else if (spec.prescriber === 'foreign' || (spec.prescriber === 'omit' && creator.role !== 'physician')) expected = 400;
    // §2: a patient is the office's own.
    else if (existing && existing.office !== office) expected = 400;
    // §14.1: only a signed order may be sent (after the body's problems, before the target's), and nothing is written.
    else if (spec.send && !signsAtCreate(creator, spec.prescriber)) [expected, expectedCode] = [409, 'signature-required'];
    else if (target.kind === 'therapist' && !therapistProfiles[target.therapist].accepting) expected = 400;
    // §14.2: a therapist without a verified license cannot be named.
    else if (target.kind === 'therapist' && !therapistProfiles[target.therapist].licensed) [expected, expectedCode] = [409, 'license-invalid'];
    else if (spec.send && target.kind === 'network' && offeredTo(target.near, techniques).length === 0) expected = 409;

    const label = `R${referrals.length}`;
    const requestedAt = Date.now();
    const response = await call(creator, 'POST', '/v1/referrals', body);
    const answeredAt = Date.now();
    const createCode = response.statusCode === 409 || response.statusCode === 422 ? problemCode(response) : undefined;
    trace.push(
      `${creator.key} creates ${expected === 201 ? label : 'a referral'} (${spec.send ? 'sent' : 'draft'}, ${describeTarget(target)}, techniques ${techniques.join('+')}, ` +
        `patient ${existing ? existing.label : `inline MRN-${mrn}`}, prescriber ${spec.prescriber}) → ${response.statusCode}${createCode ? ` ${createCode}` : ''}`,
    );
    count(`create${spec.send ? '+send' : ''} ${response.statusCode}${createCode ? ` ${createCode}` : ''}`);
    if (response.statusCode !== expected) fail(`POST /v1/referrals as ${creator.key}: expected ${expected}, got ${response.statusCode} ${response.body}`);
    if (expectedCode && createCode !== expectedCode) fail(`POST /v1/referrals as ${creator.key}: expected 409 ${expectedCode}, got ${response.body}`);
    if (response.statusCode !== 201) continue;
    const created = response.json();
    const offers = spec.send && target.kind === 'network' ? offeredTo(target.near, techniques) : [];
    const referral: ReferralModel = {
      label,
      id: created.id,
      office,
      patientId: created.patientId,
      techniques,
      status: spec.send ? 'sent' : 'draft',
      version: 1,
      visitsAuthorized: created.visitsAuthorized,
      sent: spec.send,
      signed: signsAtCreate(creator, spec.prescriber),
      precautions: spec.precautions,
      target,
      offers: new Map(offers.map((k) => [k, true])),
      acceptedBy: null,
      updatedAt: created.updatedAt,
      changeNumber: ++changes,
      summary: '',
    };
    if (created.status !== referral.status || created.version !== 1) fail(`${label} was created ${created.status} v${created.version}, expected ${referral.status} v1`);
    if (existing && created.patientId !== existing.id) fail(`${label} names patient ${created.patientId}, expected ${existing.label}`);
    const signatureWrong = referral.signed ? signatureMade(referral, created.signature, creator, physicianOf(office).id, { from: requestedAt, to: answeredAt }) : signatureProblem(referral, created.signature);
    if (signatureWrong) fail(`POST /v1/referrals as ${creator.key}: ${signatureWrong}`);
    referrals.push(referral);
    labelOf.set(referral.id, label);
    watch();
    if (!existing) {
      const patient = { label: `patient of ${label} (office ${office}, MRN-${mrn})`, id: created.patientId, office, mrn };
      patients.push(patient);
      labelOf.set(patient.id, patient.label);
    }
  }

  // The lifecycle moves.
  for (const spec of referrals.length > 0 ? input.actions : []) {
    const referral = pick(referrals, spec.referral);
    const action = { ...spec, move: spec.move === 'next' ? pick(nextStepsOf(referral.status, referral.signed), spec.moveIndex) : spec.move };
    const side: Side = officeMoves.has(action.move) ? 'office' : 'practice';
    const sidePool = side === 'office' ? officePrincipals : practicePrincipals;
    // §14.1: signing and amending are the prescriber's; of those who take part, the ones who may use
    // the route act on it (as a create's participants are those who may prescribe).
    const prescriberOnly = action.move === 'sign' || action.move === 'amend';
    const participants = sidePool.filter((principal) => sees(principal, referral) && (!prescriberOnly || mayOrder(principal)));
    const actor =
      action.actor.pool === 'any'
        ? pick(principals, action.actor.index)
        : pick(action.actor.pool === 'participant' && participants.length > 0 ? participants : sidePool, action.actor.index);
    let named: TherapistKey | undefined;
    if (action.move === 'accept') {
      if (typeof action.named === 'number') named = pick(therapistKeys, action.named);
      else if (action.named === 'eligible') {
        const ours = therapistKeys.filter((k) => (actor.role === 'therapist' ? k === actor.therapist : practiceOf(k) === actor.org));
        named = ours.find((k) => eligibleToAccept(referral, k)) ?? ours[0] ?? therapistKeys[0];
      }
    }
    const request: MoveRequest = {
      move: action.move,
      ifMatch: action.ifMatch,
      named,
      target: resolveTarget(action.target),
      raise: action.raise,
      alsoSend: action.alsoSend,
      acknowledged: action.acknowledged,
    };
    const expected = expectMove(actor, referral, request);
    const payload: Json =
      action.move === 'accept'
        ? { ...(named ? { therapistId: therapistIds[named] } : {}), ...(action.acknowledged ? { acknowledgedPrecautions: true } : {}) }
        : action.move === 'decline' || action.move === 'cancel'
          ? { reason: 'Property test' }
          : action.move === 'reroute'
            ? targetBody(request.target!)
            : action.move === 'sign'
              ? { attestation: true, send: action.alsoSend }
              : { visitsAuthorized: referral.visitsAuthorized + (action.raise ? 1 : 0) };
    const headers = action.ifMatch === 'none' ? undefined : { 'if-match': `"${action.ifMatch === 'current' ? referral.version : referral.version + 1}"` };
    const requestedAt = Date.now();
    const response =
      action.move === 'amend'
        ? await call(actor, 'PATCH', `/v1/referrals/${referral.id}`, payload, headers)
        : await call(actor, 'POST', `/v1/referrals/${referral.id}/${action.move}`, action.move === 'send' ? undefined : payload, headers);
    const detail = [
      action.move === 'accept' ? (named ? `naming ${named}` : 'naming nobody') : '',
      action.move === 'accept' && referral.precautions ? (action.acknowledged ? 'acknowledging the precautions' : 'not acknowledging the precautions') : '',
      action.move === 'reroute' ? `to ${describeTarget(request.target!)}` : '',
      action.move === 'amend' ? (action.raise ? 'raising visits' : 'not raising visits') : '',
      action.move === 'sign' ? (action.alsoSend ? 'and send' : 'only') : '',
      action.ifMatch === 'none' ? '' : `If-Match ${action.ifMatch}`,
    ].filter(Boolean);
    const answeredAt = Date.now();
    const code = response.statusCode === 409 || response.statusCode === 422 ? problemCode(response) : undefined;
    const was = `${referral.status}${referral.signed ? '' : ', unsigned'}`;
    trace.push(`${actor.key} ${action.move} ${referral.label}${detail.length ? ` (${detail.join(', ')})` : ''} [was ${was}] → ${response.statusCode}${code ? ` ${code}` : ''}`);
    count(`${action.move}${action.move === 'sign' && action.alsoSend ? '+send' : ''} ${response.statusCode}${code ? ` ${code}` : ''}`);
    if (response.statusCode !== expected.status) {
      fail(`${action.move} ${referral.label} as ${actor.key}: expected ${expected.status}${expected.code ? ` ${expected.code}` : ''}, got ${response.statusCode} ${response.body}`);
    }
    if (expected.code && code !== expected.code) fail(`${action.move} ${referral.label} as ${actor.key}: expected ${expected.status} ${expected.code}, got ${response.body}`);
    if (expected.apply) {
      const signedBefore = referral.signed;
      expected.apply(referral);
      referral.version++;
      referral.changeNumber = ++changes;
      const moved = response.json();
      referral.updatedAt = moved.updatedAt;
      if (moved.status !== referral.status || moved.version !== referral.version) {
        fail(`${action.move} ${referral.label} answered ${moved.status} v${moved.version}, expected ${referral.status} v${referral.version}`);
      }
      if ((moved.acceptedBy?.therapistId ?? null) !== (referral.acceptedBy ? therapistIds[referral.acceptedBy] : null)) {
        fail(`${referral.label} was accepted by ${moved.acceptedBy?.therapistId}, expected ${referral.acceptedBy}`);
      }
      const signatureWrong =
        referral.signed && !signedBefore
          ? signatureMade(referral, moved.signature, actor, physicianOf(referral.office).id, { from: requestedAt, to: answeredAt })
          : signatureProblem(referral, moved.signature);
      if (signatureWrong) fail(`${action.move} ${referral.label} as ${actor.key}: ${signatureWrong}`);
      watch();
    }
  }

  for (const r of referrals) {
    const offers = [...r.offers].map(([k, open]) => `${k}${open ? '' : ' (declined)'}`).join(', ');
    r.summary =
      `run ${run} ${r.label}: office ${r.office}, ${r.status}${r.sent ? '' : ' (never sent)'}${r.signed ? '' : ' (unsigned)'}, ${describeTarget(r.target)}` +
      `${r.target.kind === 'network' ? ` [offered to: ${offers || 'nobody'}]` : ''}${r.acceptedBy ? `, accepted by ${r.acceptedBy}` : ''}`;
    trace.push(`final: ${r.summary}`);
  }

  // ── What each principal is shown ──
  const runIds = new Set(referrals.map((r) => r.id));
  /** Compares a feed (restricted to this run's referrals) with the oracle: same set, each once, in change order. */
  const checkFeed = (what: string, walk: Walk, expected: ReferralModel[]) => {
    if (walk.status !== 200 || !walk.terminated) {
      problems.push(`${what}: ${walk.status !== 200 ? `answered ${walk.status} ${walk.body}` : `nextCursor never ended (${walk.pages} pages)`}`);
      return;
    }
    const observed = walk.ids.filter((id) => runIds.has(id));
    const wanted = [...expected].sort(byChange).map((r) => r.id);
    const seen = new Set(observed);
    const missing = wanted.filter((id) => !seen.has(id)).map(name);
    const unexpected = [...seen].filter((id) => !wanted.includes(id)).map(name);
    const duplicates = duplicatesIn(observed).map(name);
    if (missing.length || unexpected.length || duplicates.length) {
      problems.push(`${what}: missing [${missing.join(', ')}], unexpected [${unexpected.join(', ')}], twice [${duplicates.join(', ')}]`);
    } else if (observed.some((id, index) => id !== wanted[index])) {
      problems.push(`${what}: order [${observed.map(name).join(', ')}], expected change order [${wanted.map(name).join(', ')}]`);
    }
  };

  const { probes } = input;
  const sinceMs =
    probes.since.kind === 'runStart'
      ? Date.parse(runStart)
      : probes.since.kind === 'future'
        ? Date.now() + 86_400_000
        : probes.since.kind === 'referral' && referrals.length > 0
          ? Date.parse(pick(referrals, probes.since.index).updatedAt) + probes.since.deltaMs
          : undefined;
  const patientFilter = probes.patientFilter !== null && patients.length > 0 ? pick(patients, probes.patientFilter) : undefined;
  const filters: Record<string, string> = {
    ...(probes.statusFilter ? { status: probes.statusFilter.join(',') } : {}),
    ...(sinceMs !== undefined ? { updatedSince: new Date(sinceMs).toISOString() } : {}),
    ...(patientFilter ? { patientId: patientFilter.id } : {}),
  };
  const passesFilters = (r: ReferralModel) =>
    (!probes.statusFilter || probes.statusFilter.includes(r.status)) &&
    // "Changed at or after": the server keeps microseconds and answers with milliseconds cut off,
    // and cutting keeps ">=" against a whole millisecond exact.
    (sinceMs === undefined || Date.parse(r.updatedAt) >= sinceMs) &&
    (!patientFilter || r.patientId === patientFilter.id);
  const query = (filtered: boolean) =>
    `GET /v1/referrals?${new URLSearchParams({ ...(filtered ? filters : {}), limit: String(probes.pageSize) })}`.replace(/patientId=[^&]+/, `patientId={${patientFilter?.label}}`);
  const start = runBoundary;

  // The offices first, plain: they see every row they wrote, so their feeds also wait out the sync
  // horizon (on PostgreSQL a row stays back while an older transaction, such as the webhook
  // worker's, is open), and the later of their cursors is where this run ends. Once a row shows,
  // it shows to every later query.
  let boundary = start;
  for (const office of (['A', 'B'] as const).filter((office) => referrals.some((r) => r.office === office))) {
    const physician = physicianOf(office);
    const expected = referrals.filter((r) => sees(physician, r));
    let feed = await walkReferrals(physician, {}, start, probes.pageSize);
    for (let attempt = 0; feed.status === 200 && attempt < 100 && !expected.every((r) => feed.ids.includes(r.id)); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      feed = await walkReferrals(physician, {}, start, probes.pageSize);
    }
    checkFeed(`${query(false)} as ${physician.key}`, feed, expected);
    boundary = laterCursor(boundary, feed.syncCursor);
  }
  // The rest of the network sees none of this run; a sample of it is read each run, and the last
  // test reads every principal's whole feed against all runs at once.
  const untouched = principals.filter((principal) => !watchers.has(principal));
  const readers = new Set(everyPrincipal ? principals : [...watchers, ...probes.bystanders.flatMap((i) => (untouched.length > 0 ? [pick(untouched, i)] : []))]);
  feedChecks += readers.size;
  await forEach(principals, async (principal, index) => {
    if (!readers.has(principal) || !mayReadReferrals(principal)) return;
    const walkedAlready = principal.role === 'physician' && watchers.has(principal);
    const expected = referrals.filter((r) => sees(principal, r));
    if (probes.filtered[index]) {
      const walk = await walkReferrals(principal, filters, start, probes.pageSize);
      // §14.8: a patientId filter matches only referrals whose patient the caller may know, or it
      // would tell a practice which unaccepted offers are about a patient it knows.
      const matches = (r: ReferralModel) => passesFilters(r) && (!patientFilter || knowsPatient(principal, r));
      checkFeed(`${query(true)} as ${principal.key}`, walk, expected.filter(matches));
    } else if (!walkedAlready) {
      checkFeed(`${query(false)} as ${principal.key}`, await walkReferrals(principal, {}, start, probes.pageSize), expected);
    }
  });

  // The patient search (GET /v1/patients?identifier=system|value): an office finds its own
  // patients only, though both offices gave theirs the same identifiers. (Those who may not read
  // patients at all are refused whatever the data; the last test checks each of them.)
  const searcher = pick(principals.filter((p) => p.org === probes.patientSearch.office && mayReadPatients(p)), probes.patientSearch.principal);
  const search = await walkPatients(searcher, `${system}|MRN-${probes.mrn}`, probes.pageSize, 20);
  const searchWhat = `GET /v1/patients?identifier=…|MRN-${probes.mrn}&limit=${probes.pageSize} as ${searcher.key}`;
  if (search.status !== 200 || !search.terminated) {
    problems.push(`${searchWhat}: ${search.status !== 200 ? `answered ${search.status} ${search.body}` : 'nextCursor never ended'}`);
  } else {
    // Oldest first, and this run registered them in this order.
    const expected = patients.filter((p) => p.office === searcher.org && p.mrn === probes.mrn).map((p) => p.id);
    if (search.ids.length !== expected.length || search.ids.some((id, i) => id !== expected[i])) {
      problems.push(`${searchWhat}: [${search.ids.map(name).join(', ')}], expected [${expected.map(name).join(', ')}]`);
    }
  }

  // Single reads agree with the lists: 200 exactly where the oracle lets the caller see.
  await forEach(referrals.length > 0 ? probes.reads : [], async (read) => {
    const principal = pick(principals, read.principal);
    const referral = pick(referrals, read.referral);
    const expected = !mayReadReferrals(principal) ? 403 : sees(principal, referral) ? 200 : 404;
    const response = await call(principal, 'GET', `/v1/referrals/${referral.id}`);
    singleReads++;
    if (response.statusCode !== expected) problems.push(`GET /v1/referrals/{${referral.label}} as ${principal.key}: expected ${expected}, got ${response.statusCode}`);
    else if (expected === 200 && (response.json().status !== referral.status || response.json().version !== referral.version)) {
      problems.push(`GET /v1/referrals/{${referral.label}} as ${principal.key}: ${response.json().status} v${response.json().version}, expected ${referral.status} v${referral.version}`);
    } else if (expected === 200) {
      const signatureWrong = signatureProblem(referral, response.json().signature);
      if (signatureWrong) problems.push(`GET /v1/referrals/{${referral.label}} as ${principal.key}: ${signatureWrong}`);
    }
  });
  await forEach(patients.length > 0 ? probes.patientReads : [], async (read) => {
    const principal = pick(principals, read.principal);
    const patient = pick(patients, read.patient);
    const expected = !mayReadPatients(principal) ? 403 : patient.office === principal.org ? 200 : 404;
    const response = await call(principal, 'GET', `/v1/patients/${patient.id}`);
    singleReads++;
    if (response.statusCode !== expected) problems.push(`GET /v1/patients/{${patient.label}} as ${principal.key}: expected ${expected}, got ${response.statusCode}`);
  });

  if (problems.length > 0) fail(problems.join('\n  '));
  runBoundary = boundary;
  for (const r of referrals) count(`ends ${r.status}${r.sent ? '' : ' unsent'}${r.signed ? '' : ' unsigned'} (${r.target.kind}${r.acceptedBy ? ', accepted' : ''})`);
  trustedReferrals.push(...referrals);
  trustedPatients.push(...patients);
}

// ─── The property ───────────────────────────────────────────────────────────────────────────────

t.test('the list and search routes have exactly the query parameters this oracle models', async (t) => {
  const document = withParametersInline(test.app.swagger() as Json);
  const queryOf = (path: string) =>
    ((document.paths[path]?.get?.parameters ?? []) as Json[])
      .filter((parameter) => parameter.in === 'query')
      .map((parameter) => parameter.name as string)
      .sort();
  t.same(queryOf('/v1/referrals'), ['cursor', 'limit', 'patientId', 'status', 'updatedSince'], 'GET /v1/referrals');
  t.same(queryOf('/v1/patients'), ['cursor', 'identifier', 'limit'], 'GET /v1/patients');
});

// The figure (1,000 runs) is taken on PostgreSQL, the only database the file runs on (postgres-only.ts);
// POLICY_RUNS sets another length.
const numRuns = Number(process.env.POLICY_RUNS ?? (testDatabaseServer ? 1000 : 200));
const seed = process.env.POLICY_SEED !== undefined ? Number(process.env.POLICY_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
const path = process.env.POLICY_PATH;

let runs = 0;
let counterexamples = 0;
let perRunListCalls = 0;

t.test(`random referral graphs agree with the policy oracle (seed ${seed})`, async (t) => {
  const startedAt = Date.now();
  const cpuAtStart = process.cpuUsage();
  let details: fc.RunDetails<[RunInput]> | undefined;
  let report: string | undefined;
  try {
    await fc.assert(
      fc.asyncProperty(runInput, async (input) => execute(input)),
      {
        numRuns,
        seed,
        ...(path ? { path } : {}),
        includeErrorInReport: true,
        plugins: [() => ({ onAllRunsComplete: (runDetails: fc.RunDetails<[RunInput]>) => void (details = runDetails) })],
      },
    );
  } catch (error) {
    report = error instanceof Error ? error.message : String(error);
  }
  runs = details?.numRuns ?? 0;
  counterexamples = details?.failed || report ? 1 : 0;
  perRunListCalls = listCalls;
  const cpu = process.cpuUsage(cpuAtStart);
  t.comment(
    `${runs} runs (${executions} executions with shrinking) in ${((Date.now() - startedAt) / 1000).toFixed(1)} s ` +
      `(${((cpu.user + cpu.system) / 1e6).toFixed(1)} s of this process's CPU); ${feedChecks} principal feeds (of ${executions * principals.length}) read in ` +
      `${listCalls} list calls, ${singleReads} single reads, ${requestsMade} requests; ${trustedReferrals.length} referrals and ${trustedPatients.length} patients`,
  );
  t.comment([...tally].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `${key}: ${n}`).join('; '));
  t.notOk(report, `no counterexample (seed ${seed}${path ? `, path ${path}` : ''})`, report ? { diagnostic: true, report } : {});
  t.equal(runs, numRuns, `fast-check ran all ${numRuns} runs`);
});

// After all runs, each principal's whole feed and whole patient list, read from the start in pages
// of 200, must hold exactly what the oracle gives it over all runs, in change order. This is where
// the principals a run did not touch are held to every run's graph; it also shows that nothing
// reappears, vanishes or leaks between runs, and that the runs' cursors skipped nothing.
t.test('the whole feed and patient list of every principal agree with the oracle over all runs', async (t) => {
  const summaryOf = new Map(trustedReferrals.map((r) => [r.id, r.summary]));
  const describe = (ids: string[]) => ids.map((id) => summaryOf.get(id) ?? id);
  let disagreements = 0;
  for (const principal of principals) {
    if (!mayReadReferrals(principal)) continue;
    const feed = await walkReferrals(principal, {}, undefined, 200, 1000);
    const ids = feed.ids.filter((id) => summaryOf.has(id));
    const expected = trustedReferrals.filter((r) => sees(principal, r)).sort(byChange).map((r) => r.id);
    const expectedSet = new Set(expected);
    const agrees = [
      t.equal(feed.status, 200, `GET /v1/referrals as ${principal.key}`),
      t.ok(feed.terminated, `${principal.key}: nextCursor ends after ${feed.pages} pages`),
      t.same(describe(duplicatesIn(feed.ids)), [], `${principal.key}: no referral twice`),
      t.same(describe(ids.filter((id) => !expectedSet.has(id))), [], `${principal.key}: nothing it may not see (${ids.length} listed)`),
      t.same(describe(expected.filter((id) => !ids.includes(id))), [], `${principal.key}: everything it may see (${expected.length})`),
      t.ok(ids.length === expected.length && ids.every((id, i) => id === expected[i]), `${principal.key}: in change order`),
    ].every(Boolean);
    if (!agrees) disagreements++;
  }
  const trustedPatientIds = new Set(trustedPatients.map((p) => p.id));
  for (const principal of principals) {
    const list = await walkPatients(principal, undefined, 200);
    if (!mayReadPatients(principal)) {
      if (!t.equal(list.status, 403, `GET /v1/patients as ${principal.key} is refused`)) disagreements++;
      continue;
    }
    const ids = list.ids.filter((id) => trustedPatientIds.has(id));
    const expected = trustedPatients.filter((p) => p.office === principal.org).map((p) => p.id);
    const agrees = [
      t.equal(list.status, 200, `GET /v1/patients as ${principal.key}`),
      t.same(duplicatesIn(list.ids), [], `${principal.key}: no patient twice`),
      t.same(ids, expected, `${principal.key}: exactly its office's patients, oldest first (${expected.length})`),
    ].every(Boolean);
    if (!agrees) disagreements++;
  }
  // A whole feed that disagrees is a counterexample too, only not a shrunk one.
  const found = counterexamples + disagreements;
  t.comment(`whole feeds and patient lists: ${disagreements} disagreements in ${listCalls - perRunListCalls} list calls`);
  recordFigure({
    item: 2,
    check: 'Policy property test',
    figure: `${found} counterexamples in ${runs} runs (${listCalls} list calls compared with the oracle)`,
    pass: found === 0 && runs >= 1000,
  });
});
