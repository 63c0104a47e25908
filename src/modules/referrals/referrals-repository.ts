// SQL for referrals, their network offers and their history. Every read is scoped by the caller.
import { and, asc, eq, gt, gte, inArray, isNotNull, isNull, or, sql, type SQL } from 'drizzle-orm';
import { rowsOf, type Executor } from '../../db/database.js';
import {
  appointments,
  messageReadMarkers,
  messages,
  organizations,
  patients,
  referralEvents,
  referralOffers,
  referrals,
  therapistProfiles,
  users,
} from '../../db/schema.js';
import { isoDay } from '../../lib/dates.js';
import { expirableStatuses, type ReferralStatus } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';
import { licenseIsValid } from '../../lib/licenses.js';
import { reportDueOf } from './report-cadence.js';
import { distanceKm } from '../network/directory-repository.js';
import { openOfferFor, participatingIn, sideOf, visibleParts, visibleTo } from './access.js';
import { identifiedBy, identifiesPatient, limitedInsurance, limitedPatient } from './minimum-necessary.js';
import { unacknowledgedUrgentFor } from './urgent-activity.js';
import type { Referral, ReferralEvent } from './schemas.js';

export type ReferralRow = typeof referrals.$inferSelect;
type PatientRow = typeof patients.$inferSelect;
export type NewReferral = typeof referrals.$inferInsert;

const patientSummaryColumns = {
  id: patients.id,
  givenName: patients.givenName,
  familyName: patients.familyName,
  birthDate: patients.birthDate,
  sex: patients.sex,
  phone: patients.phone,
  email: patients.email,
};
type PatientSummaryRow = Pick<PatientRow, keyof typeof patientSummaryColumns>;

/**
 * What the referral's thread holds for one viewer, read with the referral itself: the referral's
 * read model spans the tables of its thread (messages, appointments), which other modules write.
 */
export interface ThreadSummary {
  /** Whether the viewer takes part in the thread (not merely holds an open offer). */
  inThread: boolean;
  unreadMessages: number;
  /** Urgent messages and adverse events waiting for the viewer's side to acknowledge them. */
  unacknowledgedUrgent: number;
  nextAppointmentAt: Date | null;
  noShows: number;
}

/** A referral nobody has written to yet. */
export const emptyThread: ThreadSummary = { inThread: true, unreadMessages: 0, unacknowledgedUrgent: 0, nextAppointmentAt: null, noShows: 0 };

/** ThreadSummary as columns of a referral read; `viewerId` may be a placeholder of a prepared statement. */
function threadColumns(viewer: Principal, viewerId: string | SQL) {
  const marker = sql`coalesce((select ${messageReadMarkers.lastReadSeq} from ${messageReadMarkers}
    where ${messageReadMarkers.referralId} = ${referrals.id} and ${messageReadMarkers.readerId} = ${viewerId}), 0)`;
  return {
    inThread: sql<boolean>`${participatingIn(viewer)}`.mapWith(Boolean),
    // Whoever is not in the thread (an offer's recipient) is told nothing of it.
    unreadMessages: sql<number>`case when ${participatingIn(viewer)} then (select count(*)::int from ${messages}
      where ${messages.referralId} = ${referrals.id} and ${messages.authorId} <> ${viewerId} and ${messages.seq} > ${marker}) else 0 end`.mapWith(Number),
    unacknowledgedUrgent: sql<number>`${unacknowledgedUrgentFor(viewer)}`.mapWith(Number),
    nextAppointmentAt: sql<Date | null>`(select min(${appointments.startsAt}) from ${appointments}
      where ${appointments.referralId} = ${referrals.id} and ${appointments.status} = 'scheduled' and ${appointments.startsAt} >= now())`.mapWith(
      (value: string | Date | null) => (value === null ? null : new Date(value)),
    ),
    noShows: sql<number>`(select count(*)::int from ${appointments}
      where ${appointments.referralId} = ${referrals.id} and ${appointments.status} = 'no_show')`.mapWith(Number),
  };
}

/**
 * A referral as this caller may see it: in full, or in the limited form of SPEC §14.8 (no patient
 * identity, only the payer of the insurance) when the caller's side has not accepted it.
 */
export function toReferral(row: ReferralRow, patient: PatientSummaryRow, viewer: Principal, thread: ThreadSummary, now = new Date()): Referral {
  const identified = identifiesPatient(viewer, row);
  return {
    id: row.id,
    status: row.status,
    version: row.version,
    organizationId: row.organizationId,
    patientId: identified ? row.patientId : null,
    patient: identified ? patient : limitedPatient(patient, isoDay(now)),
    prescriberId: row.prescriberId,
    diagnoses: row.diagnoses,
    reason: row.reason,
    goals: row.goals,
    precautions: row.precautions,
    contraindications: row.contraindications,
    techniques: row.techniques as Referral['techniques'],
    bodyRegions: row.bodyRegions as Referral['bodyRegions'],
    frequencyPerWeek: row.frequencyPerWeek,
    durationWeeks: row.durationWeeks,
    sessionMinutes: row.sessionMinutes,
    visitsAuthorized: row.visitsAuthorized,
    startDate: row.startDate,
    expiresOn: row.expiresOn,
    priority: row.priority,
    insurance: identified ? row.insurance : limitedInsurance(row.insurance),
    therapistId: row.targetKind === 'therapist' ? row.targetTherapistId : null,
    practiceId: row.targetKind === 'practice' ? row.targetPracticeId : null,
    network: row.targetKind === 'network' ? (row.networkOffer as Referral['network']) : null,
    acceptedBy:
      row.acceptedTherapistId && row.acceptedPracticeId && row.acceptedAt
        ? { therapistId: row.acceptedTherapistId, practiceId: row.acceptedPracticeId, at: row.acceptedAt.toISOString() }
        : null,
    signature: row.signature ?? null,
    progress: {
      visitsUsed: row.visitsUsed,
      visitsAuthorized: row.visitsAuthorized,
      visitsRemaining: row.visitsAuthorized - row.visitsUsed,
      firstPain: row.firstPain,
      latestPain: row.latestPain,
      latestOutcomeScores: row.latestOutcomes,
    },
    continuesReferralId: row.continuesReferralId,
    continuedByReferralId: row.continuedByReferralId,
    reportEveryVisits: row.reportEveryVisits,
    reportDue: reportDueOf(row),
    // Until the practice side may know the patient, it is not told what happens in the patient's care.
    activity: {
      lastAt: thread.inThread ? (row.activityAt?.toISOString() ?? null) : null,
      unreadMessages: thread.unreadMessages,
      unacknowledgedUrgent: thread.unacknowledgedUrgent,
    },
    // An adverse event is part of the patient's care: told to whoever may know the patient.
    hold: identified && row.holdSince && row.holdAdverseEventId ? { since: row.holdSince.toISOString(), adverseEventId: row.holdAdverseEventId } : null,
    nextAppointmentAt: identified ? (thread.nextAppointmentAt?.toISOString() ?? null) : null,
    noShows: identified ? thread.noShows : 0,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** A hold is told only to whoever may know the patient (as toReferral shows it), so it is searched for the same way. */
function stateCondition(state: ReferralState, principal: Principal): SQL {
  const onHold = and(isNotNull(referrals.holdSince), identifiedBy(principal));
  return and(inArray(referrals.status, [...state.statuses]), state.onHold === undefined ? undefined : state.onHold ? onHold : sql`not coalesce(${onHold}, false)`)!;
}

function ownerCondition(owner: { therapistId: string } | { practiceId: string }): SQL {
  if ('therapistId' in owner) {
    return or(
      eq(referrals.acceptedTherapistId, owner.therapistId),
      and(isNull(referrals.acceptedTherapistId), eq(referrals.targetKind, 'therapist'), eq(referrals.targetTherapistId, owner.therapistId)),
    )!;
  }
  return and(isNull(referrals.acceptedTherapistId), eq(referrals.targetKind, 'practice'), eq(referrals.targetPracticeId, owner.practiceId))!;
}

export function toReferralEvent(row: typeof referralEvents.$inferSelect): ReferralEvent {
  return {
    id: row.id,
    action: row.action as ReferralEvent['action'],
    fromStatus: row.fromStatus as ReferralStatus | null,
    toStatus: row.toStatus as ReferralStatus,
    version: row.version,
    actor: { type: row.actorType, id: row.actorId, organizationId: row.actorOrganizationId },
    reason: row.reason,
    changes: row.changes,
    occurredAt: row.occurredAt.toISOString(),
  };
}

export interface EventActor {
  type: 'user' | 'api_client' | 'system';
  id: string | null;
  organizationId: string | null;
}

/** A state of the workflow as partners search for it: some statuses, on hold or not (either, when absent). */
export interface ReferralState {
  statuses: readonly ReferralStatus[];
  onHold?: boolean;
}

export interface ReferralListFilter {
  principal: Principal;
  statuses?: ReferralStatus[] | undefined;
  /** Any of these states (FHIR searches name states that cut across statuses, e.g. on hold). */
  states?: readonly ReferralState[] | undefined;
  ids?: readonly string[] | undefined;
  taskIds?: readonly string[] | undefined;
  patientId?: string | undefined;
  prescriberId?: string | undefined;
  /** Targeted at this therapist, or accepted by them. */
  therapistId?: string | undefined;
  /** Targeted at this practice (or a therapist of it), or accepted by it. */
  practiceId?: string | undefined;
  /** Whose work it is now: the accepting therapist, else the targeted therapist or practice (the FHIR Task's owner). */
  owner?: { therapistId: string } | { practiceId: string } | undefined;
  updatedSince?: Date | undefined;
  updatedAfter?: Date | undefined;
  /** [sync xid, id] of the last row seen. */
  after?: readonly [string, string] | undefined;
  limit: number;
}

interface NewReferralEvent {
  referralId: string;
  action: ReferralEvent['action'];
  fromStatus: ReferralStatus | null;
  toStatus: ReferralStatus;
  version: number;
  actor: EventActor;
  reason?: string | null | undefined;
  changes?: Record<string, unknown> | null | undefined;
}

interface PreparedFind {
  execute(placeholders: Record<string, unknown>): Promise<{ referral: ReferralRow; patient: PatientSummaryRow; thread: ThreadSummary }[]>;
}

export class ReferralsRepository {
  private readonly preparedFinds = new Map<string, PreparedFind>();

  constructor(private readonly db: Executor) {}

  async insert(values: NewReferral, executor: Executor = this.db): Promise<ReferralRow> {
    const [row] = await executor.insert(referrals).values(values).returning();
    return row!;
  }

  /**
   * The referral if the caller may see it (or take part in it, with `participating`).
   * `lock` takes the row lock, so concurrent changes of one referral queue up and each sees the last.
   */
  async findFor(
    { principal, id, lock = false, participating = false }: { principal: Principal; id: string; lock?: boolean; participating?: boolean },
    executor: Executor = this.db,
  ): Promise<{ referral: ReferralRow; patient: PatientSummaryRow; thread: ThreadSummary } | undefined> {
    if (!lock && executor === this.db) {
      const [row] = await this.preparedFind(principal, participating).execute({ id, principalId: principal.id, organizationId: principal.organizationId });
      return row;
    }
    const query = this.findQuery(executor, principal, id, participating);
    const [row] = await (lock ? query.for('update', { of: referrals }) : query);
    return row;
  }

  private findQuery(executor: Executor, principal: Principal, id: string, participating: boolean) {
    return executor
      .select({ referral: referrals, patient: patientSummaryColumns, thread: threadColumns(principal, principal.id) })
      .from(referrals)
      .innerJoin(patients, eq(patients.id, referrals.patientId))
      .where(and(eq(referrals.id, id), participating ? participatingIn(principal) : visibleTo(principal)));
  }

  /**
   * The read of every referral route, built once per kind of caller (the access rule's shape
   * depends on side and role only) and prepared, with the caller's ids as placeholders.
   */
  private preparedFind(principal: Principal, participating: boolean) {
    const shape = `referral_find_${participating ? 'participating' : 'visible'}_${sideOf(principal) ?? 'none'}_${principal.role === 'therapist' ? 'therapist' : 'other'}`;
    let prepared = this.preparedFinds.get(shape);
    if (!prepared) {
      const placeholders = {
        ...principal,
        id: sql.placeholder('principalId') as unknown as string,
        organizationId: sql.placeholder('organizationId') as unknown as string,
      };
      prepared = this.findQuery(this.db, placeholders, sql.placeholder('id') as unknown as string, participating).prepare(shape);
      this.preparedFinds.set(shape, prepared);
    }
    return prepared;
  }

  /** Unscoped: only for naming the patient in the audit record of a refused attempt. */
  /** Which of the referrals the caller may read, in one statement. */
  async visibleAmong({ principal, ids }: { principal: Principal; ids: readonly string[] }): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .select({ id: referrals.id })
      .from(referrals)
      .where(and(sql`${referrals.id} = any(${sql.param([...new Set(ids)])}::uuid[])`, visibleTo(principal)));
    return new Set(rows.map((row) => row.id));
  }

  /** The referral a FHIR Task id belongs to, whoever asks (callers check visibility after). */
  async idOfTask(taskId: string): Promise<string | undefined> {
    const [row] = await this.db.select({ id: referrals.id }).from(referrals).where(eq(referrals.taskId, taskId));
    return row?.id;
  }

  /** The reason given with each referral's latest move of these kinds (a decline, a cancellation). */
  async latestReasons(ids: readonly string[], actions: readonly ReferralEvent['action'][]): Promise<Map<string, string | null>> {
    if (ids.length === 0) return new Map();
    const rows = rowsOf<{ referralId: string; reason: string | null }>(
      await this.db.execute(sql`select distinct on (${referralEvents.referralId}) ${referralEvents.referralId} as "referralId", ${referralEvents.reason} as reason
        from ${referralEvents} where ${referralEvents.referralId} in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})
        and ${referralEvents.action} in (${sql.join(actions.map((action) => sql`${action}`), sql`, `)})
        order by ${referralEvents.referralId}, ${referralEvents.id} desc`),
    );
    return new Map(rows.map((row) => [row.referralId, row.reason]));
  }

  /**
   * Whether a person or organization takes part in a referral the caller may see (as its prescriber,
   * office, target or acceptor): who is on the other side of one's own referrals is no secret.
   */
  async isCounterpartOf(principal: Principal, party: { userId: string } | { organizationId: string }): Promise<boolean> {
    const takesPart =
      'userId' in party
        ? or(eq(referrals.prescriberId, party.userId), eq(referrals.targetTherapistId, party.userId), eq(referrals.acceptedTherapistId, party.userId))
        : or(eq(referrals.organizationId, party.organizationId), eq(referrals.targetPracticeId, party.organizationId), eq(referrals.acceptedPracticeId, party.organizationId));
    const [row] = await this.db.select({ id: referrals.id }).from(referrals).where(and(takesPart, visibleTo(principal))).limit(1);
    return row !== undefined;
  }

  async patientIdOf(id: string): Promise<string | undefined> {
    const [row] = await this.db.select({ patientId: referrals.patientId }).from(referrals).where(eq(referrals.id, id));
    return row?.patientId;
  }

  /** Re-reads a row under lock without the visibility rule: the caller has already seen it. */
  async lock(id: string, executor: Executor): Promise<{ referral: ReferralRow; patient: PatientSummaryRow }> {
    const [row] = await executor
      .select({ referral: referrals, patient: patientSummaryColumns })
      .from(referrals)
      .innerJoin(patients, eq(patients.id, referrals.patientId))
      .where(eq(referrals.id, id))
      .for('update', { of: referrals });
    return row!;
  }

  /** Changes a referral and bumps its version. */
  async update(id: string, changes: Partial<NewReferral>, executor: Executor): Promise<ReferralRow> {
    const [row] = await executor
      .update(referrals)
      .set({ ...changes, version: sql`${referrals.version} + 1` })
      .where(eq(referrals.id, id))
      .returning();
    return row!;
  }

  async appendEvent(event: NewReferralEvent, executor: Executor): Promise<void> {
    await this.appendEvents([event], executor);
  }

  /** Several history events in one statement, in the order given. */
  async appendEvents(events: NewReferralEvent[], executor: Executor): Promise<void> {
    await executor.insert(referralEvents).values(
      events.map((event) => ({
        referralId: event.referralId,
        action: event.action,
        fromStatus: event.fromStatus,
        toStatus: event.toStatus,
        version: event.version,
        actorType: event.actor.type,
        actorId: event.actor.id,
        actorOrganizationId: event.actor.organizationId,
        reason: event.reason ?? null,
        changes: event.changes ?? null,
      })),
    );
  }

  /**
   * The sync feed: ordered by the writing transaction's id, and only rows whose transaction is
   * older than every transaction of this database still running (migrations 0002 and 0012), so a
   * later poll never finds a change behind its cursor. Other databases' transactions are read by a
   * statement of their own first: read inside the feed's statement, after its snapshot, one that
   * ended in between would hold the horizon back and hide rows an earlier poll showed.
   */
  async list(filter: ReferralListFilter) {
    const [neighbours] = rowsOf<{ xids: string[] }>(await this.db.execute(sql`select sync_neighbour_xids() as xids`));
    return this.listQuery(filter, neighbours?.xids ?? []);
  }

  /**
   * The sync feed's query, unexecuted (the benchmark EXPLAINs it). The page's ids come from the
   * caller's visible parts, each read in sync order off its own index and cut at one page, then
   * merged (Merge Append): no sort and no OFFSET, whatever the size of the table.
   */
  listQuery(filter: ReferralListFilter, neighbourXids: string[]) {
    const conditions: (SQL | undefined)[] = [
      // Computed once per statement, not once per part.
      sql`${referrals.syncXid} < (select xid from horizon)`,
      filter.statuses ? inArray(referrals.status, filter.statuses) : undefined,
      // Only among referrals whose patient the caller may know: matching an open offer by patient
      // would tell the caller whom the offer is about.
      filter.patientId ? and(eq(referrals.patientId, filter.patientId), identifiedBy(filter.principal)) : undefined,
      filter.updatedSince ? gte(referrals.updatedAt, filter.updatedSince) : undefined,
      filter.updatedAfter ? gt(referrals.updatedAt, filter.updatedAfter) : undefined,
      filter.states ? or(...filter.states.map((state) => stateCondition(state, filter.principal))) : undefined,
      filter.ids ? inArray(referrals.id, [...filter.ids]) : undefined,
      filter.taskIds ? inArray(referrals.taskId, [...filter.taskIds]) : undefined,
      filter.prescriberId ? eq(referrals.prescriberId, filter.prescriberId) : undefined,
      filter.therapistId
        ? or(and(eq(referrals.targetKind, 'therapist'), eq(referrals.targetTherapistId, filter.therapistId)), eq(referrals.acceptedTherapistId, filter.therapistId))
        : undefined,
      filter.practiceId ? or(eq(referrals.targetPracticeId, filter.practiceId), eq(referrals.acceptedPracticeId, filter.practiceId)) : undefined,
      filter.owner ? ownerCondition(filter.owner) : undefined,
      filter.after ? sql`(${referrals.syncXid}, ${referrals.id}) > (${filter.after[0]}::bigint, ${filter.after[1]}::uuid)` : undefined,
    ];
    const pageSize = filter.limit + 1;
    const parts = visibleParts(filter.principal).map(
      (part) => sql`(select ${referrals.id} as page_id, ${referrals.syncXid} as page_sync from ${referrals}
        where ${and(part, ...conditions)} order by ${referrals.syncXid}, ${referrals.id} limit ${pageSize})`,
    );
    const merged = parts.length > 1 ? sql`${sql.join(parts, sql` union all `)} order by page_sync, page_id limit ${pageSize}` : parts[0];
    const page = merged
      ? sql`(with horizon as materialized (select sync_horizon(${sql.param(neighbourXids)}::text[]) as xid) ${merged}) as page`
      : sql`(select null::uuid as page_id, null::bigint as page_sync where false) as page`;
    return this.db
      .select({ referral: referrals, patient: patientSummaryColumns, thread: threadColumns(filter.principal, filter.principal.id), syncKey: sql<string>`page.page_sync::text` })
      .from(page)
      .innerJoin(referrals, sql`${referrals.id} = page.page_id`)
      .innerJoin(patients, eq(patients.id, referrals.patientId))
      .orderBy(sql`page.page_sync`, sql`page.page_id`);
  }

  async history({ referralId, afterId, limit }: { referralId: string; afterId?: number | undefined; limit: number }) {
    return this.db
      .select()
      .from(referralEvents)
      .where(and(eq(referralEvents.referralId, referralId), afterId === undefined ? undefined : sql`${referralEvents.id} > ${afterId}`))
      .orderBy(asc(referralEvents.id))
      .limit(limit + 1);
  }

  /** An active therapist, with their practice, license (expiry, verification) and whether they take referrals. */
  async findTherapist(id: string, executor: Executor = this.db) {
    const [row] = await executor
      .select({
        id: users.id,
        practiceId: users.organizationId,
        acceptingReferrals: therapistProfiles.acceptingReferrals,
        licenseExpiresOn: therapistProfiles.licenseExpiresOn,
        licenseVerifiedAt: therapistProfiles.licenseVerifiedAt,
        techniques: therapistProfiles.techniques,
      })
      .from(users)
      .innerJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .where(and(eq(users.id, id), eq(users.role, 'therapist'), eq(users.active, true)));
    return row;
  }

  async isPhysicianOf({ organizationId, userId }: { organizationId: string; userId: string }, executor: Executor = this.db): Promise<boolean> {
    const [row] = await executor
      .select({ id: users.id })
      .from(users)
      .where(and(eq(users.id, userId), eq(users.organizationId, organizationId), eq(users.role, 'physician'), eq(users.active, true)));
    return row !== undefined;
  }

  async patientSummary(patientId: string, executor: Executor = this.db): Promise<PatientSummaryRow> {
    const [row] = await executor.select(patientSummaryColumns).from(patients).where(eq(patients.id, patientId));
    return row!;
  }

  async findPractice(id: string, executor: Executor = this.db) {
    const [row] = await executor
      .select({ id: organizations.id })
      .from(organizations)
      .where(and(eq(organizations.id, id), eq(organizations.kind, 'therapy_practice')));
    return row;
  }

  /** Active therapists with a valid (verified, unexpired) license who accept referrals, offer every technique asked for, and are in range. */
  async matchNetwork(offer: { techniques: string[]; near: { lat: number; lng: number }; radiusKm: number }, executor: Executor = this.db) {
    const distance = distanceKm(offer.near);
    const rows = await executor
      .select({ id: users.id })
      .from(users)
      .innerJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .innerJoin(organizations, eq(organizations.id, users.organizationId))
      .where(
        and(
          eq(users.role, 'therapist'),
          eq(users.active, true),
          eq(therapistProfiles.acceptingReferrals, true),
          licenseIsValid(),
          sql`${therapistProfiles.techniques} @> ${sql.param(offer.techniques)}::text[]`,
          sql`${distance} <= least(${offer.radiusKm}, ${therapistProfiles.serviceRadiusKm})`,
        ),
      );
    return rows.map((row) => row.id);
  }

  async replaceOffers(referralId: string, therapistIds: string[], executor: Executor): Promise<void> {
    await executor.delete(referralOffers).where(eq(referralOffers.referralId, referralId));
    if (therapistIds.length > 0) {
      await executor.insert(referralOffers).values(therapistIds.map((therapistId) => ({ referralId, therapistId })));
    }
  }

  async hasOpenOffer(referralId: string, therapistId: string, executor: Executor = this.db): Promise<boolean> {
    const [row] = await executor.select({ id: referralOffers.therapistId }).from(referralOffers).where(openOfferFor(referralId, therapistId));
    return row !== undefined;
  }

  /** Declines the open offers of one therapist, or of every therapist of a practice; returns how many remain open. */
  async declineOffers(referralId: string, by: { therapistId: string } | { practiceId: string }, executor: Executor): Promise<number> {
    const whose =
      'therapistId' in by
        ? eq(referralOffers.therapistId, by.therapistId)
        : sql`${referralOffers.therapistId} in (select ${users.id} from ${users} where ${users.organizationId} = ${by.practiceId})`;
    await executor
      .update(referralOffers)
      .set({ declinedAt: new Date() })
      .where(and(eq(referralOffers.referralId, referralId), isNull(referralOffers.declinedAt), whose));
    const [row] = await executor
      .select({ open: sql<number>`count(*)::int` })
      .from(referralOffers)
      .where(and(eq(referralOffers.referralId, referralId), isNull(referralOffers.declinedAt)));
    return row?.open ?? 0;
  }

  /** A referral of the office, as the office sees it: for continuing a course. */
  async findOfOffice({ organizationId, id }: { organizationId: string; id: string }, executor: Executor = this.db): Promise<ReferralRow | undefined> {
    const [row] = await executor.select().from(referrals).where(and(eq(referrals.id, id), eq(referrals.organizationId, organizationId)));
    return row;
  }

  /** Links a course to the one continuing it, unless another already does (then undefined). */
  async markContinued({ id, continuedBy }: { id: string; continuedBy: string }, executor: Executor): Promise<ReferralRow | undefined> {
    const [row] = await executor
      .update(referrals)
      .set({ continuedByReferralId: continuedBy, version: sql`${referrals.version} + 1` })
      .where(and(eq(referrals.id, id), isNull(referrals.continuedByReferralId)))
      .returning();
    return row;
  }

  /** Open referrals whose last day has passed, locked and skipping rows another sweeper holds. */
  async lockExpired(limit: number, executor: Executor): Promise<ReferralRow[]> {
    return executor
      .select()
      .from(referrals)
      .where(
        and(
          inArray(referrals.status, [...expirableStatuses]),
          sql`${referrals.expiresOn} < (now() at time zone 'utc')::date`,
        ),
      )
      .orderBy(asc(referrals.expiresOn))
      .limit(limit)
      .for('update', { skipLocked: true });
  }
}
