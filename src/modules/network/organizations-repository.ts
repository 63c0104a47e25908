// SQL for organizations.
import { and, asc, eq, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { organizations } from '../../db/schema.js';
import type { CreateOrganization, Organization } from './schemas.js';

type OrganizationRow = typeof organizations.$inferSelect;

export function toOrganization(row: OrganizationRow): Organization {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    npi: row.npi,
    address: row.address,
    location: { lat: row.latitude, lng: row.longitude },
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export class OrganizationsRepository {
  constructor(private readonly db: Executor) {}

  async create(input: CreateOrganization, executor: Executor = this.db): Promise<Organization> {
    const [row] = await executor
      .insert(organizations)
      .values({
        kind: input.kind,
        name: input.name,
        npi: input.npi ?? null,
        address: input.address,
        latitude: input.location.lat,
        longitude: input.location.lng,
      })
      .returning();
    return toOrganization(row!);
  }

  async findById({ id }: { id: string }, executor: Executor = this.db): Promise<Organization | undefined> {
    const [row] = await executor.select().from(organizations).where(eq(organizations.id, id));
    return row && toOrganization(row);
  }

  async npiTaken({ npi }: { npi: string }, executor: Executor = this.db): Promise<boolean> {
    const [row] = await executor.select({ id: organizations.id }).from(organizations).where(eq(organizations.npi, npi));
    return row !== undefined;
  }

  /** Oldest first; `onlyId` restricts the list to the caller's own organization. */
  async list({ kind, onlyId, after, limit }: { kind?: Organization['kind'] | undefined; onlyId?: string | undefined; after?: readonly [string, string] | undefined; limit: number }) {
    const conditions: (SQL | undefined)[] = [
      kind ? eq(organizations.kind, kind) : undefined,
      onlyId ? eq(organizations.id, onlyId) : undefined,
      after ? afterKey(organizations.createdAt, organizations.id, after) : undefined,
    ];
    return this.db
      .select({ organization: organizations, cursorTime: epochMicros(organizations.createdAt) })
      .from(organizations)
      .where(and(...conditions))
      .orderBy(asc(organizations.createdAt), asc(organizations.id))
      .limit(limit + 1);
  }
}
