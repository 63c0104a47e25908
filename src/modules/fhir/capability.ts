// The CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html): what this server does,
// from the same definitions the routes use.
import { resourceDefinitions } from './resources.js';
import { commonParameters } from './search/params.js';

const oauthUris = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

export function capabilityStatement({ base, tokenEndpoint, date }: { base: string; tokenEndpoint: string; date: string }) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    publisher: 'Massage referral network',
    kind: 'instance',
    software: { name: 'massage-referral-network' },
    implementation: { description: 'FHIR R4 façade of the massage referral network API', url: base },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        documentation: 'Same access rules, 404s and audit as /v1. Refusals are OperationOutcomes. Search pages follow the next link.',
        security: {
          extension: [{ url: oauthUris, extension: [{ url: 'token', valueUri: tokenEndpoint }] }],
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          description: 'OAuth 2.0 bearer tokens from the token endpoint: SMART Backend Services (client_credentials with a private_key_jwt assertion) for EHRs, or the /v1 sign-in.',
        },
        resource: resourceDefinitions.map((definition) => ({
          type: definition.type,
          profile: definition.profile,
          documentation: definition.documentation,
          interaction: definition.interactions.map((code) => ({ code })),
          versioning: 'versioned',
          readHistory: false,
          updateCreate: false,
          ...(definition.searchInclude && { searchInclude: definition.searchInclude }),
          ...(definition.searchRevInclude && { searchRevInclude: definition.searchRevInclude }),
          ...(definition.interactions.includes('search-type') && {
            searchParam: [...commonParameters.filter((parameter) => parameter.name !== '_count'), ...definition.searchParams].map((parameter) => ({
              name: parameter.name,
              type: parameter.type,
              documentation: parameter.description,
            })),
          }),
        })),
      },
    ],
  };
}
