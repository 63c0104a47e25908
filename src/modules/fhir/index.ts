// The FHIR module: a FHIR R4 façade (SPEC §16) over the other modules' data and rules, for partner
// EHRs and integration engines. It owns no tables: it reads through the other modules' exports, in
// their terms, and answers in FHIR's (application/fhir+json, OperationOutcome, searchset Bundles).
import fp from 'fastify-plugin';
import { apiPrefix, fhirPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { outcomeErrorHandler, outcomeNotFoundHandler } from './operation-outcome.js';
import { loadInboundDefinitions } from './inbound/validator.js';
import metadataRoutes from './routes/metadata.js';
import smartConfigurationRoutes from './routes/smart-configuration.js';
import { assertSmartScopes, documentSmartScope } from './scope-check.js';
import peopleRoutes from './routes/people.js';
import referralRoutes from './routes/referral-resources.js';
import referralWriteRoutes from './routes/referral-writes.js';
import threadRoutes from './routes/thread-resources.js';
import auditEventRoutes from './routes/audit-events.js';
import { safeJsonParser } from '../../plugins/input-safety.js';
import { fhirJson } from './http.js';
import { webhookBundleRenderer } from './webhook-bundle.js';

export default fp(
  async (app, options: ModuleOptions) => {
    // Every role renders: events are written by API processes and the worker alike.
    app.webhookFormats.register('fhir', webhookBundleRenderer({ publicBaseUrl: options.config.publicBaseUrl, fhirBase: `${options.config.publicBaseUrl}${fhirPrefix}` }));
    if (!servesRoutes(options.config)) return;
    // About 50 ms, once, at start rather than in the first partner's request.
    loadInboundDefinitions();
    const base = `${options.config.publicBaseUrl}${fhirPrefix}`;
    const tokenEndpoint = `${options.config.publicBaseUrl}${apiPrefix}/auth/token`;
    await app.register(
      async (fhir) => {
        fhir.setErrorHandler(outcomeErrorHandler);
        fhir.setNotFoundHandler(outcomeNotFoundHandler);
        fhir.addContentTypeParser(fhirJson, { parseAs: 'string' }, safeJsonParser(app));
        fhir.addHook('preHandler', assertSmartScopes);
        fhir.addHook('onRoute', documentSmartScope);
        await fhir.register(metadataRoutes, { base, tokenEndpoint });
        await fhir.register(smartConfigurationRoutes, { publicBaseUrl: options.config.publicBaseUrl });
        await fhir.register(referralRoutes, { base });
        await fhir.register(referralWriteRoutes, { base });
        await fhir.register(peopleRoutes, { base });
        await fhir.register(threadRoutes, { base });
        await fhir.register(auditEventRoutes, { base });
      },
      { prefix: fhirPrefix },
    );
  },
  { name: 'fhir', dependencies: ['auth', 'audit-log', 'referrals', 'patients', 'network', 'webhooks', 'messages', 'progress-reports', 'clinical-reports', 'documents', 'audit'] },
);
