// The SMART configuration document (/.well-known/smart-configuration, SMART App Launch 2.x §
// "Conformance"): what a backend-services client needs to sign in here, and nothing we do not do.
// No authorization endpoint: there is no user-facing launch, only client_credentials.
import { apiPrefix } from '../../lib/api-prefix.js';
import { assertionAlgorithms } from './schemas.js';
import { supportedSmartScopes } from './smart-scopes.js';

/** Where client assertions are addressed (their aud), and where this document sends clients. */
export function tokenEndpointUrl(publicBaseUrl: string): string {
  return `${publicBaseUrl}${apiPrefix}/auth/token`;
}

export function smartConfiguration(publicBaseUrl: string): Record<string, unknown> {
  return {
    token_endpoint: tokenEndpointUrl(publicBaseUrl),
    // SMART scopes are granted to private_key_jwt clients only; a client with a secret signs in
    // with the scopes of this API (client_secret_basic or _post), so that is not a SMART method here.
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...assertionAlgorithms],
    grant_types_supported: ['client_credentials'],
    scopes_supported: supportedSmartScopes(),
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}
