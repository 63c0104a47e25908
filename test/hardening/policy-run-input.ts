// What one run of the policy property test (policy-property.test.ts) is made of: the patients and
// referrals it creates, the lifecycle moves it tries (by participants mostly, by strangers and
// wrong roles now and then), and how it reads the result back; as fast-check arbitraries, so that a
// failing run shrinks to the smallest that still fails.
import fc from 'fast-check';
import { nearKeys, statuses, techniqueSets, therapistKeys, type Move, type OfficeKey, type Status, type Target } from './policy-oracle.js';

/**
 * Who acts: one who takes part on the move's side (per the oracle; for a create, one who may
 * prescribe), anyone on that side, or anyone at all. Mostly the first, so that graphs grow deep;
 * the others are the strangers and wrong roles whose attempts must fail.
 */
export type ActorHint = { pool: 'participant' | 'side' | 'any'; index: number };
export type TargetSpec = { kind: 'therapist'; therapist: number } | { kind: 'practice'; practice: number } | { kind: 'network'; near: number };

export interface PatientSpec {
  creator: ActorHint;
  mrn: number;
}
export interface ReferralSpec {
  creator: ActorHint;
  /** A new patient given inline, or one registered earlier in the run: of the prescribing office, or of either office. */
  patient: { kind: 'inline'; mrn: number } | { kind: 'existing'; ofOffice: boolean; index: number };
  target: TargetSpec;
  techniques: number;
  send: boolean;
  prescriber: 'omit' | 'own' | 'foreign';
  /** §14.2: the order carries a precaution. */
  precautions: boolean;
}
export interface ActionSpec {
  referral: number;
  /** A given move (often illegal where it lands), or the next step of the lifecycle from wherever the referral is. */
  move: Move | 'next';
  moveIndex: number;
  actor: ActorHint;
  /** accept: none, a therapist eligible for the caller's practice, or a given therapist. */
  named: 'none' | 'eligible' | number;
  target: TargetSpec;
  ifMatch: 'none' | 'current' | 'stale';
  raise: boolean;
  /** sign: send the draft in the same change. */
  alsoSend: boolean;
  /** accept: the body acknowledges the precautions. */
  acknowledged: boolean;
}
export interface Probes {
  pageSize: number;
  /** Per principal (in the order of `principals`): read the feed with this run's filters, or plain and paged. */
  filtered: boolean[];
  statusFilter: Status[] | null;
  since: { kind: 'none' } | { kind: 'runStart' } | { kind: 'future' } | { kind: 'referral'; index: number; deltaMs: number };
  patientFilter: number | null;
  mrn: number;
  /** Which office's patients are searched, and by which of its principals. */
  patientSearch: { office: OfficeKey; principal: number };
  /** Principals the run did not touch whose feeds are read all the same. */
  bystanders: number[];
  reads: { principal: number; referral: number }[];
  patientReads: { principal: number; patient: number }[];
}
export interface RunInput {
  patients: PatientSpec[];
  referrals: ReferralSpec[];
  actions: ActionSpec[];
  probes: Probes;
}

const actorHint = fc.record({
  pool: fc.oneof({ arbitrary: fc.constant('participant' as const), weight: 6 }, { arbitrary: fc.constant('side' as const), weight: 2 }, { arbitrary: fc.constant('any' as const), weight: 1 }),
  index: fc.nat(63),
});
const targetSpec: fc.Arbitrary<TargetSpec> = fc.oneof(
  fc.record({ kind: fc.constant('therapist' as const), therapist: fc.nat(therapistKeys.length - 1) }),
  fc.record({ kind: fc.constant('practice' as const), practice: fc.nat(1) }),
  fc.record({ kind: fc.constant('network' as const), near: fc.nat(nearKeys.length - 1) }),
);
/** A run, for a network of `principalCount` principals (each gets its own choice of how its feed is read). */
export function runInputArbitrary(principalCount: number): fc.Arbitrary<RunInput> {
  return fc.record({
    patients: fc.array(fc.record({ creator: actorHint, mrn: fc.nat(1) }), { maxLength: 1 }),
    referrals: fc.array(
      fc.record({
        creator: actorHint,
        patient: fc.oneof(
          { arbitrary: fc.record({ kind: fc.constant('inline' as const), mrn: fc.nat(1) }), weight: 6 },
          { arbitrary: fc.record({ kind: fc.constant('existing' as const), ofOffice: fc.constant(true), index: fc.nat(7) }), weight: 3 },
          { arbitrary: fc.record({ kind: fc.constant('existing' as const), ofOffice: fc.constant(false), index: fc.nat(7) }), weight: 1 },
        ),
        target: targetSpec,
        techniques: fc.nat(techniqueSets.length - 1),
        send: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
        prescriber: fc.oneof(
          { arbitrary: fc.constant('own' as const), weight: 12 },
          { arbitrary: fc.constant('omit' as const), weight: 3 },
          { arbitrary: fc.constant('foreign' as const), weight: 1 },
        ),
        precautions: fc.boolean(),
      }),
      { minLength: 1, maxLength: 4 },
    ),
    actions: fc.array(
      fc.record({
        // Mostly the first referral, so that one of each run's graphs goes through several moves.
        referral: fc.oneof({ arbitrary: fc.constant(0), weight: 2 }, { arbitrary: fc.nat(3), weight: 1 }),
        move: fc.oneof(
          { arbitrary: fc.constant('next' as const), weight: 6 },
          { arbitrary: fc.constantFrom<Move>('sign', 'send', 'accept', 'decline', 'cancel', 'reroute', 'amend'), weight: 4 },
        ),
        moveIndex: fc.nat(63),
        actor: actorHint,
        named: fc.oneof(
          { arbitrary: fc.constant('eligible' as const), weight: 4 },
          { arbitrary: fc.constant('none' as const), weight: 1 },
          { arbitrary: fc.nat(therapistKeys.length - 1), weight: 1 },
        ),
        target: targetSpec,
        ifMatch: fc.oneof(
          { arbitrary: fc.constant('none' as const), weight: 5 },
          { arbitrary: fc.constant('current' as const), weight: 2 },
          { arbitrary: fc.constant('stale' as const), weight: 1 },
        ),
        raise: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
        alsoSend: fc.boolean(),
        acknowledged: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
    probes: fc.record({
      // Small pages cut a run's few rows across pages; 50 reads them in one.
      pageSize: fc.constantFrom(1, 2, 3, 50),
      filtered: fc.array(fc.boolean(), { minLength: principalCount, maxLength: principalCount }),
      statusFilter: fc.option(fc.subarray([...statuses], { minLength: 1, maxLength: 3 }), { freq: 3 }),
      since: fc.oneof(
        fc.constant({ kind: 'none' as const }),
        fc.constant({ kind: 'runStart' as const }),
        fc.constant({ kind: 'future' as const }),
        fc.record({ kind: fc.constant('referral' as const), index: fc.nat(3), deltaMs: fc.integer({ min: -1, max: 1 }) }),
      ),
      patientFilter: fc.option(fc.nat(7), { freq: 3 }),
      mrn: fc.nat(1),
      patientSearch: fc.record({ office: fc.constantFrom<OfficeKey>('A', 'B'), principal: fc.nat(63) }),
      bystanders: fc.array(fc.nat(63), { minLength: 1, maxLength: 1 }),
      reads: fc.array(fc.record({ principal: fc.nat(63), referral: fc.nat(3) }), { maxLength: 1 }),
      patientReads: fc.array(fc.record({ principal: fc.nat(63), patient: fc.nat(7) }), { maxLength: 1 }),
    }),
  });
}

/** Where a lifecycle usually goes next from each status (repeats weigh the choice); the rest are dead ends. */
const nextSteps: Record<Status, readonly Move[]> = {
  // A signed draft is sent (signing it again is 409 already-signed).
  draft: ['send', 'send', 'send', 'sign', 'cancel', 'amend'],
  sent: ['accept', 'accept', 'decline', 'decline', 'cancel', 'amend'],
  declined: ['reroute', 'reroute', 'reroute', 'cancel', 'amend'],
  accepted: ['cancel', 'amend', 'decline'],
  in_progress: ['cancel', 'amend'],
  completed: ['cancel', 'amend'],
  cancelled: ['send', 'reroute', 'accept'],
  expired: ['amend'],
};
/**
 * SPEC §14.1: an unsigned draft goes to its prescriber to be signed (and sent in the same change, or
 * after); sending it first is 409 signature-required.
 */
const unsignedDraftSteps: readonly Move[] = ['sign', 'sign', 'sign', 'send', 'cancel', 'amend'];
export const nextStepsOf = (status: Status, signed: boolean): readonly Move[] => (status === 'draft' && !signed ? unsignedDraftSteps : nextSteps[status]);

export function resolveTarget(spec: TargetSpec): Target {
  if (spec.kind === 'therapist') return { kind: 'therapist', therapist: therapistKeys[spec.therapist % therapistKeys.length]! };
  if (spec.kind === 'practice') return { kind: 'practice', practice: (['P1', 'P2'] as const)[spec.practice % 2]! };
  return { kind: 'network', near: nearKeys[spec.near % nearKeys.length]! };
}

export const describeTarget = (target: Target) =>
  target.kind === 'therapist' ? `therapist ${target.therapist}` : target.kind === 'practice' ? `practice ${target.practice}` : `network offer near ${target.near}`;

export const pick = <T>(list: readonly T[], index: number): T => list[index % list.length]!;
