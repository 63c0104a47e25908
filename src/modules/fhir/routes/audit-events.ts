// AuditEvent: the audit trail for its readers, with the rules of GET /v1/audit-events (network
// admins all of it, organization admins their people's events and every access to their
// patients); reading it is itself audited, as there.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { notFound, validationFailed } from '../../../lib/errors.js';
import { decodeCursor, encodeCursor } from '../../../lib/pagination.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { toAuditEvent as toV1AuditEvent } from '../../audit/index.js';
import { organizationAdmins } from '../../auth/policy.js';
import { assertJsonAccepted, sendBundle, sendResource } from '../http.js';
import { toAuditEvent } from '../map/audit-event.js';
import { auditEventDefinition } from '../resources.js';
import { readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling } from '../search/params.js';

const readersPolicy = { roles: organizationAdmins } as const;
const eventIdPattern = '^[1-9][0-9]{0,15}$';

/** The earliest instant a ge/gt date search takes; gt is taken at the millisecond the trail's filter works in. */
function fromOf(date: { prefix: 'ge' | 'gt'; at: Date } | undefined): string | undefined {
  if (!date) return undefined;
  return new Date(date.at.getTime() + (date.prefix === 'gt' ? 1 : 0)).toISOString();
}

const auditEventRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  const auditTrailRead = (request: FastifyRequest) =>
    app.auditLog.record(auditContextOf(request), { action: 'audit.read', outcome: 'success', httpStatus: 200, resourceType: 'audit_log' });

  app.get('/AuditEvent/:id', {
    config: { policy: readersPolicy, auditAction: 'audit.read', auditResource: { type: 'audit_event', param: 'id' } },
    schema: readSchema(auditEventDefinition, Type.String({ pattern: eventIdPattern, description: 'The /v1 audit event id' })),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const row = await app.auditTrail.get(request.principal!, Number(request.params.id));
    if (!row) throw notFound('audit_event', request.params.id, 'AuditEvent');
    await auditTrailRead(request);
    return sendResource(reply, toAuditEvent(toV1AuditEvent(row)));
  });

  app.get('/AuditEvent', {
    config: { policy: readersPolicy, auditAction: 'audit.read' },
    schema: searchSchema(auditEventDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const search = parseSearch(request.query as Record<string, unknown>, auditEventDefinition.searchParams, {
      strict: wantsStrictHandling(request.headers.prefer),
      idPattern: new RegExp(eventIdPattern),
    });
    const patient = search.references.get('patient');
    if (patient && patient.length > 1) throw validationFailed([{ field: 'query.patient', message: 'name one patient' }]);
    const dates = [fromOf(search.dates.get('date')), fromOf(search.lastUpdated)].filter((at) => at !== undefined).sort();
    const filter = { ...(patient?.[0] && { patientId: patient[0].id }), ...(dates.length > 0 && { from: dates.at(-1)! }) };
    const ids = search.tokens.get('_id');
    const after = decodeCursor(search.cursor, ['position']) as [number] | undefined;
    // By id, the other parameters still apply: each event is looked up and then held to them.
    const matches = (row: { patientId: string | null; occurredAt: Date | string }) =>
      (!filter.patientId || row.patientId === filter.patientId) && (!filter.from || new Date(row.occurredAt).getTime() >= new Date(filter.from).getTime());
    const rows = ids
      ? (await Promise.all(ids.slice(0, search.count).map((id) => app.auditTrail.get(principal, Number(id))))).filter((row) => row !== undefined).filter(matches)
      : await app.auditTrail.list({ principal, filter, afterId: after?.[0], limit: search.count + 1 });
    const shown = rows.slice(0, search.count);
    await auditTrailRead(request);
    const entries = shown.map((row) => ({ resource: toAuditEvent(toV1AuditEvent(row)), mode: 'match' as const }));
    const applied = search.applied.filter(([name]) => name !== '_cursor');
    const last = shown.at(-1);
    const next = !ids && rows.length > search.count && last ? searchUrl(base, 'AuditEvent', [...applied, ['_cursor', encodeCursor([Number(last.id)])]]) : undefined;
    return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, 'AuditEvent', search.applied), next }));
  });
};

export default auditEventRoutes;
