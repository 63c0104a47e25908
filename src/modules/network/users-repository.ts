// SQL for users and their therapist profiles.
import { and, asc, eq, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { refreshTokens, therapistProfiles, users } from '../../db/schema.js';
import type { UserRole } from '../../lib/vocabulary.js';
import type { Technique } from '../../lib/catalog.js';
import type { User } from './schemas.js';

type UserRow = typeof users.$inferSelect;
type ProfileRow = typeof therapistProfiles.$inferSelect;

export function toUser(row: UserRow, profile: ProfileRow | null): User {
  return {
    id: row.id,
    organizationId: row.organizationId,
    role: row.role,
    email: row.email,
    name: row.name,
    npi: row.npi,
    active: row.active,
    therapist: profile
      ? {
          license: {
            number: profile.licenseNumber,
            state: profile.licenseState,
            expiresOn: profile.licenseExpiresOn,
            verified: profile.licenseVerifiedAt !== null,
          },
          techniques: profile.techniques as Technique[],
          certifications: profile.certifications,
          acceptingReferrals: profile.acceptingReferrals,
          serviceRadiusKm: profile.serviceRadiusKm,
        }
      : null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export interface NewUser {
  organizationId: string | null;
  role: UserRole;
  email: string;
  name: string;
  passwordHash: string;
  npi?: string | undefined;
  therapist?:
    | {
        licenseNumber: string;
        licenseState: string;
        licenseExpiresOn: string;
        techniques: string[];
        certifications: string[];
        acceptingReferrals: boolean;
        serviceRadiusKm: number;
        licenseVerifiedAt: Date | null;
      }
    | undefined;
}

export interface UserChanges {
  name?: string | undefined;
  /** null removes it. */
  npi?: string | null | undefined;
  active?: boolean | undefined;
  therapist?: Partial<Omit<ProfileRow, 'userId'>>;
}

export class UsersRepository {
  constructor(private readonly db: Executor) {}

  /** Inserts the user and, for a therapist, the profile; pass a transaction so both land or neither. */
  async create(input: NewUser, executor: Executor): Promise<User> {
    const [row] = await executor
      .insert(users)
      .values({
        organizationId: input.organizationId,
        role: input.role,
        email: input.email.toLowerCase(),
        name: input.name,
        passwordHash: input.passwordHash,
        npi: input.npi ?? null,
      })
      .returning();
    let profile: ProfileRow | null = null;
    if (input.therapist) {
      [profile = null] = await executor
        .insert(therapistProfiles)
        .values({ userId: row!.id, ...input.therapist })
        .returning();
    }
    return toUser(row!, profile);
  }

  async emailTaken({ email }: { email: string }, executor: Executor = this.db): Promise<boolean> {
    const [row] = await executor.select({ id: users.id }).from(users).where(eq(users.email, email.toLowerCase()));
    return row !== undefined;
  }

  async findById(userId: string, executor: Executor = this.db) {
    const [row] = await executor
      .select({ user: users, profile: therapistProfiles })
      .from(users)
      .leftJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .where(eq(users.id, userId));
    return row && toUser(row.user, row.profile);
  }

  async findInOrganization({ organizationId, userId }: { organizationId: string; userId: string }, executor: Executor = this.db) {
    const [row] = await executor
      .select({ user: users, profile: therapistProfiles })
      .from(users)
      .leftJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .where(and(eq(users.id, userId), eq(users.organizationId, organizationId)));
    return row && toUser(row.user, row.profile);
  }

  async list({ organizationId, role, after, limit }: { organizationId: string; role?: UserRole | undefined; after?: readonly [string, string] | undefined; limit: number }) {
    const conditions: (SQL | undefined)[] = [
      eq(users.organizationId, organizationId),
      role ? eq(users.role, role) : undefined,
      after ? afterKey(users.createdAt, users.id, after) : undefined,
    ];
    const rows = await this.db
      .select({ user: users, profile: therapistProfiles, cursorTime: epochMicros(users.createdAt) })
      .from(users)
      .leftJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .where(and(...conditions))
      .orderBy(asc(users.createdAt), asc(users.id))
      .limit(limit + 1);
    return rows.map((row) => ({ user: toUser(row.user, row.profile), cursorTime: row.cursorTime }));
  }

  async update({ userId, changes }: { userId: string; changes: UserChanges }, executor: Executor): Promise<void> {
    const userChanges = { name: changes.name, npi: changes.npi, active: changes.active };
    await executor
      .update(users)
      .set({ ...userChanges, updatedAt: new Date() })
      .where(eq(users.id, userId));
    if (changes.therapist && Object.keys(changes.therapist).length > 0) {
      await executor.update(therapistProfiles).set(changes.therapist).where(eq(therapistProfiles.userId, userId));
    }
    if (changes.active === false) {
      // Deactivation ends every session at once; access tokens are refused by the authentication hook.
      await executor.update(refreshTokens).set({ revokedAt: new Date() }).where(eq(refreshTokens.userId, userId));
    }
  }
}
