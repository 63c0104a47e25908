// /v1/referrals/{id}/appointments: visits booked by the therapist side of the care team and what
// became of them (SPEC §14.5), read by both sides.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { IdParams } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { referralReadPolicy } from '../referrals/index.js';
import { AppointmentsRepository } from './appointments-repository.js';
import { Booking } from './booking.js';
import { Appointment, AppointmentListQuery, AppointmentPage, AppointmentParams, CreateAppointment, UpdateAppointment } from './schemas.js';

const referralResource = { type: 'referral', param: 'id' };
// Any signed-in role passes the policy: who books is decided per referral (the accepting side), and
// everyone else, the office included, gets the 404 of a record out of reach, as for visit notes.
const bookingPolicy = { roles: everyone, clientScope: 'referrals:write' } as const;

const appointmentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const booking = new Booking(app.referrals, app.unitOfWork, new AppointmentsRepository(app.db));

  app.post('/referrals/:id/appointments', {
    config: { policy: bookingPolicy, auditAction: 'appointment.create', auditResource: referralResource },
    schema: {
      tags: ['appointments'],
      operationId: 'createAppointment',
      summary: 'Book a visit (the therapist side: the accepting therapist, the accepting practice\'s admins and API clients)',
      description:
        'While the referral is accepted or in progress; otherwise 409 with its currentStatus (not-accepted, referral-completed, referral-cancelled, ' +
        'referral-expired). startsAt may not be before the day the referral was accepted (a visit may be entered after it took place) nor more ' +
        'than 366 days ahead. Announces appointment.scheduled. Anyone else, the office included, gets 404.',
      params: IdParams,
      body: CreateAppointment,
      response: { 201: Appointment },
    },
  }, async (request, reply) => {
    const appointment = await booking.book(auditContextOf(request), request.principal!, request.params.id, request.body);
    return reply.code(201).send(appointment);
  });

  app.patch('/referrals/:id/appointments/:appointmentId', {
    config: { policy: bookingPolicy, auditAction: 'appointment.update', auditResource: referralResource },
    schema: {
      tags: ['appointments'],
      operationId: 'updateAppointment',
      summary: 'Record what became of a visit: attended, no_show, or cancelled by the patient or the practice',
      description:
        'By the therapist side, also after the referral has ended. From scheduled to any other status; attended and no_show only once the ' +
        'visit has begun (409 appointment-not-started) and either may be corrected to the other; a cancellation is final and nothing returns ' +
        'to scheduled (409 illegal-transition, currentStatus being the appointment\'s). The same status again changes nothing and announces ' +
        'nothing. Moving to no_show announces appointment.no_show.',
      params: AppointmentParams,
      body: UpdateAppointment,
      response: { 200: Appointment },
    },
  }, async (request) =>
    booking.changeStatus(auditContextOf(request), request.principal!, request.params.id, request.params.appointmentId, request.body.status),
  );

  app.get('/referrals/:id/appointments', {
    config: { policy: referralReadPolicy, auditAction: 'appointment.list', auditResource: referralResource },
    schema: {
      tags: ['appointments'],
      operationId: 'listAppointments',
      summary: "The referral's appointments by start time, cancelled ones included",
      description: 'Both sides of the care team: the office, the accepting therapist and the accepting practice. Audited as a read of the patient\'s record.',
      params: IdParams,
      querystring: AppointmentListQuery,
      response: { 200: AppointmentPage },
    },
  }, async (request) => {
    const { patientId, page } = await booking.list(request.principal!, request.params.id, request.query);
    await app.auditLog.record(auditContextOf(request), {
      action: 'appointment.list',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: request.params.id,
      patientId,
    });
    return page;
  });
};

export default appointmentRoutes;
