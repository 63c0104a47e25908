// Which organizations a caller may see: their own, or any for network admins; others answer 404.
import { ForbiddenError, notFound } from '../../lib/errors.js';
import { canManageOrganization, type Principal } from '../auth/policy.js';
import type { OrganizationsRepository } from './organizations-repository.js';
import type { Organization } from './schemas.js';

export function seesOrganization(principal: Principal, organizationId: string): boolean {
  return principal.role === 'network_admin' || principal.organizationId === organizationId;
}

/** The organization if the caller may see it; a foreign or missing one is the same 404, and audited as denied. */
export async function visibleOrganization(
  organizationsRepository: OrganizationsRepository,
  principal: Principal,
  organizationId: string,
): Promise<Organization> {
  const organization = seesOrganization(principal, organizationId)
    ? await organizationsRepository.findById({ id: organizationId })
    : undefined;
  if (!organization) throw notFound('organization', organizationId, 'Organization');
  return organization;
}

/** The organization if the caller administers it: 404 when it is foreign, 403 for a member without admin rights. */
export async function managedOrganization(
  organizationsRepository: OrganizationsRepository,
  principal: Principal,
  organizationId: string,
): Promise<Organization> {
  const organization = await visibleOrganization(organizationsRepository, principal, organizationId);
  if (!canManageOrganization(principal, organizationId)) {
    throw new ForbiddenError("Only the organization's admins and network admins may do this");
  }
  return organization;
}
