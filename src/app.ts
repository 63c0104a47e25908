// Builds the application from its parts: external plugins, our services, then routes.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.js';
import { clientErrorHandler, frameworkErrorHandler } from './lib/framework-errors.js';
import { createValidatorCompiler } from './lib/validation.js';
import auditLogPlugin from './plugins/audit-log.js';
import authenticationPlugin from './plugins/authentication.js';
import availabilityPlugin from './plugins/availability.js';
import databasePlugin from './plugins/database.js';
import dataEncryptionPlugin from './plugins/data-encryption.js';
import idempotencyPlugin from './plugins/idempotency.js';
import inputSafetyPlugin from './plugins/input-safety.js';
import openapiPlugin from './plugins/openapi.js';
import problemDetailsPlugin from './plugins/problem-details.js';
import referralWorkflowPlugin from './plugins/referral-workflow.js';
import responseHeadersPlugin from './plugins/response-headers.js';
import webhookWorkerPlugin from './plugins/webhook-worker.js';
import type { Resolver } from './modules/webhooks/target-guard.js';
import securityPlugin from './plugins/security.js';
import { configurePasswordHashing } from './modules/auth/passwords.js';
import authRoutes from './modules/auth/routes.js';
import healthRoutes from './modules/health/routes.js';
import apiClientRoutes from './modules/network/api-clients-routes.js';
import directoryRoutes from './modules/network/directory-routes.js';
import organizationRoutes from './modules/network/organizations-routes.js';
import userRoutes from './modules/network/users-routes.js';
import patientRoutes from './modules/patients/routes.js';
import referralRoutes from './modules/referrals/routes.js';
import progressReportRoutes from './modules/progress-reports/routes.js';
import messageRoutes from './modules/messages/routes.js';
import auditRoutes from './modules/audit/routes.js';
import webhookRoutes from './modules/webhooks/routes.js';
import { bootstrap } from './seed/bootstrap.js';

export interface BuildAppOptions {
  config: Config;
  logger?: FastifyBaseLogger;
  /** Tests: an already-migrated embedded data folder to start from, which saves initdb. */
  pgliteTemplate?: Blob | undefined;
  /** Tests: answers the webhook worker's DNS lookups, so no test depends on real DNS. */
  webhookResolver?: Resolver | undefined;
}

export const requestIdHeader = 'x-request-id';
const acceptableRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp({ config, logger = pino({ level: 'silent' }), pgliteTemplate, webhookResolver }: BuildAppOptions): Promise<FastifyInstance> {
  configurePasswordHashing(config.login.passwordHashCostLog2);
  const app = Fastify({
    loggerInstance: logger,
    requestIdHeader: false,
    // Keep a caller's correlation id when it is sane; otherwise mint one.
    genReqId: (request) => {
      const incoming = request.headers[requestIdHeader];
      return typeof incoming === 'string' && acceptableRequestId.test(incoming) ? incoming : crypto.randomUUID();
    },
    bodyLimit: 1024 * 1024,
    // A client that never finishes sending its request (slowloris) is cut off.
    requestTimeout: 30_000,
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

  // External plugins and infrastructure
  await app.register(databasePlugin, { config, pgliteTemplate });
  await app.register(dataEncryptionPlugin, { config });
  await app.register(auditLogPlugin, { config });
  await app.register(problemDetailsPlugin);
  await app.register(responseHeadersPlugin);
  await app.register(availabilityPlugin, { config });
  await app.register(securityPlugin, { config });
  await app.register(inputSafetyPlugin);
  await app.register(authenticationPlugin, { config });
  await app.register(idempotencyPlugin, { config });
  await app.register(openapiPlugin);

  // Our services
  await app.register(referralWorkflowPlugin, { config });
  await app.register(webhookWorkerPlugin, { config, resolver: webhookResolver });

  // Routes
  await app.register(healthRoutes);
  if (config.role !== 'worker') {
    await app.register(authRoutes, { config });
    await app.register(organizationRoutes);
    await app.register(userRoutes);
    await app.register(apiClientRoutes);
    await app.register(directoryRoutes);
    await app.register(patientRoutes);
    await app.register(referralRoutes);
    await app.register(progressReportRoutes);
    await app.register(messageRoutes);
    await app.register(auditRoutes);
    await app.register(webhookRoutes, { config });
  }

  await app.ready();
  try {
    await bootstrap(app, config);
  } catch (error) {
    await app.close();
    throw error;
  }
  return app as unknown as FastifyInstance;
}
