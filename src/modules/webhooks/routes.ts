// /v1/webhook-endpoints and /v1/webhook-deliveries: partners register receivers, rotate secrets,
// send a ping, and see, resend and recover deliveries. Organization admins manage their own;
// network admins any organization's.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { component } from '../../lib/components.js';
import { conflict, notFound, validationFailed } from '../../lib/errors.js';
import { decodeCursor, decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { canManageOrganization, organizationAdmins, type Principal } from '../auth/policy.js';
import { WebhookOutbox } from './outbox.js';
import {
  CreateWebhookEndpoint,
  DeliveryListQuery,
  Queued,
  RecoverDeliveries,
  UpdateWebhookEndpoint,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointListQuery,
  WebhookEndpointWithSecret,
} from './schemas.js';
import { targetUrlProblem } from '../../lib/outbound/target-guard.js';
import { sealSigningSecret } from './signing-secrets.js';
import { newSigningSecret, toWebhookDelivery, toWebhookEndpoint, WebhooksRepository } from './webhooks-repository.js';
import { apiPrefix } from '../../lib/api-prefix.js';

const policy = { roles: organizationAdmins } as const;
const endpointResource = { type: 'webhook_endpoint', param: 'id' };
// The signing secret is in the answer that makes it, never in a replay of that answer.
const shownOnce = ['secret'];
// During a rotation the old secret keeps signing this long, so receivers can switch over.
const rotationOverlapMs = 24 * 3600 * 1000;

const webhookRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  const repository = new WebhooksRepository(app.db);
  const outbox = new WebhookOutbox(app.database.wakeUps, app.webhookFormats, app.log);

  function checkUrl(url: string) {
    const problem = targetUrlProblem(url, config.webhooks.allowPrivateTargets);
    if (problem) throw validationFailed([{ field: 'url', message: problem }]);
  }

  /** The endpoint if the caller manages its organization; otherwise the outsider's 404. */
  async function managedEndpoint(principal: Principal, id: string) {
    const endpoint = await repository.find(id);
    if (!endpoint || !canManageOrganization(principal, endpoint.organizationId)) throw notFound('webhook_endpoint', id, 'Webhook endpoint');
    return endpoint;
  }

  /** The delivery if the caller manages its endpoint's organization; otherwise the outsider's 404. */
  async function managedDelivery(principal: Principal, id: string) {
    const found = await repository.findDelivery(id);
    if (!found || !canManageOrganization(principal, found.endpoint.organizationId)) throw notFound('webhook_delivery', id, 'Webhook delivery');
    return found;
  }

  // A replayed answer about an endpoint is shown only to whoever may still manage it.
  app.visibilityChecks.register('webhook_endpoint', managedEndpoint);
  app.visibilityChecks.register('webhook_delivery', managedDelivery);

  const audited = <T>(request: Parameters<typeof auditContextOf>[0], action: string, resourceId: string, work: (tx: Executor) => Promise<T>, httpStatus = 200) =>
    app.unitOfWork.change(auditContextOf(request), work, () => ({ action, httpStatus, resourceType: 'webhook_endpoint', resourceId }));

  // Webhook settings are security settings: reading them is audited too (SPEC §7).
  const recordRead = (request: Parameters<typeof auditContextOf>[0], action: string, resourceId: string) =>
    app.auditLog.record(auditContextOf(request), { action, outcome: 'success', httpStatus: 200, resourceType: 'webhook_endpoint', resourceId });

  app.post('/webhook-endpoints', {
    config: { policy, auditAction: 'webhook_endpoint.create', shownOnce },
    schema: {
      tags: ['webhooks'],
      operationId: 'createWebhookEndpoint',
      summary: 'Register a receiver; the signing secret is in this answer only',
      body: CreateWebhookEndpoint,
      response: { 201: WebhookEndpointWithSecret },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    const organizationId = request.body.organizationId ?? principal.organizationId;
    if (!organizationId) throw validationFailed([{ field: 'organizationId', message: 'network admins name the organization' }]);
    // Another organization is outside the caller's scope: the same 404 as a missing one, audited.
    if (!canManageOrganization(principal, organizationId)) throw notFound('organization', organizationId, 'Organization');
    checkUrl(request.body.url);
    const secret = newSigningSecret();
    const endpoint = await app.unitOfWork.change(
      auditContextOf(request),
      (tx) =>
        repository.create(
          {
            organizationId,
            url: request.body.url,
            eventTypes: request.body.eventTypes,
            format: request.body.format ?? 'standard',
            description: request.body.description ?? '',
            secret: sealSigningSecret(app.dataEncryption, secret),
            createdBy: principal.id,
          },
          tx,
        ),
      (created) => ({ action: 'webhook_endpoint.create', httpStatus: 201, resourceType: 'webhook_endpoint', resourceId: created.id }),
    );
    return reply
      .code(201)
      .header('location', `${apiPrefix}/webhook-endpoints/${endpoint.id}`)
      .send({ ...toWebhookEndpoint(endpoint), secret });
  });

  app.get('/webhook-endpoints', {
    config: { policy, auditAction: 'webhook_endpoint.list' },
    schema: {
      tags: ['webhooks'],
      operationId: 'listWebhookEndpoints',
      summary: "The organization's receivers (network admins: all, or one organization's)",
      querystring: WebhookEndpointListQuery,
      response: { 200: Page(WebhookEndpoint) },
    },
  }, async (request) => {
    const principal = request.principal!;
    const organizationId = principal.role === 'network_admin' ? request.query.organizationId : principal.organizationId!;
    const rows = await repository.list({ organizationId, after: decodeTimeCursor(request.query.cursor), limit: request.query.limit });
    await recordRead(request, 'webhook_endpoint.list', organizationId ?? 'all');
    return toPage(rows, request.query.limit, (row) => [row.cursorTime, row.endpoint.id], (row) => toWebhookEndpoint(row.endpoint));
  });

  app.get('/webhook-endpoints/:id', {
    config: { policy, auditAction: 'webhook_endpoint.read', auditResource: endpointResource },
    schema: { tags: ['webhooks'], operationId: 'getWebhookEndpoint', summary: 'Read a receiver and its health', params: IdParams, response: { 200: WebhookEndpoint } },
  }, async (request) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    await recordRead(request, 'webhook_endpoint.read', endpoint.id);
    return toWebhookEndpoint(endpoint);
  });

  app.patch('/webhook-endpoints/:id', {
    config: { policy, auditAction: 'webhook_endpoint.update', auditResource: endpointResource },
    schema: {
      tags: ['webhooks'],
      operationId: 'updateWebhookEndpoint',
      summary: 'Change the URL, event types, format or description, or re-enable a disabled receiver',
      params: IdParams,
      body: UpdateWebhookEndpoint,
      response: { 200: WebhookEndpoint },
    },
  }, async (request) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    if (request.body.url !== undefined) checkUrl(request.body.url);
    const { status, ...rest } = request.body;
    const changes = {
      ...rest,
      ...(status === 'active' ? { status, disabledReason: null, failingSince: null } : {}),
      ...(status === 'disabled' ? { status, disabledReason: 'disabled by its organization' } : {}),
    };
    const updated = await audited(request, 'webhook_endpoint.update', endpoint.id, (tx) => repository.update(endpoint.id, changes, tx));
    return toWebhookEndpoint(updated);
  });

  app.delete('/webhook-endpoints/:id', {
    config: { policy, auditAction: 'webhook_endpoint.delete', auditResource: endpointResource },
    schema: { tags: ['webhooks'], operationId: 'deleteWebhookEndpoint', summary: 'Remove a receiver; nothing more is sent to it', params: IdParams, response: { 204: Type.Null() } },
  }, async (request, reply) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    await audited(request, 'webhook_endpoint.delete', endpoint.id, (tx) => repository.update(endpoint.id, { deletedAt: new Date(), status: 'disabled' }, tx));
    return reply.code(204).send(null);
  });

  app.post('/webhook-endpoints/:id/rotate-secret', {
    config: { policy, auditAction: 'webhook_endpoint.rotate_secret', auditResource: endpointResource, shownOnce },
    schema: {
      tags: ['webhooks'],
      operationId: 'rotateWebhookSecret',
      summary: 'A new signing secret (shown once); the old one keeps signing alongside for 24 hours',
      params: IdParams,
      response: { 200: WebhookEndpointWithSecret },
    },
  }, async (request) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    const secret = newSigningSecret();
    // The old secret moves over sealed as it is stored.
    const updated = await audited(request, 'webhook_endpoint.rotate_secret', endpoint.id, (tx) =>
      repository.update(
        endpoint.id,
        { secret: sealSigningSecret(app.dataEncryption, secret), previousSecret: endpoint.secret, previousSecretExpiresAt: new Date(Date.now() + rotationOverlapMs) },
        tx,
      ),
    );
    return { ...toWebhookEndpoint(updated), secret };
  });

  app.post('/webhook-endpoints/:id/test', {
    config: { policy, auditAction: 'webhook_endpoint.test', auditResource: endpointResource },
    schema: {
      tags: ['webhooks'],
      operationId: 'pingWebhookEndpoint',
      summary: 'Queue a ping event to this receiver',
      params: IdParams,
      response: { 202: component('PingQueued', Type.Object({ eventId: Type.String({ format: 'uuid', description: 'The ping event, as its deliveries will carry it (webhook-id)' }) })) },
    },
  }, async (request, reply) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    if (endpoint.status !== 'active') {
      throw conflict('endpoint-disabled', `The endpoint is disabled (${endpoint.disabledReason ?? 'no reason given'}); re-enable it with PATCH {"status":"active"} first`);
    }
    const eventId = await audited(request, 'webhook_endpoint.test', endpoint.id, (tx) =>
      outbox.insert(
        {
          type: 'ping',
          referralId: null,
          data: { resource: 'webhook_endpoint', id: endpoint.id, organizations: [endpoint.organizationId], url: `${apiPrefix}/webhook-endpoints/${endpoint.id}` },
          organizations: [endpoint.organizationId],
          endpointId: endpoint.id,
        },
        tx,
      ),
    202);
    return reply.code(202).send({ eventId });
  });

  app.get('/webhook-endpoints/:id/deliveries', {
    config: { policy, auditAction: 'webhook_delivery.list', auditResource: endpointResource },
    schema: {
      tags: ['webhooks'],
      operationId: 'listWebhookDeliveries',
      summary: "A receiver's deliveries, newest first, each with its attempts",
      params: IdParams,
      querystring: DeliveryListQuery,
      response: { 200: Page(WebhookDelivery) },
    },
  }, async (request) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    const after = decodeCursor(request.query.cursor, ['position']) as [number] | undefined;
    const rows = await repository.deliveries({ endpointId: endpoint.id, status: request.query.status, afterSeq: after?.[0], limit: request.query.limit });
    await recordRead(request, 'webhook_delivery.list', endpoint.id);
    return toPage(rows, request.query.limit, (row) => [row.delivery.seq], toWebhookDelivery);
  });

  app.post('/webhook-deliveries/:id/resend', {
    config: { policy, auditAction: 'webhook_delivery.resend', auditResource: { type: 'webhook_delivery', param: 'id' } },
    schema: {
      tags: ['webhooks'],
      operationId: 'resendWebhookDelivery',
      summary: 'Send a delivery again (a new delivery of the same event)',
      params: IdParams,
      response: { 202: Queued },
    },
  }, async (request, reply) => {
    const found = await managedDelivery(request.principal!, request.params.id);
    const { eventId, endpointId, referralId } = found.delivery;
    const deliveryIds = await audited(request, 'webhook_delivery.resend', found.endpoint.id, (tx) => repository.requeue([{ eventId, endpointId, referralId }], tx), 202);
    return reply.code(202).send({ queued: deliveryIds.length, deliveryIds });
  });

  app.post('/webhook-endpoints/:id/recover', {
    config: { policy, auditAction: 'webhook_endpoint.recover', auditResource: endpointResource },
    schema: {
      tags: ['webhooks'],
      operationId: 'recoverWebhookDeliveries',
      summary: 'Send again every dead delivery of the receiver created in a time range',
      params: IdParams,
      body: RecoverDeliveries,
      response: { 202: Queued },
    },
  }, async (request, reply) => {
    const endpoint = await managedEndpoint(request.principal!, request.params.id);
    const dead = await repository.deadBetween({ endpointId: endpoint.id, from: new Date(request.body.from), to: request.body.to ? new Date(request.body.to) : undefined });
    const deliveryIds = await audited(request, 'webhook_endpoint.recover', endpoint.id, (tx) => repository.requeue(dead, tx), 202);
    return reply.code(202).send({ queued: deliveryIds.length, deliveryIds });
  });
};

export default webhookRoutes;
