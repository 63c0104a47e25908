// Shapes of a referral's appointments (SPEC §14.5).
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { Page, PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { appointmentStatuses, enumOf } from '../../lib/vocabulary.js';

/** How far ahead a visit may be booked: no referral runs longer than a year from its start. */
export const bookingHorizonDays = 366;

export const AppointmentStatus = component('AppointmentStatus', enumOf(appointmentStatuses, {
  description:
    'scheduled until the therapist side records what became of it: attended, no_show (once it has begun), or cancelled_by_patient / cancelled_by_practice',
}));

export const CreateAppointment = component('CreateAppointment', Type.Object(
  {
    startsAt: Type.String({
      format: 'date-time',
      description: `When the visit begins, RFC 3339 with an offset (answered in UTC); not before the day the referral was accepted, at most ${bookingHorizonDays} days ahead`,
    }),
    minutes: Type.Integer({ minimum: 5, maximum: 480, description: 'Length of the visit in minutes' }),
  },
  { additionalProperties: false },
));
export type CreateAppointment = Static<typeof CreateAppointment>;

export const UpdateAppointment = component('UpdateAppointment', Type.Object({ status: AppointmentStatus }, { additionalProperties: false }));
export type UpdateAppointment = Static<typeof UpdateAppointment>;

export const Appointment = component('Appointment', Type.Object({
  id: Uuid,
  referralId: Uuid,
  startsAt: Timestamp,
  minutes: Type.Integer(),
  status: AppointmentStatus,
  createdBy: Type.String({ format: 'uuid', description: 'The user or API client who booked it' }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}));
export type Appointment = Static<typeof Appointment>;

export const AppointmentParams = Type.Object({ id: Uuid, appointmentId: Uuid }, { additionalProperties: false });
export type AppointmentParams = Static<typeof AppointmentParams>;

export const AppointmentListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const AppointmentPage = Page(Appointment);
