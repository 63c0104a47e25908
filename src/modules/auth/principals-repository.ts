// Who a valid token belongs to: whether that account is still active (asked on every request)
// and what /me shows of it.
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database } from '../../db/database.js';
import { apiClients, organizations, users } from '../../db/schema.js';

const organizationSummary = { id: organizations.id, kind: organizations.kind, name: organizations.name };

export class PrincipalsRepository {
  // Asked on every request: built and prepared once, not rebuilt by the query builder each time.
  // Tokens issued before a deactivation or a password change stay dead, also once the account
  // is active again (tokens_valid_after, migration 0010). iat counts whole seconds: a token of the
  // same second as the deactivation counts as issued before it.
  private readonly activeUser;
  private readonly activeClient;

  constructor(private readonly db: Database) {
    this.activeUser = db
      .select({ id: users.id })
      .from(users)
      .where(
        and(
          eq(users.id, sql.placeholder('id')),
          eq(users.active, true),
          sql`(${users.tokensValidAfter} is null or ${users.tokensValidAfter} < to_timestamp(${sql.placeholder('issuedAt')}::double precision))`,
        ),
      )
      .prepare('principal_active_user');
    this.activeClient = db
      .select({ id: apiClients.id })
      .from(apiClients)
      .where(and(eq(apiClients.id, sql.placeholder('id')), eq(apiClients.active, true), isNull(apiClients.revokedAt)))
      .prepare('principal_active_client');
  }

  async isActive({ kind, id, issuedAt }: { kind: 'user' | 'api_client'; id: string; issuedAt: number }): Promise<boolean> {
    const [row] = await (kind === 'user' ? this.activeUser.execute({ id, issuedAt }) : this.activeClient.execute({ id }));
    return row !== undefined;
  }

  async findUser({ userId }: { userId: string }) {
    const [row] = await this.db
      .select({ user: users, organization: organizationSummary })
      .from(users)
      .leftJoin(organizations, eq(organizations.id, users.organizationId))
      .where(eq(users.id, userId));
    return row;
  }

  async findApiClient({ apiClientId }: { apiClientId: string }) {
    const [row] = await this.db
      .select({ client: apiClients, organization: organizationSummary })
      .from(apiClients)
      .innerJoin(organizations, eq(organizations.id, apiClients.organizationId))
      .where(eq(apiClients.id, apiClientId));
    return row;
  }
}
