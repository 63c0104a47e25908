// /v1/audit-events: the audit trail for network and organization admins — filter, export, who saw
// a patient — and the verifiable log (SPEC §15): signed checkpoints, the public key, inclusion and
// consistency proofs, and verification. Reading the trail is itself audited.
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { conflict, notFound, validationFailed } from '../../lib/errors.js';
import { decodeCursor, encodeCursor } from '../../lib/pagination.js';
import { Page } from '../../lib/schemas.js';
import { organizationAdmins } from '../auth/policy.js';
import { auditContextOf } from './audit-log.js';
import { toAuditEvent, type AuditRepository } from './audit-repository.js';
import {
  AuditEvent,
  AuditEventParams,
  AuditExportQuery,
  AuditListQuery,
  Checkpoint,
  CheckpointListQuery,
  ConsistencyProof,
  ConsistencyQuery,
  InclusionProof,
  InclusionProofQuery,
  LogVerification,
  PatientViewers,
  PatientViewersQuery,
  PublicKey,
} from './schemas.js';
import type { ProofRefusal, TransparencyLog } from './transparency-log.js';

const readersPolicy = { roles: organizationAdmins } as const;

const auditRoutes: FastifyPluginAsyncTypebox<{ log: TransparencyLog; trail: AuditRepository }> = async (app, { log, trail: auditRepository }) => {
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
      operationId: 'verifyAuditLog',
      summary: 'Hash every event in the latest signed checkpoint again and compare with the stored tree and what was signed',
      description:
        'From one snapshot. Events written since the checkpoint are counted as unsequenced, never taken for tampering. ' +
        'A rewrite by someone holding the database is caught against a checkpoint kept outside (see npm run audit:verify).',
      response: { 200: LogVerification },
    },
  }, async (request) => {
    const result = await log.verify();
    await app.auditLog.record(auditContextOf(request), { action: 'audit.verify', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });
    return result;
  });

  app.get('/audit-events/checkpoints/latest', {
    config: {
      policy: readersPolicy,
      auditAction: 'audit.checkpoint.read',
      ownProblems: { 404: { description: 'No checkpoint has been signed yet: no worker has run since the log was created' } },
    },
    schema: {
      tags: ['audit'],
      operationId: 'getLatestAuditCheckpoint',
      summary: 'The latest signed checkpoint of the audit log (tree size and root hash)',
      response: { 200: Checkpoint },
    },
  }, async () => {
    const latest = await log.latestCheckpoint();
    if (!latest) throw notFound('audit_checkpoint', 'latest', 'Audit checkpoint');
    return log.present(latest);
  });

  app.get('/audit-events/checkpoints', {
    config: { policy: readersPolicy, auditAction: 'audit.checkpoint.list' },
    schema: {
      tags: ['audit'],
      operationId: 'listAuditCheckpoints',
      summary: 'Signed checkpoints, newest first',
      querystring: CheckpointListQuery,
      response: { 200: Page(Checkpoint) },
    },
  }, async (request) => {
    const { cursor, limit } = request.query;
    const below = decodeCursor(cursor, ['position']) as [number] | undefined;
    const rows = await log.checkpoints({ below: below?.[0], limit: limit + 1 });
    const page = rows.slice(0, limit);
    return { data: page.map((checkpoint) => log.present(checkpoint)), nextCursor: rows.length > limit ? encodeCursor([page.at(-1)!.treeSize]) : null };
  });

  app.get('/audit-events/public-key', {
    config: { policy: readersPolicy, auditAction: 'audit.public_key.read' },
    schema: {
      tags: ['audit'],
      operationId: 'getAuditPublicKey',
      summary: "The Ed25519 public key that checks the checkpoints' signatures, as a JWK",
      response: { 200: PublicKey },
    },
  }, async () => log.publicJwk);

  app.get('/audit-events/consistency', {
    config: { policy: readersPolicy, auditAction: 'audit.proof' },
    schema: {
      tags: ['audit'],
      operationId: 'getAuditConsistencyProof',
      summary: 'RFC 9162 consistency proof: the tree of size `to` extends the one of size `from` without changing it',
      querystring: ConsistencyQuery,
      response: { 200: ConsistencyProof },
    },
  }, async (request) => {
    const { from, to } = request.query;
    return answerOrRefuse(await log.consistencyProof(from, to), 'to');
  });

  app.get('/audit-events/:id', {
    config: { policy: readersPolicy, auditAction: 'audit.read', auditResource: { type: 'audit_event', param: 'id' } },
    schema: {
      tags: ['audit'],
      operationId: 'getAuditEvent',
      summary: 'One audit event, with its leafIndex once sequenced',
      params: AuditEventParams,
      response: { 200: AuditEvent },
    },
  }, async (request) => {
    const row = await auditRepository.get(request.principal!, request.params.id);
    if (!row) throw notFound('audit_event', String(request.params.id), 'Audit event');
    await app.auditLog.record(auditContextOf(request), { action: 'audit.read', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });
    return toAuditEvent(row);
  });

  app.get('/audit-events/:id/proof', {
    config: {
      policy: readersPolicy,
      auditAction: 'audit.proof',
      auditResource: { type: 'audit_event', param: 'id' },
      ownProblems: { 409: { description: 'The event is not in a signed checkpoint yet (not-yet-sequenced); retry after Retry-After', retryAfter: true } },
    },
    schema: {
      tags: ['audit'],
      operationId: 'getAuditInclusionProof',
      summary: "RFC 9162 inclusion proof of one event in the tree of size treeSize (the latest checkpoint's by default)",
      params: AuditEventParams,
      querystring: InclusionProofQuery,
      response: { 200: InclusionProof },
    },
  }, async (request) => {
    // The caller proves inclusion of events they may read: another's event is not found.
    if (!(await auditRepository.get(request.principal!, request.params.id))) throw notFound('audit_event', String(request.params.id), 'Audit event');
    return answerOrRefuse(await log.inclusionProof(request.params.id, request.query.treeSize), 'treeSize');
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

function answerOrRefuse<T extends object>(answer: T | ProofRefusal, sizeParameter: 'treeSize' | 'to'): T {
  if (!('reason' in answer)) return answer;
  switch (answer.reason) {
    case 'unsequenced':
      throw conflict('not-yet-sequenced', 'The event is not in a signed checkpoint yet; it will be within seconds', { headers: { 'retry-after': '1' } });
    case 'tree-too-small':
      throw validationFailed([{ field: 'query.treeSize', message: `must be greater than the event's leafIndex (${answer.leafIndex})` }]);
    case 'beyond-checkpoint':
      throw validationFailed([{ field: `query.${sizeParameter}`, message: `must be at most the latest checkpoint's tree size (${answer.treeSize})` }]);
    case 'from-after-to':
      throw validationFailed([{ field: 'query.from', message: 'must not be greater than to' }]);
  }
}
