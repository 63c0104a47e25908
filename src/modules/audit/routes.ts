// /v1/audit-events: the audit trail for network and organization admins — filter, export, verify,
// and who saw a patient. Reading the trail is itself audited.
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { decodeCursor, encodeCursor } from '../../lib/pagination.js';
import { Page } from '../../lib/schemas.js';
import { organizationAdmins } from '../auth/policy.js';
import { auditContextOf } from './audit-log.js';
import { AuditRepository, toAuditEvent } from './audit-repository.js';
import { AuditEvent, AuditExportQuery, AuditListQuery, ChainVerification, PatientViewers, PatientViewersQuery } from './schemas.js';

const readersPolicy = { roles: organizationAdmins } as const;

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const auditRepository = new AuditRepository(app.db, app.database);

  app.get('/audit-events', {
    config: { policy: readersPolicy, auditAction: 'audit.read' },
    schema: {
      tags: ['audit'],
      operationId: 'listAuditEvents',
      summary: 'Audit events, oldest first, filtered by actor, patient, resource, action, outcome and time',
      description: 'Network admins read every event; organization admins read their own people\'s events and every access to their patients.',
      querystring: AuditListQuery,
      response: { 200: Page(AuditEvent) },
    },
  }, async (request) => {
    const { cursor, limit, ...filter } = request.query;
    const after = decodeCursor(cursor, ['position']) as [number] | undefined;
    const rows = await auditRepository.list({ principal: request.principal!, filter, afterId: after?.[0], limit: limit + 1 });
    await app.auditLog.record(auditContextOf(request), { action: 'audit.read', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });
    const page = rows.slice(0, limit);
    return { data: page.map(toAuditEvent), nextCursor: rows.length > limit ? encodeCursor([page.at(-1)!.id]) : null };
  });

  app.get('/audit-events/export', {
    config: { policy: readersPolicy, auditAction: 'audit.export' },
    schema: {
      tags: ['audit'],
      operationId: 'exportAuditEvents',
      summary: 'Every matching audit event as NDJSON (one JSON object per line), streamed',
      querystring: AuditExportQuery,
      response: {
        200: {
          description: 'One AuditEvent per line',
          content: { 'application/x-ndjson': { schema: Type.String() } },
        },
      },
    },
  }, async (request, reply) => {
    // Recorded before streaming starts: the export is audited even if the client hangs up halfway.
    await app.auditLog.record(auditContextOf(request), { action: 'audit.export', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });
    const events = auditRepository.stream({ principal: request.principal!, filter: request.query });
    const lines = Readable.from(
      (async function* () {
        for await (const event of events) yield `${JSON.stringify(event)}\n`;
      })(),
    );
    return reply
      .type('application/x-ndjson')
      .header('content-disposition', 'attachment; filename="audit-events.ndjson"')
      .send(lines as never);
  });

  app.get('/audit-events/verify', {
    config: { policy: { roles: ['network_admin'] }, auditAction: 'audit.verify' },
    schema: {
      tags: ['audit'],
      operationId: 'verifyAuditChain',
      summary: 'Recompute the hash chain and name the first broken link, if any',
      response: { 200: ChainVerification },
    },
  }, async (request) => {
    const result = await auditRepository.verify();
    await app.auditLog.record(auditContextOf(request), { action: 'audit.verify', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });
    return result;
  });

  app.get('/audit-events/viewers', {
    config: { policy: readersPolicy, auditAction: 'audit.viewers' },
    schema: {
      tags: ['audit'],
      operationId: 'listPatientViewers',
      summary: "Who saw this patient's records: every actor with a successful access, their actions and when",
      querystring: PatientViewersQuery,
      response: { 200: PatientViewers },
    },
  }, async (request) => {
    const { patientId } = request.query;
    const rows = await auditRepository.viewers({ principal: request.principal!, patientId });
    await app.auditLog.record(auditContextOf(request), {
      action: 'audit.viewers',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'audit_log',
      resourceId: patientId,
    });
    return {
      patientId,
      data: rows.map((row) => ({
        actor: { type: row.actorType, id: row.actorId, organizationId: row.actorOrganizationId, role: row.actorRole },
        actions: row.actions,
        accesses: row.accesses,
        firstAt: new Date(row.firstAt).toISOString(),
        lastAt: new Date(row.lastAt).toISOString(),
      })),
    };
  });
};

export default auditRoutes;
