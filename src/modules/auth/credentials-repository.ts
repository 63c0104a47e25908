// SQL for sign-in: accounts by email, API clients, refresh-token families (failures: sign-in-throttle-repository.ts).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { and, eq, isNull, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { apiClients, clientAssertionJtis, organizations, refreshTokens, users } from '../../db/schema.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class CredentialsRepository {
  constructor(private readonly db: Executor) {}

  async findUserForSignIn({ email }: { email: string }) {
    const [row] = await this.db
      .select({
        id: users.id,
        role: users.role,
        passwordHash: users.passwordHash,
        active: users.active,
        organizationId: users.organizationId,
        organizationKind: organizations.kind,
      })
      .from(users)
      .leftJoin(organizations, eq(organizations.id, users.organizationId))
      .where(eq(users.email, email.toLowerCase()));
    return row;
  }

  async findUserForToken({ userId }: { userId: string }, executor: Executor = this.db) {
    const [row] = await executor
      .select({
        id: users.id,
        role: users.role,
        active: users.active,
        organizationId: users.organizationId,
        organizationKind: organizations.kind,
      })
      .from(users)
      .leftJoin(organizations, eq(organizations.id, users.organizationId))
      .where(eq(users.id, userId));
    return row;
  }

  async findApiClient({ clientId }: { clientId: string }) {
    const [row] = await this.db
      .select({
        id: apiClients.id,
        clientId: apiClients.clientId,
        authMethod: apiClients.authMethod,
        secretHash: apiClients.secretHash,
        jwks: apiClients.jwks,
        jwksUrl: apiClients.jwksUrl,
        scopes: apiClients.scopes,
        active: apiClients.active,
        revokedAt: apiClients.revokedAt,
        organizationId: apiClients.organizationId,
        organizationKind: organizations.kind,
      })
      .from(apiClients)
      .innerJoin(organizations, eq(organizations.id, apiClients.organizationId))
      .where(eq(apiClients.clientId, clientId));
    return row;
  }

  /**
   * Records the jti of a client assertion; false when the client used it before (a replay). Two
   * requests with one jti race on the primary key: the second waits for the first to commit and
   * then inserts nothing, so exactly one of them is taken.
   */
  async claimAssertionJti({ apiClientId, jti, expiresAt }: { apiClientId: string; jti: string; expiresAt: Date }, executor: Executor = this.db): Promise<boolean> {
    const rows = await executor
      .insert(clientAssertionJtis)
      .values({ apiClientId, jti, expiresAt })
      .onConflictDoNothing()
      .returning({ jti: clientAssertionJtis.jti });
    return rows.length === 1;
  }

  /** Forgets the jtis of assertions that have expired (and would be refused anyway); returns how many. */
  async removeExpiredAssertionJtis(): Promise<number> {
    const rows = await this.db.delete(clientAssertionJtis).where(lt(clientAssertionJtis.expiresAt, sql`now()`)).returning({ jti: clientAssertionJtis.jti });
    return rows.length;
  }

  /** Issues a refresh token, starting a new family unless one is given; returns the token itself (stored hashed). */
  async issueRefreshToken(
    { userId, familyId = randomUUID(), ttlSeconds }: { userId: string; familyId?: string; ttlSeconds: number },
    executor: Executor = this.db,
  ): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await executor.insert(refreshTokens).values({
      familyId,
      userId,
      tokenHash: hashToken(token),
      expiresAt: new Date(Date.now() + ttlSeconds * 1000),
    });
    return token;
  }

  async findRefreshToken({ token }: { token: string }, executor: Executor = this.db) {
    const [row] = await executor.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(token)));
    return row;
  }

  /** Marks a token used; false if another request used it first (the caller treats that as reuse). */
  async markRotated({ id }: { id: string }, executor: Executor = this.db): Promise<boolean> {
    const rows = await executor
      .update(refreshTokens)
      .set({ rotatedAt: sql`now()` })
      .where(and(eq(refreshTokens.id, id), isNull(refreshTokens.rotatedAt), isNull(refreshTokens.revokedAt)))
      .returning({ id: refreshTokens.id });
    return rows.length === 1;
  }

  async revokeFamily({ familyId }: { familyId: string }, executor: Executor = this.db) {
    await executor
      .update(refreshTokens)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
  }
}
