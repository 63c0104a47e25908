// SQL for partner API clients.
import { and, asc, eq, isNull, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { apiClients } from '../../db/schema.js';
import type { JwkSet } from '../auth/schemas.js';
import type { ApiClient } from './schemas.js';

type ApiClientRow = typeof apiClients.$inferSelect;

/** Where a private_key_jwt client's keys come from: one of the two, the other null. */
export type ClientKeys = { jwks: JwkSet; jwksUrl: null } | { jwks: null; jwksUrl: string };

/** How a client proves itself: a secret (kept hashed), or its keys. */
export type ClientCredentials = ({ authMethod: 'client_secret'; secretHash: string } & { jwks?: null; jwksUrl?: null }) | ({ authMethod: 'private_key_jwt'; secretHash?: null } & ClientKeys);

export function toApiClient(row: ApiClientRow): ApiClient {
  return {
    id: row.id,
    organizationId: row.organizationId,
    name: row.name,
    clientId: row.clientId,
    scopes: row.scopes as ApiClient['scopes'],
    authMethod: row.authMethod,
    jwksUrl: row.jwksUrl,
    keyIds: row.jwks ? row.jwks.keys.map((key) => key.kid) : null,
    active: row.active && row.revokedAt === null,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

export class ApiClientsRepository {
  constructor(private readonly db: Executor) {}

  async create(
    input: { organizationId: string; name: string; clientId: string; scopes: string[]; createdBy: string | null } & ClientCredentials,
    executor: Executor = this.db,
  ): Promise<ApiClient> {
    const [row] = await executor.insert(apiClients).values(input).returning();
    return toApiClient(row!);
  }

  /** Replaces the keys of a private_key_jwt client (a rotation); undefined if it is not one. */
  async replaceKeys({ apiClientId, jwks, jwksUrl }: { apiClientId: string } & ClientKeys, executor: Executor = this.db): Promise<ApiClient | undefined> {
    const [row] = await executor
      .update(apiClients)
      .set({ jwks, jwksUrl })
      .where(and(eq(apiClients.id, apiClientId), eq(apiClients.authMethod, 'private_key_jwt')))
      .returning();
    return row && toApiClient(row);
  }

  async findInOrganization({ organizationId, apiClientId }: { organizationId: string; apiClientId: string }) {
    const [row] = await this.db
      .select()
      .from(apiClients)
      .where(and(eq(apiClients.id, apiClientId), eq(apiClients.organizationId, organizationId)));
    return row && toApiClient(row);
  }

  async list({ organizationId, after, limit }: { organizationId: string; after?: readonly [string, string] | undefined; limit: number }) {
    const conditions: (SQL | undefined)[] = [
      eq(apiClients.organizationId, organizationId),
      after ? afterKey(apiClients.createdAt, apiClients.id, after) : undefined,
    ];
    return this.db
      .select({ client: apiClients, cursorTime: epochMicros(apiClients.createdAt) })
      .from(apiClients)
      .where(and(...conditions))
      .orderBy(asc(apiClients.createdAt), asc(apiClients.id))
      .limit(limit + 1);
  }

  async revoke({ apiClientId }: { apiClientId: string }, executor: Executor = this.db): Promise<void> {
    await executor
      .update(apiClients)
      .set({ active: false, revokedAt: new Date() })
      .where(and(eq(apiClients.id, apiClientId), isNull(apiClients.revokedAt)));
  }
}
