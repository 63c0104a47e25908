// /v1/organizations: network admins onboard organizations; members read their own.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ConflictError, validationFailed } from '../../lib/errors.js';
import { isValidNpi } from '../../lib/npi.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone } from '../auth/policy.js';
import { visibleOrganization } from './organization-access.js';
import { OrganizationsRepository, toOrganization } from './organizations-repository.js';
import { CreateOrganization, Organization, OrganizationListQuery } from './schemas.js';

const organizationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const organizationsRepository = new OrganizationsRepository(app.db);

  app.post('/v1/organizations', {
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
    if (input.kind === 'physician_office') {
      if (!input.npi) throw validationFailed([{ field: 'npi', message: 'is required for a physician office' }]);
      if (!isValidNpi(input.npi)) throw validationFailed([{ field: 'npi', message: 'fails the NPI check digit (Luhn)' }]);
    } else if (input.npi !== undefined) {
      throw validationFailed([{ field: 'npi', message: 'is only taken for a physician office' }]);
    }
    const organization = await app.auditLog.change(
      auditContextOf(request),
      async (tx) => {
        if (input.npi && (await organizationsRepository.npiTaken({ npi: input.npi }, tx))) {
          throw new ConflictError('An organization with this NPI already exists');
        }
        return organizationsRepository.create(input, tx);
      },
      (created) => ({ action: 'organization.create', httpStatus: 201, resourceType: 'organization', resourceId: created.id }),
    );
    return reply.code(201).header('location', `/v1/organizations/${organization.id}`).send(organization);
  });

  app.get('/v1/organizations', {
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

  app.get('/v1/organizations/:id', {
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
