// The OpenAPI 3.1 document, generated from the route schemas, at /openapi.json and browsable at /docs.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { apiPrefix } from '../lib/api-prefix.js';
import { Problem } from '../lib/schemas.js';
import { oauth2SecurityScheme, supportedSmartScopes } from '../modules/auth/index.js';
import { OperationOutcomeSchema } from '../modules/fhir/route-schemas.js';
import { describeSuccesses, hoistComponents, hoistParameters, markOptionalBodies } from './openapi-components.js';
import { loadExamples, withExamples } from './openapi-examples.js';
import { declaredResponses, referToHeaderComponents, type Json } from './openapi-responses.js';

/** Parts of the document no route generates: the webhooks section and its parameters (the webhooks module's). */
export interface DocumentSection {
  webhooks: Record<string, unknown>;
  parameters: Record<string, unknown>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds what a module delivers rather than serves (webhooks) to the OpenAPI document. */
    documentWebhooks(section: DocumentSection): void;
  }
}

export default fp(
  async (app) => {
    const sections: DocumentSection[] = [];
    const examples = loadExamples();
    app.decorate('documentWebhooks', (section: DocumentSection) => void sections.push(section));
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Massage referral network API',
          version: '1.0.0',
          // Used by partners under their agreement with us, not open source: an SPDX reference of our own.
          license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
          description:
            'Physicians prescribe medical massage; licensed massage therapists accept, treat and report progress. ' +
            'Every error is application/problem+json (RFC 9457); under /fhir/R4 an OperationOutcome. Every route but the few marked public needs an access ' +
            'token from POST /v1/auth/token, sent as a bearer token; each operation says which roles and API-client scopes may call it (x-access).',
        },
        // Relative: the service that served this document, wherever it runs (a client generated from the file is given its base URL).
        servers: [{ url: '/', description: 'The service that served this document (npm start: http://localhost:3000)' }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            oauth2: oauth2SecurityScheme(`${apiPrefix}/auth/token`, supportedSmartScopes()) as never,
          },
          schemas: { Problem: { ...Problem, $id: undefined } as never, OperationOutcome: OperationOutcomeSchema as never },
        },
        tags: [
          { name: 'auth', description: 'Tokens and the current caller' },
          { name: 'network', description: 'Organizations, users, API clients and the therapist directory' },
          { name: 'patients', description: 'Patients of physician offices' },
          { name: 'referrals', description: 'Massage prescriptions: lifecycle, history and the sync feed' },
          { name: 'visit notes', description: 'Progress reports (SOAP visit notes) and their addenda' },
          { name: 'reports', description: 'Reports to the prescriber: evaluation (plan of care), progress and discharge, signed by the prescriber; JSON or PDF' },
          { name: 'renewals', description: 'Recertification: the therapist asks for more visits or time, the prescriber approves or denies' },
          { name: 'messages', description: 'One thread per referral between office and therapist side' },
          { name: 'adverse events', description: 'Reactions the therapist side reports, acknowledged by the office; a severe one may hold treatment until the prescriber resumes' },
          { name: 'appointments', description: 'Visits booked by the therapist side and what became of them (attended, no-show, cancelled)' },
          { name: 'documents', description: 'Files shared on a referral by its care team (PDF, PNG, JPEG, TIFF), told by their bytes, retracted by hiding' },
          { name: 'billing', description: "A referral's visits as the fields of a CMS-1500 claim (JSON or CSV), for the office and the accepting practice" },
          { name: 'audit', description: 'The tamper-evident audit trail' },
          { name: 'events', description: 'The events feed: the webhook events, followed with a cursor and a long poll, for apps that cannot host an endpoint' },
          { name: 'webhooks', description: 'Signed event delivery to partner EHRs: endpoints, deliveries, attempts' },
          { name: 'webhook events', description: 'What a receiver gets: one POST per event, signed by Standard Webhooks, and how its answer is taken' },
          { name: 'fhir', description: 'The FHIR R4 façade (application/fhir+json) over the same data and rules; GET /fhir/R4/metadata is its CapabilityStatement' },
          { name: 'operations', description: 'Health and documentation' },
        ],
      },
      // Every route answers errors and carries headers the same way; declaring them here keeps each route's schema about its own shapes.
      // A route without a security requirement is public, and says so (security: []) rather than leaving it unsaid.
      transform: ({ schema, url, route }) => ({
        schema: { ...schema, security: (schema as Json).security ?? [], response: declaredResponses(route as never, schema as Json) },
        url,
      }),
      transformObject: (document) => {
        const withSections = withWebhooks((document as { openapiObject: Json }).openapiObject, sections);
        const named = hoistParameters(hoistComponents(referToHeaderComponents(withSections)));
        return withExamples(describeSuccesses(markOptionalBodies(named)), examples) as never;
      },
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { showExtensions: true } });
    app.get('/openapi.json', { config: { policy: 'public' }, schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'openapi' },
);

/** The document with the modules' webhooks and the parameters they refer to. */
function withWebhooks(document: Json, sections: DocumentSection[]): Json {
  if (sections.length === 0) return document;
  const webhooks = Object.assign({}, ...sections.map((section) => section.webhooks));
  const parameters = Object.assign({}, ...sections.map((section) => section.parameters));
  return { ...document, webhooks, components: { ...document.components, parameters: { ...document.components?.parameters, ...parameters } } };
}
