// /v1/referrals/{id}/progress-reports: visit notes by the accepting therapist, read by both sides.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound } from '../../lib/errors.js';
import { decodeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { referralReadPolicy } from '../referrals/index.js';
import { visitNotesOf } from './visit-note-reads.js';
import { ProgressReportsRepository } from './progress-reports-repository.js';
import { Addendum, CreateAddendum, CreateProgressReport, ProgressReport, ProgressReportListQuery, ReportParams } from './schemas.js';
import { VisitNotes } from './visit-notes.js';
import { apiPrefix } from '../../lib/api-prefix.js';

const referralResource = { type: 'referral', param: 'id' };

const progressReportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const reports = new ProgressReportsRepository(app.db);
  const visitNotes = new VisitNotes(reports, app.referrals, app.unitOfWork);


  app.post('/referrals/:id/progress-reports', {
    config: { policy: { roles: everyone }, auditAction: 'progress_report.create', auditResource: referralResource },
    schema: {
      tags: ['visit notes'],
      operationId: 'createProgressReport',
      summary: 'Post a signed visit note (SOAP); the first starts the referral, a final one completes it',
      description: 'Only the therapist who accepted the referral posts notes. Refused (409, with a code saying which) before acceptance, past visitsAuthorized, after expiry, or once completed or cancelled.',
      params: IdParams,
      body: CreateProgressReport,
      response: { 201: ProgressReport },
    },
  }, async (request, reply) => {
    const report = await visitNotes.post(auditContextOf(request), request.principal!, request.params.id, request.body);
    return reply.code(201).header('location', `${apiPrefix}/referrals/${report.referralId}/progress-reports/${report.id}`).send(report);
  });

  app.get('/referrals/:id/progress-reports', {
    config: { policy: referralReadPolicy, auditAction: 'progress_report.list', auditResource: referralResource },
    schema: {
      tags: ['visit notes'],
      operationId: 'listProgressReports',
      summary: "A referral's visit notes by visit number, each with its addenda",
      params: IdParams,
      querystring: ProgressReportListQuery,
      response: { 200: Page(ProgressReport) },
    },
  }, async (request) => {
    const referral = await app.referrals.readParticipating(request.principal!, request.params.id);
    const after = decodeCursor(request.query.cursor, ['position']) as [number] | undefined;
    const notes = await visitNotesOf(app.db, referral.id, { afterVisit: after?.[0], limit: request.query.limit });
    await app.auditLog.recordMany(
      auditContextOf(request),
      notes.slice(0, request.query.limit).map((note) => ({
        action: 'progress_report.read',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'progress_report',
        resourceId: note.id,
        patientId: referral.patientId,
      })),
    );
    return toPage(notes, request.query.limit, (note) => [note.visitNumber], (note) => note);
  });

  app.post('/referrals/:id/progress-reports/:reportId/addenda', {
    config: { policy: { roles: everyone }, auditAction: 'progress_report.addendum', auditResource: referralResource },
    schema: {
      tags: ['visit notes'],
      operationId: 'addProgressReportAddendum',
      summary: 'Attach a correction to a visit note (by its author); the note itself never changes',
      params: ReportParams,
      body: CreateAddendum,
      response: { 201: Addendum },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    const referral = await app.referrals.readParticipating(principal, request.params.id);
    const report = await reports.find({ referralId: referral.id, reportId: request.params.reportId });
    if (!report || report.authorId !== principal.id) {
      throw notFound('progress_report', request.params.reportId, 'Progress report', referral.patientId);
    }
    const addendum = await app.unitOfWork.run(auditContextOf(request), (unit) => {
      unit.audit({ action: 'progress_report.addendum', httpStatus: 201, resourceType: 'progress_report', resourceId: report.id, patientId: referral.patientId });
      return reports.addAddendum({ reportId: report.id, authorId: principal.id, text: request.body.text }, unit.tx);
    });
    return reply.code(201).send(addendum);
  });
};

export default progressReportRoutes;
