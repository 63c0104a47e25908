// GET /fhir/R4/metadata: the CapabilityStatement, written from resources.ts, so it says what the
// routes do; public, as FHIR clients read it before they sign in.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { assertJsonAccepted, fhirJson, sendResource } from '../http.js';
import { fhirResource } from '../route-schemas.js';
import { capabilityStatement } from '../capability.js';

const metadataRoutes: FastifyPluginAsyncTypebox<{ base: string; tokenEndpoint: string }> = async (app, { base, tokenEndpoint }) => {
  const statement = capabilityStatement({ base, tokenEndpoint, date: new Date().toISOString() });
  app.get('/metadata', {
    config: { policy: 'public' },
    schema: {
      tags: ['fhir'],
      operationId: 'fhirCapabilities',
      summary: 'The CapabilityStatement: every FHIR resource, interaction and search parameter served, and how to sign in',
      querystring: Type.Object({ _format: Type.Optional(Type.String()), mode: Type.Optional(Type.String()) }),
      response: { 200: { description: 'A FHIR R4 CapabilityStatement', content: { [fhirJson]: { schema: fhirResource('CapabilityStatement') } } } },
    },
  }, async (request, reply) => {
    assertJsonAccepted(request);
    return sendResource(reply, statement);
  });
};

export default metadataRoutes;
