// GET /fhir/R4/.well-known/smart-configuration: how a SMART Backend Services client signs in here
// (SMART App Launch 2.x), relative to the FHIR base as SMART clients look for it; public.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { smartConfiguration } from '../../auth/index.js';
import { component } from '../../../lib/components.js';

const smartConfigurationRoutes: FastifyPluginAsyncTypebox<{ publicBaseUrl: string }> = async (app, { publicBaseUrl }) => {
  const document = smartConfiguration(publicBaseUrl);
  app.get('/.well-known/smart-configuration', {
    config: { policy: 'public' },
    schema: {
      tags: ['fhir'],
      operationId: 'smartConfiguration',
      summary: 'The SMART configuration: token endpoint, client authentication (private_key_jwt, RS384/ES384), grant and scopes',
      response: {
        200: component('SmartConfiguration', {
          type: 'object',
          properties: {
            token_endpoint: { type: 'string' },
            token_endpoint_auth_methods_supported: { type: 'array', items: { type: 'string' } },
            token_endpoint_auth_signing_alg_values_supported: { type: 'array', items: { type: 'string' } },
            grant_types_supported: { type: 'array', items: { type: 'string' } },
            scopes_supported: { type: 'array', items: { type: 'string' } },
            capabilities: { type: 'array', items: { type: 'string' } },
          },
        }),
      },
    },
  }, async () => document);
};

export default smartConfigurationRoutes;
