// Builds the application from its parts: external plugins, our services, then routes.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.js';
import { createValidatorCompiler } from './lib/validation.js';
import databasePlugin from './plugins/database.js';
import dataEncryptionPlugin from './plugins/data-encryption.js';
import availabilityPlugin from './plugins/availability.js';
import inputSafetyPlugin from './plugins/input-safety.js';
import openapiPlugin from './plugins/openapi.js';
import problemDetailsPlugin, { clientErrorHandler, frameworkErrorHandler } from './plugins/problem-details.js';
import responseHeadersPlugin from './plugins/response-headers.js';
import metricsPlugin from './plugins/metrics.js';
import { startTracing } from './plugins/tracing.js';
import securityPlugin from './plugins/security.js';
import unitOfWorkPlugin from './plugins/unit-of-work.js';
import auditLogPlugin from './modules/audit/audit-log-plugin.js';
import refusalAuditPlugin from './modules/audit/refusal-audit.js';
import type { Resolver } from './lib/outbound/target-guard.js';
import auditModule from './modules/audit/index.js';
import authModule from './modules/auth/index.js';
import healthModule from './modules/health/index.js';
import idempotencyModule from './modules/idempotency/index.js';
import messagesModule from './modules/messages/index.js';
import documentsModule from './modules/documents/index.js';
import appointmentsModule from './modules/appointments/index.js';
import adverseEventsModule from './modules/adverse-events/index.js';
import billingModule from './modules/billing/index.js';
import networkModule from './modules/network/index.js';
import patientsModule from './modules/patients/index.js';
import progressReportsModule from './modules/progress-reports/index.js';
import clinicalReportsModule from './modules/clinical-reports/index.js';
import referralsModule from './modules/referrals/index.js';
import webhooksModule from './modules/webhooks/index.js';
import fhirModule from './modules/fhir/index.js';
import { bootstrap } from './seed/bootstrap.js';

export interface BuildAppOptions {
  config: Config;
  logger?: FastifyBaseLogger;
  /** Tests: an already-migrated embedded data folder to start from, which saves initdb. */
  pgliteTemplate?: Blob | undefined;
  /** Tests: answers the webhook worker's DNS lookups, so no test depends on real DNS. */
  webhookResolver?: Resolver | undefined;
  /** Tests: answers the DNS lookups of API clients' JWKS URLs. */
  jwksResolver?: Resolver | undefined;
}

export const requestIdHeader = 'x-request-id';
const acceptableRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp({ config, logger = pino({ level: 'silent' }), pgliteTemplate, webhookResolver, jwksResolver }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    requestIdHeader: false,
    // Keep a caller's correlation id when it is sane; otherwise mint one.
    genReqId: (request) => {
      const incoming = request.headers[requestIdHeader];
      return typeof incoming === 'string' && acceptableRequestId.test(incoming) ? incoming : crypto.randomUUID();
    },
    bodyLimit: 1024 * 1024,
    // A client that never finishes sending its request (slowloris) is cut off. The longest a
    // request may rightly take is a document upload on a slow link, read only as fast as the
    // database stores it: DOCUMENT_UPLOAD_SECONDS (120 s), which the upload route also enforces
    // itself, answering 408 upload-too-slow.
    requestTimeout: config.documents.uploadSeconds * 1000,
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
    // Creating an embedded database runs initdb in WebAssembly, which is slow on a busy machine.
    pluginTimeout: 60_000,
    trustProxy: false,
    // The availability plugin answers requests that arrive while closing, as problem+json.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(createValidatorCompiler());
  app.addHook('onRequest', async (request, reply) => {
    reply.header(requestIdHeader, request.id);
  });

  // Infrastructure: the database, the audit log every change writes to, the unit of work, and
  // the HTTP machinery every route shares.
  const tracing = await startTracing(config.tracing);
  if (tracing) {
    await app.register(tracing.plugin);
    app.addHook('onClose', tracing.shutdown);
  }
  await app.register(databasePlugin, { config, pgliteTemplate, tracer: tracing?.tracer });
  await app.register(metricsPlugin, { config });
  await app.register(dataEncryptionPlugin, { config });
  await app.register(auditLogPlugin, { config });
  await app.register(unitOfWorkPlugin);
  await app.register(problemDetailsPlugin);
  // Refusals are audited by a hook on every route, so it is added before any module's routes.
  await app.register(refusalAuditPlugin);
  await app.register(responseHeadersPlugin);
  await app.register(availabilityPlugin, { config });
  await app.register(securityPlugin, { config });
  await app.register(inputSafetyPlugin);
  await app.register(openapiPlugin);

  // Feature modules, one plugin each (docs/architecture.md). Authentication and idempotency come
  // first: their hooks must be in place before any module adds a route.
  await app.register(healthModule);
  await app.register(authModule, { config, jwksResolver });
  await app.register(idempotencyModule, { config });
  await app.register(networkModule, { config });
  await app.register(patientsModule, { config });
  await app.register(referralsModule, { config });
  await app.register(progressReportsModule, { config });
  await app.register(clinicalReportsModule, { config });
  await app.register(messagesModule, { config });
  await app.register(documentsModule, { config });
  await app.register(appointmentsModule, { config });
  await app.register(adverseEventsModule, { config });
  await app.register(billingModule, { config });
  await app.register(auditModule, { config });
  await app.register(webhooksModule, { config, resolver: webhookResolver });
  await app.register(fhirModule, { config });
  // The last preClose hook: once every module has stopped its work, and connections accepted just
  // before the service stopped listening have sent their request, Fastify closes what is idle.
  app.addHook('preClose', () => app.acceptedConnectionsSettled());

  await app.ready();
  try {
    await bootstrap(app, config);
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}
