// The policy oracle of the property test (policy-property.test.ts): the shape of the small network
// the test builds, and who may see and do what in it, written from the spec (SPEC §3, §6, §12,
// §14.1, §14.2, §14.8), not from src/modules/referrals/access.ts, so that the test holds the API to an independent
// reading. Pure: no app, no database.

// ─── The network ────────────────────────────────────────────────────────────────────────────────

export type OfficeKey = 'A' | 'B';
export type PracticeKey = 'P1' | 'P2';
export type TherapistKey = 'P1.t1' | 'P1.t2' | 'P2.t1' | 'P2.t2' | 'P2.t3';
export type NearKey = 'P1' | 'P2' | 'both' | 'nowhere';

// Two practices 16 km apart (0.2° of longitude at 44° N); every therapist serves 25 km around
// their practice. The offers' circles are chosen so that each reaches a clear-cut set of practices,
// with kilometres to spare on either side of every boundary.
export const practiceLocations: Record<PracticeKey, { lat: number; lng: number }> = {
  P1: { lat: 44.05, lng: -123.1 },
  P2: { lat: 44.05, lng: -122.9 },
};
export const serviceRadiusKm = 25;
export const nearTargets: Record<NearKey, { near: { lat: number; lng: number }; radiusKm: number; reaches: PracticeKey[] }> = {
  P1: { near: practiceLocations.P1, radiusKm: 5, reaches: ['P1'] },
  P2: { near: practiceLocations.P2, radiusKm: 5, reaches: ['P2'] },
  both: { near: { lat: 44.05, lng: -123.0 }, radiusKm: 12, reaches: ['P1', 'P2'] },
  nowhere: { near: { lat: 45.5, lng: -122.6 }, radiusKm: 50, reaches: [] },
};
export const nearKeys = Object.keys(nearTargets) as NearKey[];

export const therapistProfiles: Record<TherapistKey, { practice: PracticeKey; techniques: string[]; accepting: boolean; licensed: boolean }> = {
  'P1.t1': { practice: 'P1', techniques: ['trigger_point', 'myofascial_release'], accepting: true, licensed: true },
  'P1.t2': { practice: 'P1', techniques: ['trigger_point', 'swedish'], accepting: true, licensed: true },
  'P2.t1': { practice: 'P2', techniques: ['trigger_point', 'myofascial_release'], accepting: true, licensed: true },
  // Not accepting: never offered a network referral, and refused as a named target (§2, §3).
  'P2.t2': { practice: 'P2', techniques: ['trigger_point', 'myofascial_release', 'swedish'], accepting: false, licensed: true },
  // Accepting, but the network never verified the license (§14.2): never offered a network
  // referral, refused as a named target and at accept (409 license-invalid).
  'P2.t3': { practice: 'P2', techniques: ['trigger_point', 'myofascial_release', 'swedish'], accepting: true, licensed: false },
};
export const therapistKeys = Object.keys(therapistProfiles) as TherapistKey[];
export const techniqueSets = [['trigger_point'], ['trigger_point', 'myofascial_release'], ['swedish']] as const;

function haversineKm(a: { lat: number; lng: number }, b: { lat: number; lng: number }): number {
  const rad = (degrees: number) => (degrees * Math.PI) / 180;
  const h = Math.sin(rad(b.lat - a.lat) / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(rad(b.lng - a.lng) / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.sqrt(h));
}
// The geometry above, checked with the server's formula, so that a typo cannot silently change whom an offer reaches.
for (const [key, { near, radiusKm, reaches }] of Object.entries(nearTargets)) {
  for (const practice of Object.keys(practiceLocations) as PracticeKey[]) {
    const distance = haversineKm(near, practiceLocations[practice]);
    const reach = Math.min(radiusKm, serviceRadiusKm);
    if (reaches.includes(practice) !== distance <= reach || Math.abs(distance - reach) < 2) {
      throw new Error(`geometry: offer "${key}" is ${distance.toFixed(1)} km from ${practice} (reach ${reach} km)`);
    }
  }
}

export type Side = 'office' | 'practice' | 'network';

export interface Principal {
  /** How failures name it, e.g. "A.staff" or "P1.client". */
  key: string;
  side: Side;
  org: OfficeKey | PracticeKey | null;
  role: 'physician' | 'office_staff' | 'office_admin' | 'therapist' | 'practice_admin' | 'network_admin';
  /** A partner API client (it acts as its organization's staff, within its scopes: §6). */
  client: boolean;
  scopes: string[];
  therapist?: TherapistKey;
  id: string;
  token: string;
  signIn: () => Promise<string>;
}

// ─── The policy oracle (SPEC §3, §6, §12), independent of access.ts ─────────────────────────────

export const statuses = ['draft', 'sent', 'accepted', 'in_progress', 'completed', 'declined', 'cancelled', 'expired'] as const;
export type Status = (typeof statuses)[number];
export type Move = 'sign' | 'send' | 'accept' | 'decline' | 'cancel' | 'reroute' | 'amend';

export type Target = { kind: 'therapist'; therapist: TherapistKey } | { kind: 'practice'; practice: PracticeKey } | { kind: 'network'; near: NearKey };

export interface ReferralModel {
  label: string;
  id: string;
  office: OfficeKey;
  patientId: string;
  techniques: readonly string[];
  status: Status;
  version: number;
  visitsAuthorized: number;
  /** Ever sent: until then a referral is a draft of its office's alone, also once cancelled unsent. */
  sent: boolean;
  /** §14.1: the prescriber's order is signed; nothing unsigned is sent. */
  signed: boolean;
  /** §14.2: the order has precautions, which an accept must acknowledge. */
  precautions: boolean;
  target: Target;
  /** The open network offer: who it was made to when sent, and whether their share is still open. */
  offers: Map<TherapistKey, boolean>;
  acceptedBy: TherapistKey | null;
  /** The server's last change time, as its responses report it (milliseconds). */
  updatedAt: string;
  /** When it last changed, counted over the whole test: the sync feed is in change order (§10, §12). */
  changeNumber: number;
  /** How the run left it, for the final check's messages. */
  summary: string;
}

export interface PatientModel {
  label: string;
  id: string;
  office: OfficeKey;
  mrn: number;
}

export const practiceOf = (therapist: TherapistKey) => therapistProfiles[therapist].practice;

/** §3, §14.2: an open offer goes to every licensed therapist who accepts referrals, offers the techniques and is in range. */
export function offeredTo(near: NearKey, techniques: readonly string[]): TherapistKey[] {
  return therapistKeys.filter((key) => {
    const profile = therapistProfiles[key];
    return profile.accepting && profile.licensed && techniques.every((technique) => profile.techniques.includes(technique)) && nearTargets[near].reaches.includes(profile.practice);
  });
}

/**
 * §14.8: who, among those who see a referral, may know its patient: the office; on the practice
 * side only the accepting therapist and the admins and API clients of their practice.
 */
export function knowsPatient(principal: Principal, referral: ReferralModel): boolean {
  if (principal.side === 'office') return true;
  if (principal.side === 'network' || referral.acceptedBy === null) return false;
  if (principal.role === 'therapist') return referral.acceptedBy === principal.therapist;
  return practiceOf(referral.acceptedBy) === principal.org;
}

/** §6: which referrals a principal may see. */
export function sees(principal: Principal, referral: ReferralModel): boolean {
  // "The office, the referrals it sent" — and its drafts, which it wrote.
  if (principal.side === 'office') return referral.office === principal.org;
  // Network admins manage the network; they take part in no referral.
  if (principal.side === 'network') return false;
  // Nothing reaches the therapist side before it is sent.
  if (!referral.sent) return false;
  const { target } = referral;
  const openOffer = (therapist: TherapistKey) => target.kind === 'network' && referral.status === 'sent' && referral.offers.get(therapist) === true;
  if (principal.role === 'therapist') {
    // "Referrals targeted at them, at their practice, or open network offers that match them (until
    // someone else accepts)" — and the one they accepted.
    const me = principal.therapist!;
    return (
      (target.kind === 'therapist' && target.therapist === me) ||
      (target.kind === 'practice' && target.practice === principal.org) ||
      referral.acceptedBy === me ||
      openOffer(me)
    );
  }
  // "The practice admin, all of the practice's referrals" (and its API clients, §6): aimed at the
  // practice or one of its therapists, accepted by one of them, or an open offer one of them holds.
  const ours = (therapist: TherapistKey) => practiceOf(therapist) === principal.org;
  return (
    (target.kind === 'therapist' && ours(target.therapist)) ||
    (target.kind === 'practice' && target.practice === principal.org) ||
    (referral.acceptedBy !== null && ours(referral.acceptedBy)) ||
    therapistKeys.some((therapist) => ours(therapist) && openOffer(therapist))
  );
}

// Route-level permissions (§12 and §6 "within its scopes"): a caller whose role or scopes can never
// use a route gets 403 before any record is looked up, so the answer says nothing about an id.
const hasScope = (principal: Principal, scope: string) => !principal.client || principal.scopes.includes(scope);
export const mayPrescribe = (principal: Principal) => principal.side === 'office' && hasScope(principal, 'referrals:write');
export const mayMove = (principal: Principal) => hasScope(principal, 'referrals:write');
export const mayReadReferrals = (principal: Principal) => hasScope(principal, 'referrals:read');
/** §14.1: what only the prescriber orders (signing, amendments that add care): physicians, and EHRs that vouch with referrals:sign. */
export const mayOrder = (principal: Principal) => (principal.client ? principal.scopes.includes('referrals:sign') : principal.role === 'physician');
/**
 * §14.1: whether a referral is signed as it is created: a physician prescribing for themselves signs
 * by creating it; an EHR with referrals:sign vouches for the prescriber it names.
 */
export const signsAtCreate = (creator: Principal, prescriber: 'omit' | 'own' | 'foreign') =>
  creator.client ? creator.scopes.includes('referrals:sign') : creator.role === 'physician' && prescriber !== 'foreign';
/** §14.1: how a signature is made: by the physician themself, or attested by the EHR that vouches for them. */
export const signatureMethod = (signer: Principal): 'physician' | 'ehr_attested' => (signer.client ? 'ehr_attested' : 'physician');
export const mayReadPatients = (principal: Principal) => principal.side === 'office' && hasScope(principal, 'patients:read');
export const mayWritePatients = (principal: Principal) => principal.side === 'office' && hasScope(principal, 'patients:write');


export const officeMoves: ReadonlySet<Move> = new Set(['sign', 'send', 'cancel', 'reroute', 'amend']);
const openStatuses: readonly Status[] = ['draft', 'sent', 'accepted', 'declined', 'in_progress'];
/** §3's diagram. */
export const legalFrom: Record<Move, readonly Status[]> = {
  // Signing moves no status; an open referral may be signed.
  sign: openStatuses,
  send: ['draft'],
  accept: ['sent'],
  decline: ['sent'],
  reroute: ['declined'],
  cancel: openStatuses,
  amend: openStatuses,
};

export function eligibleToAccept(referral: ReferralModel, therapist: TherapistKey): boolean {
  const { target } = referral;
  if (target.kind === 'therapist') return target.therapist === therapist;
  if (target.kind === 'practice') return practiceOf(therapist) === target.practice;
  return referral.offers.get(therapist) === true;
}

export interface MoveRequest {
  move: Move;
  ifMatch: 'none' | 'current' | 'stale';
  /** accept: the therapist named in the body, if any. */
  named?: TherapistKey | undefined;
  /** reroute: the new target. */
  target?: Target | undefined;
  /** amend: whether visitsAuthorized really rises. */
  raise?: boolean;
  /** sign: whether the draft is sent in the same change. */
  alsoSend?: boolean;
  /** accept: whether the body acknowledges the precautions (§14.2). */
  acknowledged?: boolean;
}

/** §3, §14.1: the problem codes of the 409s the spec names (a network offer that reaches nobody is a 409 without a named code). */
export type ConflictCode = 'illegal-transition' | 'signature-required' | 'already-signed' | 'license-invalid' | 'precautions-not-acknowledged';
export interface ExpectedAnswer {
  status: number;
  /** For a 409 the spec names: the problem's `code`, which tells which check refused it. */
  code?: ConflictCode;
  /** What the move does to the referral when it succeeds. */
  apply?: (referral: ReferralModel) => void;
}

/**
 * The answer a move must get, and what it does to the referral when it succeeds. The checks come in
 * the spec's order: the route's policy (403), the caller's part in the referral (404), If-Match
 * (412), the lifecycle (409 illegal-transition), then the move's own rules.
 */
export function expectMove(principal: Principal, referral: ReferralModel, request: MoveRequest): ExpectedAnswer {
  // §14.1: signing and amending are routes for prescribers only; every other move for those who may write referrals.
  if (!(request.move === 'sign' || request.move === 'amend' ? mayOrder(principal) : mayMove(principal))) return { status: 403 };
  const side: Side = officeMoves.has(request.move) ? 'office' : 'practice';
  // §6: outside the caller's part in the referral (or on the wrong side of this move) is the 404 of a missing record.
  if (!sees(principal, referral) || principal.side !== side) return { status: 404 };
  if (request.ifMatch === 'stale') return { status: 412 };
  if (!legalFrom[request.move].includes(referral.status)) return { status: 409, code: 'illegal-transition' };
  switch (request.move) {
    case 'sign': {
      // §14.1: a physician of the office who is not the prescriber gets 403 here. In this network
      // each office has one physician, who prescribes all its referrals (a foreign prescriber is
      // refused at create), so a physician who gets this far is the prescriber.
      if (referral.signed) return { status: 409, code: 'already-signed' };
      if (!request.alsoSend) return { status: 200, apply: (r) => Object.assign(r, { signed: true }) };
      // Signing and sending in one change: sending is a move of drafts only, and nothing is signed when it is refused.
      if (referral.status !== 'draft') return { status: 409, code: 'illegal-transition' };
      // (A referral past its expiresOn is 409 here; this network's referrals never reach theirs.)
      const offers = referral.target.kind === 'network' ? offeredTo(referral.target.near, referral.techniques) : [];
      if (referral.target.kind === 'network' && offers.length === 0) return { status: 409 };
      return { status: 200, apply: (r) => Object.assign(r, { signed: true, status: 'sent', sent: true, offers: new Map(offers.map((k) => [k, true])) }) };
    }
    case 'send': {
      // §14.1: nothing unsigned is sent (after the lifecycle, before the target and offer checks).
      if (!referral.signed) return { status: 409, code: 'signature-required' };
      const offers = referral.target.kind === 'network' ? offeredTo(referral.target.near, referral.techniques) : [];
      if (referral.target.kind === 'network' && offers.length === 0) return { status: 409 };
      return { status: 200, apply: (r) => Object.assign(r, { status: 'sent', sent: true, offers: new Map(offers.map((k) => [k, true])) }) };
    }
    case 'accept': {
      let therapist: TherapistKey | undefined;
      if (principal.role === 'therapist') {
        if (request.named !== undefined && request.named !== principal.therapist) return { status: 400 };
        therapist = principal.therapist!;
      } else {
        therapist = request.named;
        if (therapist === undefined || practiceOf(therapist) !== principal.org) return { status: 400 };
      }
      if (!eligibleToAccept(referral, therapist)) return { status: 400 };
      // §14.2: a therapist whose license is not verified cannot accept; then the precautions are acknowledged.
      if (!therapistProfiles[therapist].licensed) return { status: 409, code: 'license-invalid' };
      if (referral.precautions && !request.acknowledged) return { status: 422, code: 'precautions-not-acknowledged' };
      const accepted = therapist;
      return { status: 200, apply: (r) => Object.assign(r, { status: 'accepted', acceptedBy: accepted }) };
    }
    case 'decline': {
      if (referral.target.kind !== 'network') return { status: 200, apply: (r) => Object.assign(r, { status: 'declined' }) };
      // An open offer is declined share by share (a practice declines its therapists' shares), and
      // as a whole once nobody holds an open share.
      const mine = principal.role === 'therapist' ? [principal.therapist!] : therapistKeys.filter((k) => practiceOf(k) === principal.org);
      return {
        status: 200,
        apply: (r) => {
          for (const therapist of mine) if (r.offers.get(therapist) === true) r.offers.set(therapist, false);
          if (![...r.offers.values()].some(Boolean)) r.status = 'declined';
        },
      };
    }
    case 'cancel':
      return { status: 200, apply: (r) => Object.assign(r, { status: 'cancelled' }) };
    case 'reroute': {
      // §14.1: nor rerouted (only a referral sent before signing existed can be declined unsigned, so
      // this network never reaches it).
      if (!referral.signed) return { status: 409, code: 'signature-required' };
      const target = request.target!;
      if (target.kind === 'therapist' && !therapistProfiles[target.therapist].accepting) return { status: 400 };
      if (target.kind === 'therapist' && !therapistProfiles[target.therapist].licensed) return { status: 409, code: 'license-invalid' };
      const offers = target.kind === 'network' ? offeredTo(target.near, referral.techniques) : [];
      if (target.kind === 'network' && offers.length === 0) return { status: 409 };
      return { status: 200, apply: (r) => Object.assign(r, { status: 'sent', sent: true, target, offers: new Map(offers.map((k) => [k, true])) }) };
    }
    case 'amend':
      if (!request.raise) return { status: 400 };
      return { status: 200, apply: (r) => Object.assign(r, { visitsAuthorized: r.visitsAuthorized + 1 }) };
  }
}
