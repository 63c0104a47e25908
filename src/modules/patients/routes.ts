// /v1/patients: patients belong to the physician office that registered them; every read is audited.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { todayUtc } from '../../lib/dates.js';
import { notFound, validationFailed } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { officeRoles } from '../auth/policy.js';
import { PatientsRepository, toPatient } from './patients-repository.js';
import { CreatePatient, Patient, PatientListQuery } from './schemas.js';
import { apiPrefix } from '../../lib/api-prefix.js';

const patientRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const patientsRepository = new PatientsRepository(app.db);

  app.post('/patients', {
    config: { policy: { roles: officeRoles, clientScope: 'patients:write' }, auditAction: 'patient.create' },
    schema: {
      tags: ['patients'],
      operationId: 'createPatient',
      summary: "Register a patient of the caller's office",
      body: CreatePatient,
      response: { 201: Patient },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    if (request.body.birthDate > todayUtc()) {
      throw validationFailed([{ field: 'birthDate', message: 'must not be in the future' }]);
    }
    const patient = await app.unitOfWork.change(
      auditContextOf(request),
      (tx) => patientsRepository.create({ organizationId: principal.organizationId!, createdBy: principal.id, input: request.body }, tx),
      (created) => ({ action: 'patient.create', httpStatus: 201, resourceType: 'patient', resourceId: created.id, patientId: created.id }),
    );
    return reply.code(201).header('location', `${apiPrefix}/patients/${patient.id}`).send(patient);
  });

  app.get('/patients', {
    config: { policy: { roles: officeRoles, clientScope: 'patients:read' }, auditAction: 'patient.list' },
    schema: {
      tags: ['patients'],
      operationId: 'listPatients',
      summary: "List the office's patients, optionally by external identifier",
      querystring: PatientListQuery,
      response: { 200: Page(Patient) },
    },
  }, async (request) => {
    const principal = request.principal!;
    const { identifier, limit, cursor } = request.query;
    const [system, value] = identifier ? identifier.split('|') : [];
    const rows = await patientsRepository.list({
      organizationId: principal.organizationId!,
      identifier: system && value ? { system, value } : undefined,
      after: decodeTimeCursor(cursor),
      limit,
    });
    const page = toPage(rows, limit, (row) => [row.cursorTime, row.patient.id], (row) => toPatient(row.patient));
    // Every patient shown is a read of that patient's record.
    await app.auditLog.recordMany(
      auditContextOf(request),
      page.data.map((patient) => ({
        action: 'patient.list',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'patient',
        resourceId: patient.id,
        patientId: patient.id,
      })),
    );
    return page;
  });

  app.get('/patients/:id', {
    config: {
      policy: { roles: officeRoles, clientScope: 'patients:read' },
      auditAction: 'patient.read',
      auditResource: { type: 'patient', param: 'id', isPatient: true },
    },
    schema: {
      tags: ['patients'],
      operationId: 'getPatient',
      summary: 'Read a patient of the caller\'s office',
      params: IdParams,
      response: { 200: Patient },
    },
  }, async (request) => {
    const principal = request.principal!;
    const patient = await patientsRepository.findInOrganization({ organizationId: principal.organizationId!, patientId: request.params.id });
    if (!patient) throw notFound('patient', request.params.id, 'Patient', request.params.id);
    await app.auditLog.record(auditContextOf(request), {
      action: 'patient.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'patient',
      resourceId: patient.id,
      patientId: patient.id,
    });
    return patient;
  });
};

export default patientRoutes;
