// ServiceRequest and Task: the referral and its workflow, read and searched with the rules, 404s and
// audit events of /v1/referrals (a search is the sync feed with more filters, in the same order).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { validationFailed } from '../../../lib/errors.js';
import { decodeCursor, encodeCursor } from '../../../lib/pagination.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { referralReadPolicy, type Referral, type ReferralListFilter, type ReferralState } from '../../referrals/index.js';
import { assertJsonAccepted, sendBundle, sendResource } from '../http.js';
import { referralStatesOfServiceRequest, toServiceRequest } from '../map/service-request.js';
import { referralStatesOfTask, toTask, type TaskStatus } from '../map/task.js';
import { reportsByReferral } from '../../clinical-reports/index.js';
import { serviceRequestDefinition, taskDefinition, type ResourceDefinition } from '../resources.js';
import { readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl, type SearchEntry } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling, type ParsedSearch, type ReferenceValue } from '../search/params.js';

const referralResource = { type: 'referral', param: 'id' };

/** The one record a reference parameter names; "any of" several is not supported for these (400 rather than a silently narrower search). */
function onlyId(name: string, references: ReferenceValue[] | undefined, type: string): string | undefined {
  const only = onlyReference(name, references);
  return only?.type === type ? only.id : undefined;
}

function onlyReference(name: string, references: ReferenceValue[] | undefined): ReferenceValue | undefined {
  if (references && references.length > 1) throw validationFailed([{ field: `query.${name}`, message: 'takes one reference here' }]);
  return references?.[0];
}

/** The search's filters in the referrals module's terms. */
function filterOf(request: FastifyRequest, definition: ResourceDefinition, search: ParsedSearch): ReferralListFilter {
  const ids = search.tokens.get('_id');
  const statuses = search.tokens.get('status');
  const states: ReferralState[] | undefined = statuses?.flatMap((status) =>
    definition === taskDefinition ? [referralStatesOfTask[status as TaskStatus]] : referralStatesOfServiceRequest[status as keyof typeof referralStatesOfServiceRequest],
  );
  const { references } = search;
  const patient = onlyId('patient', references.get('patient'), 'Patient');
  const performer = onlyReference('performer', references.get('performer'));
  const owner = onlyReference('owner', references.get('owner'));
  const after = decodeCursor(search.cursor, ['digits', 'uuid']) as [string, string] | undefined;
  return {
    principal: request.principal!,
    ...(ids && (definition === taskDefinition ? { taskIds: ids } : { ids })),
    ...(states && { states }),
    ...(patient && { patientId: patient }),
    ...(references.has('requester') && { prescriberId: onlyId('requester', references.get('requester'), 'Practitioner') }),
    ...(performer && (performer.type === 'Practitioner' ? { therapistId: performer.id } : { practiceId: performer.id })),
    ...(owner && { owner: owner.type === 'Practitioner' ? { therapistId: owner.id } : { practiceId: owner.id } }),
    ...(references.has('focus') && { ids: [onlyId('focus', references.get('focus'), 'ServiceRequest')!] }),
    ...(search.lastUpdated && (search.lastUpdated.prefix === 'ge' ? { updatedSince: search.lastUpdated.at } : { updatedAfter: search.lastUpdated.at })),
    after,
    limit: search.count,
  };
}

const referralRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  const workflow = app.referrals;

  /**
   * Tasks of these referrals, with the reasons of declines and cancellations and the reports written
   * (a query each for the page). Reports are listed to whoever takes part in the care, as /v1 does.
   */
  async function tasksOf(rows: { referral: Referral; taskId: string }[]) {
    const closing = rows.filter(({ referral }) => referral.status === 'declined' || referral.status === 'cancelled').map(({ referral }) => referral.id);
    const inCare = rows.filter(({ referral }) => referral.activity.lastAt !== null).map(({ referral }) => referral.id);
    const [reasons, reports] = await Promise.all([workflow.closingReasons(closing), reportsByReferral(app.db, inCare)]);
    return rows.map((row) => toTask({ ...row, closingReason: reasons.get(row.referral.id), reports: reports.get(row.referral.id) }));
  }

  async function auditRead(request: FastifyRequest, referralId: string, patientId: string) {
    await app.auditLog.record(auditContextOf(request), {
      action: 'referral.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referralId,
      patientId,
    });
  }

  app.get('/ServiceRequest/:id', {
    config: { policy: referralReadPolicy, auditAction: 'referral.read', auditResource: referralResource },
    schema: readSchema(serviceRequestDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const { referral, patientId } = await workflow.view(request.principal!, request.params.id);
    await auditRead(request, referral.id, patientId);
    return sendResource(reply, toServiceRequest(referral));
  });

  app.get('/Task/:id', {
    config: { policy: referralReadPolicy, auditAction: 'referral.read', auditResource: { type: 'task', param: 'id' } },
    schema: readSchema(taskDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const { referral, taskId, patientId } = await workflow.readByTask(request.principal!, request.params.id);
    await auditRead(request, referral.id, patientId);
    const [task] = await tasksOf([{ referral, taskId }]);
    return sendResource(reply, task!);
  });

  for (const definition of [serviceRequestDefinition, taskDefinition]) {
    app.get(`/${definition.type}`, {
      config: { policy: referralReadPolicy, auditAction: 'referral.list' },
      schema: searchSchema(definition),
    }, async (request, reply) => {
      assertJsonAccepted(request);
      const search = parseSearch(request.query as Record<string, unknown>, definition.searchParams, {
        strict: wantsStrictHandling(request.headers.prefer),
        includes: [...(definition.searchInclude ?? []).map((value) => `_include=${value}`), ...(definition.searchRevInclude ?? []).map((value) => `_revinclude=${value}`)],
      });
      const rows = await workflow.search(filterOf(request, definition, search));
      const shown = rows.slice(0, search.count);
      const withTasks = definition === taskDefinition || search.includes.length > 0;
      const tasks = withTasks ? await tasksOf(shown) : [];
      const entries: SearchEntry[] =
        definition === taskDefinition
          ? tasks.map((task) => ({ resource: task, mode: 'match' as const }))
          : shown.map(({ referral }) => ({ resource: toServiceRequest(referral), mode: 'match' as const }));
      if (search.includes.length > 0) {
        entries.push(
          ...(definition === taskDefinition
            ? shown.map(({ referral }) => ({ resource: toServiceRequest(referral), mode: 'include' as const }))
            : tasks.map((task) => ({ resource: task, mode: 'include' as const }))),
        );
      }
      // Each referral shown is a read of its patient's record, as in the /v1 list.
      await app.auditLog.recordMany(
        auditContextOf(request),
        shown.map(({ referral, patientId }) => ({
          action: 'referral.list',
          outcome: 'success' as const,
          httpStatus: 200,
          resourceType: 'referral',
          resourceId: referral.id,
          patientId,
        })),
      );
      const applied = search.applied.filter(([name]) => name !== '_cursor');
      const last = shown.at(-1);
      const next = rows.length > search.count && last ? searchUrl(base, definition.type, [...applied, ['_cursor', encodeCursor([last.syncKey, last.referral.id])]]) : undefined;
      return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, definition.type, search.applied), next }));
    });
  }
};

export default referralRoutes;
