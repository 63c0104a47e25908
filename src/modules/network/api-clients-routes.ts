// /v1/organizations/{id}/api-clients: credentials for partner EHRs, the secret shown once.
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { organizationAdmins } from '../auth/policy.js';
import { ApiClientsRepository, toApiClient } from './api-clients-repository.js';
import { managedOrganization, visibleOrganization } from './organization-access.js';
import { OrganizationsRepository } from './organizations-repository.js';
import { ApiClient, ApiClientListQuery, ApiClientParams, ApiClientWithSecret, CreateApiClient } from './schemas.js';

const apiClientRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const organizationsRepository = new OrganizationsRepository(app.db);
  const apiClientsRepository = new ApiClientsRepository(app.db);
  // A replayed answer about an organization (a new API client of it) is shown only to whoever may still see it.
  app.visibilityChecks.register('organization', (principal, id) => visibleOrganization(organizationsRepository, principal, id));

  app.post('/organizations/:id/api-clients', {
    // The secret is in this answer only: never kept for, nor shown by, a replay of it.
    config: { policy: { roles: organizationAdmins }, auditAction: 'api_client.create', auditResource: { type: 'organization', param: 'id' }, shownOnce: ['clientSecret'] },
    schema: {
      tags: ['network'],
      operationId: 'createApiClient',
      summary: 'Create a partner API client; the secret is returned only now',
      params: IdParams,
      body: CreateApiClient,
      response: { 201: ApiClientWithSecret },
    },
  }, async (request, reply) => {
    const organization = await managedOrganization(organizationsRepository, request.principal!, request.params.id);
    const clientId = `cli_${randomBytes(12).toString('base64url')}`;
    const clientSecret = `cs_${randomBytes(32).toString('base64url')}`;
    const secretHash = await app.passwords.hash(clientSecret);
    const client = await app.unitOfWork.change(
      auditContextOf(request),
      (tx) =>
        apiClientsRepository.create(
          { organizationId: organization.id, name: request.body.name, clientId, secretHash, scopes: request.body.scopes, createdBy: request.principal!.id },
          tx,
        ),
      (created) => ({ action: 'api_client.create', httpStatus: 201, resourceType: 'api_client', resourceId: created.id }),
    );
    return reply.code(201).send({ ...client, clientSecret });
  });

  app.get('/organizations/:id/api-clients', {
    config: { policy: { roles: organizationAdmins }, auditAction: 'api_client.list', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'listApiClients',
      summary: "List an organization's API clients (never their secrets)",
      params: IdParams,
      querystring: ApiClientListQuery,
      response: { 200: Page(ApiClient) },
    },
  }, async (request) => {
    const organization = await managedOrganization(organizationsRepository, request.principal!, request.params.id);
    const { limit, cursor } = request.query;
    const rows = await apiClientsRepository.list({
      organizationId: organization.id,
      after: decodeTimeCursor(cursor),
      limit,
    });
    return toPage(rows, limit, (row) => [row.cursorTime, row.client.id], (row) => toApiClient(row.client));
  });

  app.delete('/organizations/:id/api-clients/:apiClientId', {
    config: { policy: { roles: organizationAdmins }, auditAction: 'api_client.revoke', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'revokeApiClient',
      summary: 'Revoke an API client: its tokens stop working at once',
      params: ApiClientParams,
      response: { 204: { type: 'null', description: 'Revoked' } },
    },
  }, async (request, reply) => {
    const { id, apiClientId } = request.params;
    await managedOrganization(organizationsRepository, request.principal!, id);
    const client = await apiClientsRepository.findInOrganization({ organizationId: id, apiClientId });
    if (!client) throw notFound('api_client', apiClientId, 'API client');
    await app.unitOfWork.change(
      auditContextOf(request),
      (tx) => apiClientsRepository.revoke({ apiClientId }, tx),
      () => ({ action: 'api_client.revoke', httpStatus: 204, resourceType: 'api_client', resourceId: apiClientId }),
    );
    return reply.code(204).send(null);
  });
};

export default apiClientRoutes;
