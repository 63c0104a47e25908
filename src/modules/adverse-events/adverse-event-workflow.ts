// Adverse events as the service runs them (SPEC §14.10): reported by the therapist side of the care
// team while the referral is treated, announced to the office at once, acknowledged by the office;
// a severe one that paused treatment holds the referral in the same unit of work. Every change
// holds the referral's row lock, the one every change of the referral takes.
import { apiPrefix } from '../../lib/api-prefix.js';
import { isoDay, todayUtc } from '../../lib/dates.js';
import { conflict, notFound, validationFailed } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { AdverseEventsRepository, toAdverseEvent } from './adverse-events-repository.js';
import { acknowledges, inCareTeam, reportRefusal, reportsFor } from './care-team.js';
import type { AdverseEvent, CreateAdverseEvent } from './schemas.js';

export class AdverseEventWorkflow {
  constructor(
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
    readonly events: AdverseEventsRepository,
  ) {}

  /** Where partners read the event (the domain event's resource url). */
  static url(referralId: string, eventId: string) {
    return `${apiPrefix}/referrals/${referralId}/adverse-events/${eventId}`;
  }

  async report(context: AuditContext, principal: Principal, referralId: string, input: CreateAdverseEvent): Promise<AdverseEvent> {
    // Checked before anything about the event is. A practice that sees a referral nobody has
    // accepted yet is told it must be accepted first, which tells it nothing it cannot read; anyone
    // else who does not treat the patient (the office, a colleague of the acceptor) gets the outsider's 404.
    const { referral: visible } = await this.referrals.read(principal, referralId);
    if (principal.organizationKind === 'therapy_practice' && visible.acceptedTherapistId === null) throw reportRefusal(visible)!;
    if (!reportsFor(principal, visible)) throw await this.referrals.notFound(referralId);
    if (input.occurredOn > todayUtc()) throw validationFailed([{ field: 'occurredOn', message: 'must not be in the future' }]);

    const reported = await this.units.run(context, async (unit) => {
      const referral = await this.referrals.lockParticipating(principal, referralId, unit.tx);
      if (!referral || !reportsFor(principal, referral)) return undefined;
      const refused = reportRefusal(referral);
      if (refused) throw refused;
      const acceptedOn = isoDay(referral.acceptedAt!);
      if (input.occurredOn < acceptedOn) throw validationFailed([{ field: 'occurredOn', message: `must not be before the referral was accepted (${acceptedOn})` }]);
      const row = await this.events.insert(
        {
          referralId,
          occurredOn: input.occurredOn,
          description: input.description,
          severity: input.severity,
          actionTaken: input.actionTaken,
          treatmentPaused: input.treatmentPaused,
          reporterType: principal.kind,
          reportedBy: principal.id,
          reporterOrganizationId: principal.organizationId!,
        },
        unit.tx,
      );
      // The hold is part of the report: the referral is never seen reported-but-not-held.
      const held = input.severity === 'severe' && input.treatmentPaused ? await this.referrals.holds.hold(unit, principal, referral, row.id) : referral;
      unit.emit({ type: 'adverse_event.reported', referral: held, resource: { type: 'adverse_event', id: row.id, url: AdverseEventWorkflow.url(referralId, row.id) } });
      unit.audit({ action: 'adverse_event.report', httpStatus: 201, resourceType: 'adverse_event', resourceId: row.id, patientId: referral.patientId });
      return toAdverseEvent(row);
    });
    // The 404 is made after the transaction: it reads the referral's patient for the audit.
    if (!reported) throw await this.referrals.notFound(referralId);
    return reported;
  }

  /** The referral, if the caller is on either side of its care team; the outsider's 404 otherwise. */
  private async careReferral(principal: Principal, referralId: string) {
    const { referral } = await this.referrals.readCare(principal, referralId);
    if (!inCareTeam(principal, referral)) throw await this.referrals.notFound(referralId);
    return referral;
  }

  /** A page of the referral's adverse events in the order they were reported, and the patient whose record was read. */
  async list(principal: Principal, referralId: string, page: { cursor?: string | undefined; limit: number }) {
    const referral = await this.careReferral(principal, referralId);
    const rows = await this.events.list({ referralId, after: decodeTimeCursor(page.cursor), limit: page.limit });
    return { patientId: referral.patientId, page: toPage(rows, page.limit, (row) => [row.cursorTime, row.row.id], (row) => toAdverseEvent(row.row)) };
  }

  async read(principal: Principal, referralId: string, eventId: string): Promise<{ patientId: string; event: AdverseEvent }> {
    const referral = await this.careReferral(principal, referralId);
    const row = await this.events.find({ referralId, eventId });
    if (!row) throw notFound('adverse_event', eventId, 'Adverse event', referral.patientId);
    return { patientId: referral.patientId, event: toAdverseEvent(row) };
  }

  /** The office acknowledges; again answers the first acknowledgement. The therapist side is told it is not theirs (409 own-side). */
  async acknowledge(context: AuditContext, principal: Principal, referralId: string, eventId: string): Promise<AdverseEvent> {
    const acknowledged = await this.units.run(context, async (unit) => {
      const referral = await this.referrals.lockParticipating(principal, referralId, unit.tx);
      if (!referral || !inCareTeam(principal, referral)) return undefined;
      const event = await this.events.find({ referralId, eventId }, unit.tx);
      if (!event) throw notFound('adverse_event', eventId, 'Adverse event', referral.patientId);
      if (!acknowledges(principal)) {
        throw conflict('own-side', 'An adverse event is acknowledged by the office that prescribed the treatment, not by the side that reported it', {
          currentStatus: referral.status,
        });
      }
      const row = (await this.events.acknowledge({ eventId, by: principal.id }, unit.tx)) ?? event;
      unit.audit({ action: 'adverse_event.acknowledge', httpStatus: 200, resourceType: 'adverse_event', resourceId: eventId, patientId: referral.patientId });
      return toAdverseEvent(row);
    });
    if (!acknowledged) throw await this.referrals.notFound(referralId);
    return acknowledged;
  }
}
