// /v1/organizations: network admins onboard organizations; members read their own.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ConflictError, validationFailed } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { visibleOrganization } from './organization-access.js';
import { OrganizationsRepository, toOrganization } from './organizations-repository.js';
import { CreateOrganization, npiRuleOfKind, npiRuleProblem, Organization, OrganizationListQuery } from './schemas.js';
import { apiPrefix } from '../../lib/api-prefix.js';

const organizationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const organizationsRepository = new OrganizationsRepository(app.db);

  app.post('/organizations', {
    config: { policy: { roles: ['network_admin'] }, auditAction: 'organization.create' },
    schema: {
      tags: ['network'],
      operationId: 'createOrganization',
      summary: 'Onboard a physician office or therapy practice',
      body: CreateOrganization,
      response: { 201: Organization },
    },
  }, async (request, reply) => {
    const input = request.body;
    const npi = npiRuleProblem(input.npi, npiRuleOfKind[input.kind], input.kind === 'physician_office' ? 'a physician office' : 'a therapy practice');
    if (npi) throw validationFailed([npi]);
    const organization = await app.unitOfWork.change(
      auditContextOf(request),
      async (tx) => {
        if (input.npi && (await organizationsRepository.npiTaken({ npi: input.npi }, tx))) {
          throw new ConflictError('An organization with this NPI already exists');
        }
        return organizationsRepository.create(input, tx);
      },
      (created) => ({ action: 'organization.create', httpStatus: 201, resourceType: 'organization', resourceId: created.id }),
    );
    return reply.code(201).header('location', `${apiPrefix}/organizations/${organization.id}`).send(organization);
  });

  app.get('/organizations', {
    config: { policy: { roles: everyone, clientScope: 'any' }, auditAction: 'organization.list' },
    schema: {
      tags: ['network'],
      operationId: 'listOrganizations',
      summary: 'List organizations (network admins: all; others: their own)',
      querystring: OrganizationListQuery,
      response: { 200: Page(Organization) },
    },
  }, async (request) => {
    const principal = request.principal!;
    const { kind, limit, cursor } = request.query;
    const rows = await organizationsRepository.list({
      kind,
      onlyId: principal.role === 'network_admin' ? undefined : (principal.organizationId ?? undefined),
      after: decodeTimeCursor(cursor),
      limit,
    });
    return toPage(rows, limit, (row) => [row.cursorTime, row.organization.id], (row) => toOrganization(row.organization));
  });

  app.get('/organizations/:id', {
    config: { policy: { roles: everyone, clientScope: 'any' }, auditAction: 'organization.read', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'getOrganization',
      summary: 'Read an organization (its members and network admins)',
      params: IdParams,
      response: { 200: Organization },
    },
  }, async (request) => visibleOrganization(organizationsRepository, request.principal!, request.params.id));
};

export default organizationRoutes;
