// Who may call a route, as the OpenAPI document says it: the security requirement (bearer, or an
// OAuth 2.0 token with the API-client scope the route needs), an x-access extension a generator or
// gateway can read, and one sentence in the description for people reading /docs. Written from the
// route's policy, the same object the authentication hook enforces, so the two cannot disagree.
import type { UserRole } from '../../lib/vocabulary.js';
import { clientActingRole, type ApiClientScope, type RoutePolicy } from './policy.js';

/** What API clients the route admits: none, any client, or clients holding a scope (acting as which staff role). */
export type DocumentedClients = 'none' | { scope: ApiClientScope | 'any'; actingAs: readonly UserRole[] | 'any role' };
export interface DocumentedAccess {
  roles: readonly UserRole[];
  apiClients: DocumentedClients;
}

const roleWords: Record<UserRole, string> = {
  physician: 'physicians',
  office_staff: 'office staff',
  office_admin: 'office admins',
  therapist: 'therapists',
  practice_admin: 'practice admins',
  network_admin: 'network admins',
};

/** The roles an API client acts as: its organization's kind decides (policy.ts clientActingRole). */
const clientRoles = [clientActingRole('physician_office'), clientActingRole('therapy_practice')];

/** What each API-client scope lets a partner's client do, for the oauth2 scheme of the document. */
export const apiClientScopeDescriptions: Record<ApiClientScope, string> = {
  'directory:read': 'Read the therapist directory and organizations',
  'patients:read': "Read the organization's patients",
  'patients:write': 'Register and update patients',
  'referrals:read': 'Read referrals, their threads, visit notes, reports and documents, and follow the events feed',
  'referrals:write': 'Create and move referrals, post messages, visit notes and documents',
  'referrals:sign': "Create referrals signed: the EHR vouches that its prescriber signed in the EHR (SPEC §14.1)",
};

export function documentedAccessOf(policy: Exclude<RoutePolicy, 'public'>): DocumentedAccess {
  const actingAs = policy.clientsByScopeAlone ? 'any role' : clientRoles.filter((role) => policy.roles.includes(role));
  const apiClients: DocumentedClients = policy.clientScope === undefined || actingAs.length === 0 ? 'none' : { scope: policy.clientScope, actingAs };
  return { roles: policy.roles, apiClients };
}

function sentenceOf({ roles, apiClients }: DocumentedAccess): string {
  const people = roles.map((role) => roleWords[role]).join(', ');
  if (apiClients === 'none') return `Callers: ${people}; not API clients.`;
  const scope = apiClients.scope === 'any' ? 'any API client' : `API clients with ${apiClients.scope}`;
  const kinds = apiClients.actingAs === 'any role' ? [] : apiClients.actingAs.map((role) => (role === 'office_staff' ? 'physician office' : 'therapy practice'));
  const acting = kinds.length === 1 ? ` (of a ${kinds[0]})` : '';
  return `Callers: ${people}; ${scope}${acting}.`;
}

/** The schema keys that document a route's access: security, x-access and the sentence appended to its description. */
export function accessSchemaOf(policy: RoutePolicy, description: string | undefined): Record<string, unknown> {
  if (policy === 'public') return { security: [], description: [description, 'Public: no token needed.'].filter(Boolean).join(' ') };
  const access = documentedAccessOf(policy);
  const clientScopes = access.apiClients !== 'none' && access.apiClients.scope !== 'any' ? [access.apiClients.scope] : [];
  return {
    security: [{ bearerAuth: [] }, { oauth2: clientScopes }],
    'x-access': access,
    description: [description, sentenceOf(access)].filter(Boolean).join(' '),
  };
}

/**
 * The OAuth 2.0 scheme of the document: people sign in with the password flow (their tokens carry
 * roles, not scopes), partners' API clients with client credentials and the scopes they were
 * granted; SMART Backend Services clients use the same flow with a signed assertion for a secret.
 */
export function oauth2SecurityScheme(tokenUrl: string, smartScopes: readonly string[]) {
  return {
    type: 'oauth2',
    description:
      'Access tokens last 15 minutes (5 for SMART Backend Services clients); refresh tokens rotate on every use, and reusing an old one ' +
      'revokes the whole session. People use the password flow: their tokens carry their role, and each operation says which roles it takes ' +
      '(x-access). API clients use client credentials with their secret, or, for SMART Backend Services, a private_key_jwt client assertion ' +
      '(RFC 7523) signed by a key they registered, and may then ask for system/ scopes, mapped onto the scopes they hold: such a token is for ' +
      '/fhir/R4 only.',
    flows: {
      password: { tokenUrl, refreshUrl: tokenUrl, scopes: {} },
      clientCredentials: {
        tokenUrl,
        refreshUrl: tokenUrl,
        scopes: {
          ...apiClientScopeDescriptions,
          ...Object.fromEntries(smartScopes.map((scope) => [scope, `SMART Backend Services, /fhir/R4 only: ${scope.slice('system/'.length)}`])),
        },
      },
    },
  };
}
