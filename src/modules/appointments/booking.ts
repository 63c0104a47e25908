// The appointment book of a referral: the therapist side books visits and records what became of
// them, both sides of the care team read them. Every change holds the referral's row lock.
import type { Executor } from '../../db/database.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import { notFound, validationFailed } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AppointmentStatus } from '../../lib/vocabulary.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { bookingRefusal, startsAtProblem, statusChangeRefusal } from './appointment-rules.js';
import { AppointmentsRepository, toAppointment } from './appointments-repository.js';
import { booksFor, inCareTeam } from './care-team.js';
import type { Appointment, CreateAppointment } from './schemas.js';

type LockedReferral = NonNullable<Awaited<ReturnType<ReferralWorkflow['lockParticipating']>>>;

export class Booking {
  constructor(
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
    readonly appointments: AppointmentsRepository,
  ) {}

  /** Where partners read the referral's appointments (the event's resource url). */
  private url(referralId: string) {
    return `${apiPrefix}/referrals/${referralId}/appointments`;
  }

  /**
   * Checked before anything else is. Whoever may not see the referral, and whoever sees it but does
   * not book for it (the office, a colleague of the accepting therapist), gets the outsider's 404:
   * the same answer the office gets for visit notes and reports. A practice that sees a referral
   * nobody has accepted yet is told it must be accepted first, which tells it nothing it cannot read.
   */
  private async assertBooks(principal: Principal, referralId: string): Promise<void> {
    const { referral } = await this.referrals.read(principal, referralId);
    if (principal.organizationKind === 'therapy_practice' && referral.acceptedTherapistId === null) {
      const refused = bookingRefusal(referral);
      if (refused) throw refused;
    }
    if (!booksFor(principal, referral)) throw await this.referrals.notFound(referralId);
  }

  /**
   * The referral under its row lock, the one every change of the referral takes: a booking, the
   * referral's own moves (cancel, discharge, expiry) and the not_scheduled sweep are written in one
   * order, each seeing the last. Undefined if the caller no longer books for it.
   */
  private async lock(principal: Principal, referralId: string, tx: Executor): Promise<LockedReferral | undefined> {
    const referral = await this.referrals.lockParticipating(principal, referralId, tx);
    return referral && booksFor(principal, referral) ? referral : undefined;
  }

  async book(context: AuditContext, principal: Principal, referralId: string, input: CreateAppointment): Promise<Appointment> {
    await this.assertBooks(principal, referralId);
    const startsAt = new Date(input.startsAt);
    const booked = await this.units.run(context, async (unit) => {
      const referral = await this.lock(principal, referralId, unit.tx);
      if (!referral) return undefined;
      const refused = bookingRefusal(referral);
      if (refused) throw refused;
      const problem = startsAtProblem(startsAt, referral.acceptedAt!);
      if (problem) throw validationFailed([problem]);
      const row = await this.appointments.insert({ referralId, startsAt, minutes: input.minutes, createdBy: principal.id }, unit.tx);
      unit.emit({ type: 'appointment.scheduled', referral, resource: { type: 'appointment', id: row.id, url: this.url(referralId) } });
      unit.audit({ action: 'appointment.create', httpStatus: 201, resourceType: 'appointment', resourceId: row.id, patientId: referral.patientId });
      return toAppointment(row);
    });
    // The 404 is made after the transaction: it reads the referral's patient for the audit.
    if (!booked) throw await this.referrals.notFound(referralId);
    return booked;
  }

  /**
   * Records what became of an appointment (appointment-rules.ts says what may follow what). Also on
   * a referral that has ended: its scheduled visits are then cancelled, or their outcome entered late.
   */
  async changeStatus(context: AuditContext, principal: Principal, referralId: string, appointmentId: string, status: AppointmentStatus): Promise<Appointment> {
    await this.assertBooks(principal, referralId);
    const changed = await this.units.run(context, async (unit) => {
      const referral = await this.lock(principal, referralId, unit.tx);
      if (!referral) return undefined;
      // Read under the referral's lock: two changes of one appointment queue up, the second sees the first.
      const current = await this.appointments.find({ referralId, appointmentId }, unit.tx);
      if (!current) throw notFound('appointment', appointmentId, 'Appointment', referral.patientId);
      const refused = statusChangeRefusal(current, status);
      if (refused) throw refused;
      // The same status again is no change: nothing is written (which would move the referral's
      // updatedAt) and nothing announced; the request is still audited, as it read the appointment.
      const row = current.status === status ? current : await this.appointments.setStatus({ appointmentId, status }, unit.tx);
      if (row !== current && status === 'no_show') {
        unit.emit({ type: 'appointment.no_show', referral, resource: { type: 'appointment', id: row.id, url: this.url(referralId) } });
      }
      unit.audit({ action: 'appointment.update', httpStatus: 200, resourceType: 'appointment', resourceId: row.id, patientId: referral.patientId });
      return toAppointment(row);
    });
    if (!changed) throw await this.referrals.notFound(referralId);
    return changed;
  }

  /** A page of the referral's appointments by start time, for either side of the care team; 404 for anyone else. */
  async list(principal: Principal, referralId: string, page: { cursor?: string | undefined; limit: number }) {
    const { referral } = await this.referrals.readCare(principal, referralId);
    if (!inCareTeam(principal, referral)) throw await this.referrals.notFound(referralId);
    const rows = await this.appointments.list({ referralId, after: decodeTimeCursor(page.cursor), limit: page.limit });
    return { patientId: referral.patientId, page: toPage(rows, page.limit, (row) => [row.cursorTime, row.row.id], (row) => toAppointment(row.row)) };
  }
}
