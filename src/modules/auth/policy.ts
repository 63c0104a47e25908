// Who may call a route: every route declares a policy, and the authentication hook enforces it.
import { staffRolesOf, userRoles, type OrganizationKind, type PrincipalKind, type UserRole } from '../../lib/vocabulary.js';

export type { OrganizationKind };

export const apiClientScopes = [
  'directory:read',
  'patients:read',
  'patients:write',
  'referrals:read',
  'referrals:write',
  // An EHR that vouches its prescribers sign in the EHR: its referrals are created signed (SPEC §14.1).
  'referrals:sign',
] as const;
export type ApiClientScope = (typeof apiClientScopes)[number];

export type RoutePolicy =
  | 'public'
  | {
      roles: readonly UserRole[];
      /** The scope an API client needs ('any': every client); a route without one is closed to API clients. */
      clientScope?: ApiClientScope | 'any';
      /**
       * API clients are admitted by their scope alone, whatever staff role they act as: for routes
       * whose roles name a person (the prescriber signs) and for which an EHR vouches with a scope.
       */
      clientsByScopeAlone?: true;
    };

export interface Principal {
  kind: PrincipalKind;
  id: string;
  organizationId: string | null;
  organizationKind: OrganizationKind | null;
  /** For an API client, the staff role of its organization that it acts as. */
  role: UserRole;
  scopes: readonly string[];
  /**
   * The SMART scopes the token was granted (system/Task.rs, …), which narrow FHIR access by resource
   * type and interaction (smart-scopes.ts fhirScopeAllows). Absent for users and for clients that
   * asked for internal scopes: their internal scopes alone decide.
   */
  fhirScopes?: readonly string[];
}

export const everyone: readonly UserRole[] = userRoles;
export const officeRoles: readonly UserRole[] = staffRolesOf.physician_office;
export const practiceRoles: readonly UserRole[] = staffRolesOf.therapy_practice;
export const organizationAdmins: readonly UserRole[] = ['office_admin', 'practice_admin', 'network_admin'];

/** A partner API client acts as its organization's staff, within its scopes. */
export function clientActingRole(kind: OrganizationKind): UserRole {
  return kind === 'physician_office' ? 'office_staff' : 'practice_admin';
}

export function isAllowed(policy: Exclude<RoutePolicy, 'public'>, principal: Principal): boolean {
  if (!policy.roles.includes(principal.role) && !(principal.kind === 'api_client' && policy.clientsByScopeAlone)) return false;
  if (principal.kind === 'api_client') {
    return policy.clientScope === 'any' || (policy.clientScope !== undefined && principal.scopes.includes(policy.clientScope));
  }
  return true;
}

/** Organization admins manage their own organization; network admins manage all. */
export function canManageOrganization(principal: Principal, organizationId: string): boolean {
  if (principal.kind !== 'user') return false;
  if (principal.role === 'network_admin') return true;
  return (
    (principal.role === 'office_admin' || principal.role === 'practice_admin') &&
    principal.organizationId === organizationId
  );
}
