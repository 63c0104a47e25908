// /v1/referrals/{id}/reports: reports to the prescriber by the accepting therapist (evaluation,
// progress, discharge), signed by the prescriber, read by both sides as JSON or as a PDF.
import Negotiator from 'negotiator';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { apiPrefix } from '../../lib/api-prefix.js';
import { notAcceptable, notFound } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, PageQuery, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { reportPdf, reportsOf } from './report-reads.js';
import { ReportsService } from './reports-service.js';
import { IfMatchHeaders, prescriberPolicy, referralReadPolicy } from '../referrals/index.js';
import { CreateReport, Report, ReportParams, SignReport } from './schemas.js';

const referralResource = { type: 'referral', param: 'id' };
const reportFormats = ['application/json', 'application/pdf'];

const clinicalReportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = new ReportsService(app.db, app.referrals, app.unitOfWork);
  const reportUrl = (report: Report) => `${apiPrefix}/referrals/${report.referralId}/reports/${report.id}`;

  app.post('/referrals/:id/reports', {
    config: { policy: { roles: everyone }, auditAction: 'report.create', auditResource: referralResource },
    schema: {
      tags: ['reports'],
      operationId: 'createReport',
      summary: 'Submit an evaluation (plan of care), progress or discharge report to the prescriber',
      description:
        'Only the therapist who accepted the referral. The server adds the visits covered, visits used of authorized, the pain trend and each ' +
        'outcome series. A discharge report completes the referral from accepted or in_progress, whatever visits remain. Reports never change; ' +
        'corrections are new reports.',
      params: IdParams,
      headers: IfMatchHeaders,
      body: CreateReport,
      response: { 201: Report },
    },
  }, async (request, reply) => {
    const report = await service.submit(auditContextOf(request), request.principal!, request.params.id, request.body, request.headers['if-match']);
    return reply.code(201).header('location', reportUrl(report)).send(report);
  });

  app.get('/referrals/:id/reports', {
    config: { policy: referralReadPolicy, auditAction: 'report.list', auditResource: referralResource },
    schema: {
      tags: ['reports'],
      operationId: 'listReports',
      summary: "A referral's reports to the prescriber, oldest first, each with its signature",
      params: IdParams,
      querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
      response: { 200: Page(Report) },
    },
  }, async (request) => {
    const referral = await app.referrals.readParticipating(request.principal!, request.params.id);
    const rows = await reportsOf(app.db, referral.id, { after: decodeTimeCursor(request.query.cursor), limit: request.query.limit });
    await app.auditLog.recordMany(
      auditContextOf(request),
      rows.slice(0, request.query.limit).map(({ report }) => ({
        action: 'report.read',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'report',
        resourceId: report.id,
        patientId: referral.patientId,
      })),
    );
    return toPage(rows, request.query.limit, (row) => [row.cursorTime, row.report.id], (row) => row.report);
  });

  app.get('/referrals/:id/reports/:reportId', {
    config: { policy: referralReadPolicy, auditAction: 'report.read', auditResource: referralResource },
    schema: {
      tags: ['reports'],
      operationId: 'getReport',
      summary: 'One report, as JSON or (Accept: application/pdf) as the PDF a physician files in the chart',
      description: 'The PDF has the header (patient, prescriber, therapist, practice, dates), the goals, the pain and outcome series as charts, and the signature block.',
      params: ReportParams,
      response: {
        200: {
          description: 'The report',
          content: {
            'application/json': { schema: Report },
            'application/pdf': { schema: Type.String({ format: 'binary' }) },
          },
        },
      },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    // No Accept header means JSON, the first format; */* too.
    const format = new Negotiator(request).mediaType(reportFormats);
    const care = await app.referrals.readCare(principal, request.params.id);
    const { referral } = care;
    const report = await service.reports.find({ referralId: referral.id, reportId: request.params.reportId });
    if (!report) throw notFound('report', request.params.reportId, 'Report', referral.patientId);
    if (format === undefined) throw notAcceptable(reportFormats);
    await app.auditLog.record(auditContextOf(request), {
      action: 'report.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'report',
      resourceId: report.id,
      patientId: referral.patientId,
    });
    if (format === 'application/json') return reply.type('application/json').send(report);
    const pdf = await reportPdf(app.db, report, care, principal);
    return reply.type('application/pdf').header('content-disposition', `attachment; filename="report-${report.id}.pdf"`).send(pdf as never);
  });

  app.post('/referrals/:id/reports/:reportId/sign', {
    config: { policy: prescriberPolicy, auditAction: 'report.sign', auditResource: referralResource },
    schema: {
      tags: ['reports'],
      operationId: 'signReport',
      summary: 'The prescriber signs a report (for an evaluation: certifies the plan of care)',
      description: "Only the prescriber, or the office's EHR client with scope referrals:sign. A report is signed once: 409 already-signed after that.",
      params: ReportParams,
      body: SignReport,
      response: { 200: Report },
    },
  }, async (request) => service.sign(auditContextOf(request), request.principal!, request.params.id, request.params.reportId, request.body));
};

export default clinicalReportRoutes;
