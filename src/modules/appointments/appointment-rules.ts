// Which referrals take bookings, and what may become of an appointment: the rules, without SQL.
import { addDays, isoDay, todayUtc } from '../../lib/dates.js';
import { conflict, type FieldProblem } from '../../lib/errors.js';
import type { AppointmentStatus, ReferralStatus } from '../../lib/vocabulary.js';
import { bookingHorizonDays } from './schemas.js';

/** Why the referral takes no new appointment now, as a 409 naming its status; undefined when it does. */
export function bookingRefusal(referral: { status: ReferralStatus; expiresOn: string }) {
  const refusals: Partial<Record<ReferralStatus, [string, string]>> = {
    draft: ['not-accepted', 'The referral has not been sent and accepted yet'],
    sent: ['not-accepted', 'The referral has not been accepted yet'],
    declined: ['not-accepted', 'The referral was declined'],
    completed: ['referral-completed', 'The referral is completed; a new course is prescribed as a new referral'],
    cancelled: ['referral-cancelled', 'The referral was cancelled'],
    expired: ['referral-expired', `The referral expired after ${referral.expiresOn}`],
  };
  const reason = refusals[referral.status];
  if (reason) return conflict(reason[0], reason[1], { currentStatus: referral.status });
  // The expiry sweep may not have run yet: no visit is booked on an authorization that has run out.
  if (referral.expiresOn < todayUtc()) {
    return conflict('referral-expired', `The referral expired after ${referral.expiresOn}; the prescriber can extend it first`, { currentStatus: referral.status });
  }
  return undefined;
}

/**
 * What is wrong with a visit's start, if anything. A visit already held may be entered afterwards,
 * but not one before the referral was accepted (the day, in UTC, as for visit notes); a start more
 * than a year ahead is a typo, since no referral runs that long.
 */
export function startsAtProblem(startsAt: Date, acceptedAt: Date, now = new Date()): FieldProblem | undefined {
  const acceptedOn = isoDay(acceptedAt);
  if (isoDay(startsAt) < acceptedOn) return { field: 'startsAt', message: `must not be before the referral was accepted (${acceptedOn})` };
  const latest = addDays(isoDay(now), bookingHorizonDays);
  if (isoDay(startsAt) > latest) return { field: 'startsAt', message: `must be at most ${bookingHorizonDays} days ahead (on or before ${latest})` };
  return undefined;
}

/**
 * From each status, the statuses an appointment may move to. A recorded outcome may be corrected
 * to the other outcome (the wrong button was pressed), but nothing returns to scheduled and a
 * cancellation is final: the patient is booked again with a new appointment, so the history of
 * what was booked and what became of it stays as it happened.
 */
const nextStatuses: Record<AppointmentStatus, readonly AppointmentStatus[]> = {
  scheduled: ['attended', 'no_show', 'cancelled_by_patient', 'cancelled_by_practice'],
  attended: ['no_show'],
  no_show: ['attended'],
  cancelled_by_patient: [],
  cancelled_by_practice: [],
};

const outcomes: readonly AppointmentStatus[] = ['attended', 'no_show'];

/**
 * Why the appointment cannot move to `to` (a 409 naming its current status), or undefined. The same
 * status again is no change and is never refused. An outcome is recorded only once the visit has
 * begun, so that a tap on next week's appointment does not count a no-show that has not happened.
 */
export function statusChangeRefusal(appointment: { status: AppointmentStatus; startsAt: Date }, to: AppointmentStatus, now = new Date()) {
  const from = appointment.status;
  if (from === to) return undefined;
  if (!nextStatuses[from].includes(to)) {
    const allowed = nextStatuses[from];
    const detail = from.startsWith('cancelled')
      ? 'a cancelled appointment stays cancelled; book a new one'
      : `allowed from ${from}: ${allowed.length > 0 ? allowed.join(', ') : 'none'}`;
    return conflict('illegal-transition', `Cannot move an appointment that is ${from} to ${to}: ${detail}`, { currentStatus: from });
  }
  if (outcomes.includes(to) && appointment.startsAt > now) {
    return conflict('appointment-not-started', `The appointment begins at ${appointment.startsAt.toISOString()}; attended and no_show are recorded once it has begun`, {
      currentStatus: from,
    });
  }
  return undefined;
}
