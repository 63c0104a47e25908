// Who may still see a record, by resource type, as the modules that own the records define it. A
// replay of a kept response re-checks them, so access lost since the first answer (a referral
// rerouted away, an endpoint deleted) is not handed back by repeating an Idempotency-Key.
import type { Principal } from '../auth/policy.js';

/** Resolves when the caller may see the record; otherwise throws the 404 a fresh request would get. */
export type VisibilityCheck = (principal: Principal, resourceId: string) => Promise<unknown>;

export interface ResourceRef {
  resourceType?: string | null | undefined;
  resourceId?: string | null | undefined;
}

export class VisibilityChecks {
  private readonly checks = new Map<string, VisibilityCheck>();

  register(resourceType: string, check: VisibilityCheck): void {
    if (this.checks.has(resourceType)) throw new Error(`a visibility check for ${resourceType} is registered twice`);
    this.checks.set(resourceType, check);
  }

  /**
   * Runs the check of each record whose type has one. Records of other types belong to one that
   * has (a message or a progress report to its referral, which the route is aimed at), or are no
   * one's to lose (a user account the caller created).
   */
  async assertVisible(principal: Principal, records: readonly ResourceRef[]): Promise<void> {
    const checked = new Set<string>();
    for (const { resourceType, resourceId } of records) {
      if (!resourceType || !resourceId) continue;
      const check = this.checks.get(resourceType);
      const key = `${resourceType}\u0000${resourceId}`;
      if (!check || checked.has(key)) continue;
      checked.add(key);
      await check(principal, resourceId);
    }
  }
}
