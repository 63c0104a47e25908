// /v1/organizations/{id}/api-clients: credentials for partner EHRs, the secret shown once, or the
// public keys of a private_key_jwt client (SMART Backend Services), replaceable for a rotation.
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Config } from '../../config.js';
import { conflict, notFound } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { organizationAdmins } from '../auth/policy.js';
import { clientKeysOf, refuseKeysOfSecretClient } from './api-client-keys.js';
import { ApiClientsRepository, toApiClient, type ClientCredentials } from './api-clients-repository.js';
import { managedOrganization, visibleOrganization } from './organization-access.js';
import { OrganizationsRepository } from './organizations-repository.js';
import { ApiClient, ApiClientListQuery, ApiClientParams, ApiClientWithSecret, CreateApiClient, ReplaceApiClientKeys } from './schemas.js';

const apiClientRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
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
      summary: 'Create a partner API client; a secret is returned only now, unless it signs in with its keys (private_key_jwt)',
      params: IdParams,
      body: CreateApiClient,
      response: { 201: ApiClientWithSecret },
    },
  }, async (request, reply) => {
    const organization = await managedOrganization(organizationsRepository, request.principal!, request.params.id);
    const { body } = request;
    const clientId = `cli_${randomBytes(12).toString('base64url')}`;
    let clientSecret: string | undefined;
    let credentials: ClientCredentials;
    if (body.authMethod === 'private_key_jwt') {
      credentials = { authMethod: 'private_key_jwt', ...clientKeysOf(body, config.jwksAllowPrivateUrls) };
    } else {
      refuseKeysOfSecretClient(body);
      clientSecret = `cs_${randomBytes(32).toString('base64url')}`;
      credentials = { authMethod: 'client_secret', secretHash: await app.passwords.hash(clientSecret) };
    }
    const client = await app.unitOfWork.change(
      auditContextOf(request),
      (tx) =>
        apiClientsRepository.create(
          { organizationId: organization.id, name: body.name, clientId, scopes: body.scopes, createdBy: request.principal!.id, ...credentials },
          tx,
        ),
      (created) => ({ action: 'api_client.create', httpStatus: 201, resourceType: 'api_client', resourceId: created.id }),
    );
    return reply.code(201).send({ ...client, ...(clientSecret ? { clientSecret } : {}) });
  });

  app.patch('/organizations/:id/api-clients/:apiClientId', {
    config: { policy: { roles: organizationAdmins }, auditAction: 'api_client.update_keys', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'replaceApiClientKeys',
      summary: 'Replace the keys of a private_key_jwt client (key rotation)',
      description:
        'Takes exactly one of jwks and jwksUrl, which replaces the key set or URL the client had. Assertions signed with a key no longer ' +
        'registered are refused from now on; to rotate without a gap, register the new key beside the old one first, then drop the old one. ' +
        'A client_secret client (409 not-private-key-jwt) or a revoked one (409 api-client-revoked) has no keys to replace.',
      params: ApiClientParams,
      body: ReplaceApiClientKeys,
      response: { 200: ApiClient },
    },
  }, async (request) => {
    const { id, apiClientId } = request.params;
    await managedOrganization(organizationsRepository, request.principal!, id);
    const client = await apiClientsRepository.findInOrganization({ organizationId: id, apiClientId });
    if (!client) throw notFound('api_client', apiClientId, 'API client');
    if (client.authMethod !== 'private_key_jwt') throw conflict('not-private-key-jwt', 'This API client signs in with a secret: it has no keys to replace');
    if (!client.active) throw conflict('api-client-revoked', 'This API client is revoked: its keys can no longer be replaced');
    const keys = clientKeysOf(request.body, config.jwksAllowPrivateUrls);
    const updated = await app.unitOfWork.change(
      auditContextOf(request),
      (tx) => apiClientsRepository.replaceKeys({ apiClientId, ...keys }, tx),
      () => ({ action: 'api_client.update_keys', httpStatus: 200, resourceType: 'api_client', resourceId: apiClientId }),
    );
    return updated!;
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
