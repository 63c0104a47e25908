// The referral lifecycle as the server enforces it: each move checks who asks, the version and the
// state machine under the row lock, then writes the change, its history and its audit event in
// one transaction.
import type { Database, Executor } from '../../db/database.js';
import type { ReferralEventType } from '../../lib/vocabulary.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { ReferralStatus } from '../../lib/vocabulary.js';
import { addDays, todayUtc } from '../../lib/dates.js';
import { assertIfMatch } from '../../lib/etag.js';
import { conflict, notFound, validationFailed, type FieldProblem } from '../../lib/errors.js';
import type { AuditContext } from '../audit/audit-log.js';
import { clientActingRole, type OrganizationKind, type Principal } from '../auth/policy.js';
import { PatientsRepository } from '../patients/patients-repository.js';
import { sideOf, type ReferralSide } from './access.js';
import { assertMoveAllowed, targetStatus, type ReferralMove } from './lifecycle.js';
import { actorOf } from './actors.js';
import { Visits } from './visits.js';
import { Reporting } from './reporting.js';
import { Renewals } from './renewals.js';
import { Continuations } from './continuations.js';
import { Holds } from './holds.js';
import { emptyThread, ReferralsRepository, toReferral, type ReferralListFilter, type ReferralRow } from './referrals-repository.js';
import type { AcceptReferral, AmendReferral, CreateReferral, Referral, ReferralEvent, RerouteReferral, SignReferral } from './schemas.js';
import { prescriberOnly, signatureAtCreate, signatureBy, signatureRequired, signingMethodOf } from './signatures.js';
import { matchOffer, resolveTarget, targetShapeProblems } from './targets.js';
import { hasPrecautions, precautionsNotAcknowledged } from './precautions.js';
import { licenseInvalid, licenseProblems } from '../../lib/licenses.js';

/** The domain event each move announces (a declined share of an open offer announces nothing). */
const eventOfMove: Partial<Record<ReferralMove, ReferralEventType>> = {
  send: 'referral.sent',
  accept: 'referral.accepted',
  decline: 'referral.declined',
  cancel: 'referral.cancelled',
  reroute: 'referral.sent',
  amend: 'referral.amended',
  expire: 'referral.expired',
};

const movesNeedingTime: ReadonlySet<ReferralMove> = new Set(['send', 'accept', 'reroute']);

/** What a move changes, and the history steps it records (one, named after the move, unless told). */
interface MoveDecision {
  changes: Partial<ReferralRow>;
  action?: 'decline_offer';
  steps?: { action: ReferralEvent['action']; toStatus: ReferralStatus }[];
  reason?: string | undefined;
  eventChanges?: Record<string, unknown>;
}

/** The sweep may not have run yet: a referral past its last day is not sent out or taken on. */
function assertNotExpired(current: ReferralRow): void {
  if (current.expiresOn < todayUtc()) {
    throw conflict('referral-expired', `The referral expired after ${current.expiresOn}; the prescriber can extend expiresOn first`, {
      currentStatus: current.status,
    });
  }
}

export interface MoveRequest {
  context: AuditContext;
  principal: Principal;
  referralId: string;
  ifMatch: string | undefined;
}

export class ReferralWorkflow {
  readonly referrals: ReferralsRepository;
  private readonly patients: PatientsRepository;
  /** Visits recorded against referrals (visit notes), which move them through their lifecycle. */
  readonly visits: Visits;
  /** Reports to the prescriber: written under the referral's lock; a discharge completes it. */
  readonly reporting: Reporting;
  /** Renewal requests and the prescriber's decisions (SPEC §14.4). */
  readonly renewals: Renewals;
  private readonly continuations: Continuations;
  /** Treatment held after a severe adverse event, and resumed by the prescriber (SPEC §14.10). */
  readonly holds: Holds;

  constructor(
    db: Database,
    private readonly units: UnitsOfWork,
  ) {
    this.referrals = new ReferralsRepository(db);
    this.patients = new PatientsRepository(db);
    this.visits = new Visits(this.referrals);
    this.reporting = new Reporting(this.referrals);
    this.renewals = new Renewals(db, this.referrals, this.reporting, units);
    this.continuations = new Continuations(this.referrals);
    this.holds = new Holds(this.referrals, units);
  }

  async create(context: AuditContext, principal: Principal, input: CreateReferral): Promise<Referral> {
    const officeId = principal.organizationId!;
    const problems: FieldProblem[] = [...targetShapeProblems(input)];
    if ((input.patientId === undefined) === (input.patient === undefined)) {
      problems.push({ field: 'patientId', message: 'give exactly one of patientId and patient' });
    }
    const startDate = input.startDate ?? todayUtc();
    const expiresOn = input.expiresOn ?? addDays(startDate, 90);
    if (expiresOn <= startDate) problems.push({ field: 'expiresOn', message: 'must be after startDate' });
    else if (expiresOn < todayUtc()) problems.push({ field: 'expiresOn', message: 'must not be in the past' });
    if (expiresOn > addDays(startDate, 366)) problems.push({ field: 'expiresOn', message: 'must be within a year of startDate' });
    if (input.startDate && input.startDate < addDays(todayUtc(), -30)) {
      problems.push({ field: 'startDate', message: 'must not be more than 30 days in the past' });
    }
    if (input.patient && input.patient.birthDate > todayUtc()) problems.push({ field: 'patient.birthDate', message: 'must not be in the future' });
    if (principal.role !== 'physician' && input.prescriberId === undefined) {
      problems.push({ field: 'prescriberId', message: 'is required unless a physician sends the referral' });
    }
    if (problems.length > 0) throw validationFailed(problems);

    const prescriberId = input.prescriberId ?? principal.id;
    if (!(await this.referrals.isPhysicianOf({ organizationId: officeId, userId: prescriberId }))) {
      throw validationFailed([{ field: 'prescriberId', message: 'is not an active physician of your office' }]);
    }
    if (input.patientId && !(await this.patients.findInOrganization({ organizationId: officeId, patientId: input.patientId }))) {
      throw validationFailed([{ field: 'patientId', message: 'is not a patient of your office' }]);
    }
    const continued = input.continuesReferralId ? await this.continuations.continuable(officeId, input) : undefined;
    const signature = signatureAtCreate(principal, prescriberId);
    if (input.send && !signature) throw signatureRequired();
    const target = await resolveTarget(this.referrals, input, input.techniques);
    const visitsAuthorized = input.visitsAuthorized ?? Math.min(input.frequencyPerWeek * input.durationWeeks, 100);

    return this.units.run(context, async (unit) => {
      const { tx } = unit;
      const registered = input.patient ? await this.patients.create({ organizationId: officeId, createdBy: principal.id, input: input.patient }, tx) : undefined;
      const patientId = registered?.id ?? input.patientId!;
      const status: ReferralStatus = input.send ? 'sent' : 'draft';
      const row = await this.referrals.insert(
        {
          organizationId: officeId,
          patientId,
          prescriberId,
          createdBy: principal.id,
          status,
          diagnoses: input.diagnoses,
          reason: input.reason,
          goals: input.goals ?? [],
          precautions: input.precautions ?? [],
          contraindications: input.contraindications ?? '',
          techniques: input.techniques,
          bodyRegions: input.bodyRegions,
          frequencyPerWeek: input.frequencyPerWeek,
          durationWeeks: input.durationWeeks,
          sessionMinutes: input.sessionMinutes,
          visitsAuthorized,
          startDate,
          expiresOn,
          priority: input.priority ?? 'routine',
          insurance: input.insurance ?? null,
          reportEveryVisits: input.reportEveryVisits ?? 10,
          continuesReferralId: continued?.id ?? null,
          signature,
          ...target,
        },
        tx,
      );
      if (input.send && target.networkOffer) {
        await this.referrals.replaceOffers(row.id, await matchOffer(this.referrals, target.networkOffer, tx), tx);
      }
      if (input.send) unit.emit({ type: 'referral.sent', referral: row });
      if (continued) await this.continuations.link(unit, principal, continued, row.id);
      if (input.patient) unit.audit({ action: 'patient.create', httpStatus: 201, resourceType: 'patient', resourceId: patientId, patientId });
      unit.audit({ action: 'referral.create', httpStatus: 201, resourceType: 'referral', resourceId: row.id, patientId });
      const actor = actorOf(principal);
      // Independent statements, sent together: postgres.js pipelines them on the transaction's
      // connection (with the event's, which started above), one round trip instead of several.
      const [, patient] = await Promise.all([
        this.referrals.appendEvents(
          [
            { referralId: row.id, action: 'create', fromStatus: null, toStatus: 'draft', version: 1, actor },
            ...(input.send ? [{ referralId: row.id, action: 'send' as const, fromStatus: 'draft' as const, toStatus: 'sent' as const, version: 1, actor }] : []),
          ],
          tx,
        ),
        registered ?? this.referrals.patientSummary(patientId, tx),
      ]);
      return toReferral(row, patient, principal, emptyThread);
    });
  }

  /** The referral as the caller may see it, or the 404 every outsider gets. */
  async read(principal: Principal, referralId: string) {
    const found = await this.referrals.findFor({ principal, id: referralId });
    if (!found) throw await this.notFound(referralId);
    return found;
  }

  /**
   * The sync feed with more filters (the FHIR searches): referrals as the caller may see them, each
   * with its Task id and its place in the feed. One more than `limit` is read, to tell a next page.
   */
  async search(filter: ReferralListFilter): Promise<{ referral: Referral; taskId: string; patientId: string; syncKey: string }[]> {
    const rows = await this.referrals.list(filter);
    const now = new Date();
    return rows.map((row) => ({
      referral: toReferral(row.referral, row.patient, filter.principal, row.thread, now),
      taskId: row.referral.taskId,
      // For the audit trail: also the limited view discloses the patient's order.
      patientId: row.referral.patientId,
      syncKey: row.syncKey,
    }));
  }

  /** The referral whose FHIR Task this is, as the caller may see it, or the 404 every outsider gets. */
  async readByTask(principal: Principal, taskId: string) {
    const referralId = await this.referrals.idOfTask(taskId);
    const found = referralId ? await this.referrals.findFor({ principal, id: referralId }) : undefined;
    if (!found) throw notFound('task', taskId, 'Task', referralId ? await this.referrals.patientIdOf(referralId) : undefined);
    return { referral: toReferral(found.referral, found.patient, principal, found.thread), taskId, patientId: found.referral.patientId };
  }

  /** The referral in the caller's view, with its Task id, or the 404 every outsider gets. */
  async view(principal: Principal, referralId: string) {
    const found = await this.read(principal, referralId);
    return { referral: toReferral(found.referral, found.patient, principal, found.thread), taskId: found.referral.taskId, patientId: found.referral.patientId };
  }

  /** Why each of these referrals was last declined or cancelled (the reason the move was given). */
  async closingReasons(referralIds: readonly string[]): Promise<Map<string, string | null>> {
    return this.referrals.latestReasons(referralIds, ['decline', 'cancel']);
  }

  /** Whether a person or organization takes part in a referral the caller may see. */
  async isCounterpartOf(principal: Principal, party: { userId: string } | { organizationId: string }): Promise<boolean> {
    return this.referrals.isCounterpartOf(principal, party);
  }

  /** The referral if the caller takes part in its care (not merely holds an open offer), else 404. */
  async readParticipating(principal: Principal, referralId: string) {
    return (await this.readCare(principal, referralId)).referral;
  }

  /** The referral and its patient, if the caller takes part in its care, else 404. */
  async readCare(principal: Principal, referralId: string) {
    const found = await this.referrals.findFor({ principal, id: referralId, participating: true });
    if (!found) throw await this.notFound(referralId);
    return found;
  }

  /**
   * For a change another module makes on a referral (a message): the referral locked in that
   * change's transaction, if the caller takes part in its care. The lock is the one every change
   * of the referral takes, so changes of one referral are written in one order.
   */
  async lockParticipating(principal: Principal, referralId: string, tx: Executor): Promise<ReferralRow | undefined> {
    return (await this.referrals.findFor({ principal, id: referralId, lock: true, participating: true }, tx))?.referral;
  }

  /**
   * For a sweep of another module (escalating what nobody acknowledged): the referral under its row
   * lock in the sweep's transaction, taken before the sweep locks rows of its own, in the order every
   * change of the referral takes them, so the two queue instead of deadlocking. It waits for a change
   * under way rather than skip the referral: sweeps at once on two records of one referral would
   * otherwise each leave the other's record to a later run.
   */
  async lockForSweep(referralId: string, tx: Executor): Promise<ReferralRow> {
    return (await this.referrals.lock(referralId, tx)).referral;
  }

  /**
   * Which of the referrals an organization as a whole (its API clients, its webhook endpoints) may
   * still see: the rule of SPEC §6 for an organization-wide caller, checked when deliveries are made.
   */
  async referralsOrganizationTakesPartIn(organization: { id: string; kind: OrganizationKind }, referralIds: readonly string[]): Promise<Set<string>> {
    const principal: Principal = {
      kind: 'api_client',
      id: organization.id,
      organizationId: organization.id,
      organizationKind: organization.kind,
      role: clientActingRole(organization.kind),
      scopes: [],
    };
    return this.referrals.visibleAmong({ principal, ids: referralIds });
  }

  /** The outsider's 404; the audit record of the attempt names the patient, if the referral exists. */
  async notFound(referralId: string) {
    return notFound('referral', referralId, 'Referral', await this.referrals.patientIdOf(referralId));
  }

  async send(request: MoveRequest): Promise<Referral> {
    return this.move(request, 'office', 'send', async (row, tx) => {
      if (!row.signature) throw signatureRequired();
      await this.offerToNetwork(row, tx);
      return { changes: { status: 'sent' } };
    });
  }

  async accept(request: MoveRequest, body: AcceptReferral): Promise<Referral> {
    const { principal } = request;
    return this.move(request, 'practice', 'accept', async (row, tx) => {
      const therapistId = principal.role === 'therapist' ? principal.id : body.therapistId;
      if (principal.role === 'therapist' && body.therapistId !== undefined && body.therapistId !== principal.id) {
        throw validationFailed([{ field: 'therapistId', message: 'a therapist accepts as themself; leave therapistId out' }]);
      }
      if (therapistId === undefined) {
        throw validationFailed([{ field: 'therapistId', message: 'name the therapist of your practice who accepts the referral' }]);
      }
      const therapist = await this.referrals.findTherapist(therapistId, tx);
      if (!therapist || therapist.practiceId !== principal.organizationId) {
        throw validationFailed([{ field: 'therapistId', message: 'is not an active therapist of your practice' }]);
      }
      const eligible =
        row.targetKind === 'therapist'
          ? row.targetTherapistId === therapistId
          : row.targetKind === 'practice'
            ? row.targetPracticeId === therapist.practiceId
            : await this.referrals.hasOpenOffer(row.id, therapistId, tx);
      if (!eligible) {
        throw validationFailed([{ field: 'therapistId', message: 'this referral was not sent to this therapist' }]);
      }
      const licenseTrouble = licenseProblems(therapist);
      if (licenseTrouble.length > 0) {
        throw licenseInvalid(principal.role === 'therapist' ? 'Your' : "The accepting therapist's", therapist, licenseTrouble);
      }
      const warned = hasPrecautions(row);
      if (warned && body.acknowledgedPrecautions !== true) throw precautionsNotAcknowledged();
      return {
        changes: { status: 'accepted', acceptedTherapistId: therapistId, acceptedPracticeId: therapist.practiceId!, acceptedAt: new Date() },
        eventChanges: { therapistId, ...(warned && { acknowledgedPrecautions: true }) },
      };
    });
  }

  async decline(request: MoveRequest, reason: string): Promise<Referral> {
    const { principal } = request;
    return this.move(request, 'practice', 'decline', async (row, tx) => {
      if (row.targetKind !== 'network') return { changes: { status: 'declined' }, reason };
      // An open offer is declined per therapist (a practice admin declines it for all of the
      // practice's), and as a whole once nobody is left.
      const by = principal.role === 'therapist' ? { therapistId: principal.id } : { practiceId: principal.organizationId! };
      const open = await this.referrals.declineOffers(row.id, by, tx);
      return open > 0 ? { action: 'decline_offer', changes: {}, reason } : { changes: { status: 'declined' }, reason };
    });
  }

  /** Sending a network referral offers it to whoever matches it now (409 when nobody does). */
  private async offerToNetwork(row: ReferralRow, tx: Executor): Promise<void> {
    if (row.networkOffer) await this.referrals.replaceOffers(row.id, await matchOffer(this.referrals, row.networkOffer, tx), tx);
  }

  /** The prescriber signs the order (SPEC §14.1), and may send the draft in the same change. */
  async sign(request: MoveRequest, body: SignReferral): Promise<Referral> {
    return this.move(request, 'office', 'sign', async (row, tx) => {
      const method = signingMethodOf(request.principal, row.prescriberId);
      if (!method) throw prescriberOnly('sign this referral', row);
      if (row.signature) {
        throw conflict('already-signed', `The referral was already signed at ${row.signature.signedAt}`, { currentStatus: row.status });
      }
      const signature = signatureBy(method, row.prescriberId);
      if (!body.send) return { changes: { signature }, eventChanges: { method } };
      assertMoveAllowed('send', row.status);
      assertNotExpired(row);
      await this.offerToNetwork(row, tx);
      return {
        changes: { signature, status: 'sent' },
        steps: [
          { action: 'sign', toStatus: row.status },
          { action: 'send', toStatus: 'sent' },
        ],
        eventChanges: { method },
      };
    });
  }

  async cancel(request: MoveRequest, reason: string): Promise<Referral> {
    return this.move(request, 'office', 'cancel', async () => ({ changes: { status: 'cancelled' }, reason }));
  }

  async reroute(request: MoveRequest, body: RerouteReferral): Promise<Referral> {
    return this.move(request, 'office', 'reroute', async (row, tx) => {
      // Legacy referrals sent before orders were signed go out again only once signed.
      if (!row.signature) throw signatureRequired();
      const target = await resolveTarget(this.referrals, body, row.techniques, tx);
      await this.referrals.replaceOffers(row.id, target.networkOffer ? await matchOffer(this.referrals, target.networkOffer, tx) : [], tx);
      return {
        changes: { status: 'sent', ...target },
        reason: body.reason,
        eventChanges: {
          from: { targetKind: row.targetKind, therapistId: row.targetTherapistId, practiceId: row.targetKind === 'practice' ? row.targetPracticeId : null, network: row.networkOffer },
          to: { targetKind: target.targetKind, therapistId: target.targetTherapistId, practiceId: target.targetKind === 'practice' ? target.targetPracticeId : null, network: target.networkOffer },
        },
      };
    });
  }

  async amend(request: MoveRequest, body: AmendReferral): Promise<Referral> {
    return this.move(request, 'office', 'amend', async (row) => {
      // Every amendment raises the visits or extends the expiry: more care, which the prescriber orders.
      if (!signingMethodOf(request.principal, row.prescriberId)) throw prescriberOnly('raise visitsAuthorized or extend expiresOn', row);
      const problems: FieldProblem[] = [];
      if (body.expiresOn === undefined && body.visitsAuthorized === undefined) {
        throw validationFailed(
          ['expiresOn', 'visitsAuthorized'].map((field) => ({ field, message: 'an amendment extends expiresOn or raises visitsAuthorized, or both' })),
        );
      }
      const changes: Partial<ReferralRow> = {};
      const eventChanges: Record<string, unknown> = {};
      if (body.expiresOn !== undefined) {
        if (body.expiresOn <= row.expiresOn) problems.push({ field: 'expiresOn', message: `must be later than the current expiry ${row.expiresOn}` });
        else if (body.expiresOn > addDays(row.startDate, 366)) problems.push({ field: 'expiresOn', message: 'must be within a year of startDate' });
        changes.expiresOn = body.expiresOn;
        eventChanges.expiresOn = { from: row.expiresOn, to: body.expiresOn };
      }
      if (body.visitsAuthorized !== undefined) {
        if (body.visitsAuthorized <= row.visitsAuthorized) {
          problems.push({ field: 'visitsAuthorized', message: `must be higher than the current ${row.visitsAuthorized}` });
        }
        changes.visitsAuthorized = body.visitsAuthorized;
        eventChanges.visitsAuthorized = { from: row.visitsAuthorized, to: body.visitsAuthorized };
      }
      if (problems.length > 0) throw validationFailed(problems);
      return { changes, reason: body.reason, eventChanges };
    });
  }

  /**
   * One move: the caller must see the referral and be on the side that makes this move (else the
   * same 404 as a stranger); then, under the row lock, the version and the state machine decide.
   */
  private async move(
    { context, principal, referralId, ifMatch }: MoveRequest,
    side: ReferralSide,
    move: ReferralMove,
    decide: (row: ReferralRow, tx: Executor) => Promise<MoveDecision>,
  ): Promise<Referral> {
    const visible = await this.referrals.findFor({ principal, id: referralId });
    if (!visible || sideOf(principal) !== side) throw await this.notFound(referralId);
    return this.units.run(context, async (unit) => {
      const { tx } = unit;
      // Concurrent moves of one referral queue on this lock; each then sees the winner's result.
      const { referral: current, patient } = await this.referrals.lock(referralId, tx);
      assertIfMatch(ifMatch, current.version);
      assertMoveAllowed(move, current.status);
      if (movesNeedingTime.has(move)) assertNotExpired(current);
      const decision = await decide(current, tx);
      const updated = await this.referrals.update(referralId, decision.changes, tx);
      const steps = decision.steps ?? [{ action: decision.action ?? move, toStatus: updated.status }];
      await this.referrals.appendEvents(
        steps.map((step, index) => ({
          referralId,
          action: step.action,
          fromStatus: index === 0 ? current.status : steps[index - 1]!.toStatus,
          toStatus: step.toStatus,
          version: updated.version,
          actor: actorOf(principal),
          reason: decision.reason,
          changes: index === 0 ? decision.eventChanges : undefined,
        })),
        tx,
      );
      for (const step of steps) {
        const eventType = eventOfMove[step.action as ReferralMove];
        if (eventType && step.action !== 'decline_offer') unit.emit({ type: eventType, referral: updated });
        unit.audit({ action: `referral.${step.action === 'decline_offer' ? move : step.action}`, httpStatus: 200, resourceType: 'referral', resourceId: referralId, patientId: current.patientId });
      }
      // Shown as the caller now may see it: a decline before acceptance stays limited, an accept is the caller's to read in full.
      return toReferral(updated, patient, principal, visible.thread);
    });
  }

  /** Expires open referrals whose last day has passed; returns how many. Safe to run on several workers at once. */
  async expireDue(context: AuditContext, batchSize = 100): Promise<number> {
    let expired = 0;
    for (;;) {
      const count = await this.units.run(context, async (unit) => {
        const { tx } = unit;
        const due = await this.referrals.lockExpired(batchSize, tx);
        for (const row of due) {
          const updated = await this.referrals.update(row.id, { status: targetStatus('expire', row.status) }, tx);
          await this.referrals.appendEvent(
            { referralId: row.id, action: 'expire', fromStatus: row.status, toStatus: 'expired', version: updated.version, actor: { type: 'system', id: null, organizationId: null }, reason: `expiresOn ${row.expiresOn} passed` },
            tx,
          );
          unit.emit({ type: 'referral.expired', referral: updated });
          unit.audit({ action: 'referral.expire', resourceType: 'referral', resourceId: row.id, patientId: row.patientId });
        }
        return due.length;
      });
      expired += count;
      if (count < batchSize) return expired;
    }
  }
}
