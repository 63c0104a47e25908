// Patient, Practitioner, PractitionerRole and Organization. A patient is shown in full to the office
// that registered them and, as /v1 shows them inside a referral, to the therapist side that accepted
// one of their referrals; people and organizations to whoever shares a referral with them, and
// therapists and practices (the directory) to everyone.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { notFound } from '../../../lib/errors.js';
import { decodeTimeCursor, encodeCursor } from '../../../lib/pagination.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { everyone, type Principal } from '../../auth/policy.js';
import { seesOrganization, type User } from '../../network/index.js';
import { todayUtc } from '../../../lib/dates.js';
import { assertJsonAccepted, sendBundle, sendResource } from '../http.js';
import { toOrganization, toPatient, toPractitioner, toPractitionerRole, type PatientRecord } from '../map/people.js';
import { organizationDefinition, patientDefinition, practitionerDefinition, practitionerRoleDefinition } from '../resources.js';
import { readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling } from '../search/params.js';

const holds = (principal: Principal, scope: string) => principal.kind !== 'api_client' || principal.scopes.includes(scope);

const peopleRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  /** The patient's record as this caller may see it, or undefined (the caller then gets the outsider's 404). */
  async function patientRecordFor(principal: Principal, patientId: string): Promise<PatientRecord | undefined> {
    if (principal.organizationKind === 'physician_office' && holds(principal, 'patients:read')) {
      const record = await app.patientRecords.findInOrganization({ organizationId: principal.organizationId!, patientId });
      if (record) return record;
    }
    if (!holds(principal, 'referrals:read')) return undefined;
    const [viaReferral] = await app.referrals.search({ principal, patientId, limit: 1 });
    const patient = viaReferral?.referral.patient;
    return patient && !('limited' in patient) ? patient : undefined;
  }

  async function auditPatientReads(request: FastifyRequest, action: string, patientIds: string[]) {
    await app.auditLog.recordMany(
      auditContextOf(request),
      patientIds.map((id) => ({ action, outcome: 'success' as const, httpStatus: 200, resourceType: 'patient', resourceId: id, patientId: id })),
    );
  }

  const patientPolicy = { roles: everyone, clientScope: 'any' } as const;

  app.get('/Patient/:id', {
    config: { policy: patientPolicy, auditAction: 'patient.read', auditResource: { type: 'patient', param: 'id', isPatient: true } },
    schema: readSchema(patientDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const record = await patientRecordFor(request.principal!, request.params.id);
    if (!record) throw notFound('patient', request.params.id, 'Patient', request.params.id);
    await auditPatientReads(request, 'patient.read', [record.id]);
    return sendResource(reply, toPatient(record));
  });

  app.get('/Patient', {
    config: { policy: patientPolicy, auditAction: 'patient.list' },
    schema: searchSchema(patientDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const search = parseSearch(request.query as Record<string, unknown>, patientDefinition.searchParams, { strict: wantsStrictHandling(request.headers.prefer) });
    const ids = search.tokens.get('_id');
    const identifier = (request.query as Record<string, unknown>).identifier;
    let records: PatientRecord[] = [];
    let next: string | undefined;
    if (ids) {
      const found = await Promise.all(ids.slice(0, search.count).map((id) => patientRecordFor(principal, id)));
      records = found.filter((record) => record !== undefined);
    } else if (typeof identifier === 'string' && principal.organizationKind === 'physician_office' && holds(principal, 'patients:read')) {
      const [system, value] = identifier.split('|');
      if (system && value) {
        const rows = await app.patientRecords.list({ organizationId: principal.organizationId!, identifier: { system, value }, after: decodeTimeCursor(search.cursor), limit: search.count });
        records = rows.slice(0, search.count).map((row) => row.patient);
        const last = rows[search.count - 1];
        if (rows.length > search.count && last) {
          next = searchUrl(base, 'Patient', [...search.applied.filter(([name]) => name !== '_cursor'), ['_cursor', encodeCursor([last.cursorTime, last.patient.id])]]);
        }
      }
    }
    await auditPatientReads(request, 'patient.list', records.map((record) => record.id));
    const entries = records.map((record) => ({ resource: toPatient(record), mode: 'match' as const }));
    return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, 'Patient', search.applied), next }));
  });

  const directoryPolicy = { roles: everyone, clientScope: 'directory:read' } as const;

  /** In the directory as /v1/therapists lists them: active therapists with a verified, unexpired license. */
  const inDirectory = (user: User) =>
    user.role === 'therapist' && user.active && user.therapist !== null && user.therapist.license.verified && user.therapist.license.expiresOn >= todayUtc();

  /** A user, if the caller may see them, and whether as a colleague (who sees the license number); else the outsider's 404. */
  async function visibleUser(principal: Principal, userId: string) {
    const user = await app.directory.user(userId);
    const colleague = user?.organizationId != null && seesOrganization(principal, user.organizationId);
    const visible = user && (colleague || inDirectory(user) || (await app.referrals.isCounterpartOf(principal, { userId })));
    if (!visible) throw notFound('user', userId, 'Practitioner');
    return { user, colleague };
  }

  app.get('/Practitioner/:id', {
    config: { policy: directoryPolicy, auditAction: 'user.read', auditResource: { type: 'user', param: 'id' } },
    schema: readSchema(practitionerDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const { user, colleague } = await visibleUser(request.principal!, request.params.id);
    return sendResource(reply, toPractitioner(user, { licenseNumber: colleague }));
  });

  app.get('/PractitionerRole/:id', {
    config: { policy: directoryPolicy, auditAction: 'practitioner_role.read', auditResource: { type: 'user', param: 'id' } },
    schema: readSchema(practitionerRoleDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    return sendResource(reply, toPractitionerRole((await visibleUser(request.principal!, request.params.id)).user));
  });

  app.get('/Organization/:id', {
    config: { policy: directoryPolicy, auditAction: 'organization.read', auditResource: { type: 'organization', param: 'id' } },
    schema: readSchema(organizationDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const principal = request.principal!;
    const organizationId = request.params.id;
    const organization = await app.directory.organization(organizationId);
    const visible =
      organization &&
      (seesOrganization(principal, organizationId) ||
        organization.kind === 'therapy_practice' ||
        (await app.referrals.isCounterpartOf(principal, { organizationId })));
    if (!visible) throw notFound('organization', organizationId, 'Organization');
    return sendResource(reply, toOrganization(organization));
  });
};

export default peopleRoutes;
