// The therapist directory: active therapists with a valid license, by technique, acceptance and distance from a point.
import { and, asc, eq, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { organizations, therapistProfiles, users } from '../../db/schema.js';
import type { Technique } from '../../lib/catalog.js';
import { licenseIsValid } from '../../lib/licenses.js';
import type { Location } from '../../lib/schemas.js';

/** Great-circle distance in km (haversine) between an organization's location and a point. */
export function distanceKm(point: Location): SQL<number> {
  return sql<number>`(2 * 6371.0088 * asin(sqrt(
    power(sin(radians(${organizations.latitude} - ${point.lat}) / 2), 2) +
    cos(radians(${point.lat})) * cos(radians(${organizations.latitude})) *
    power(sin(radians(${organizations.longitude} - ${point.lng}) / 2), 2))))`;
}

export interface DirectorySearch {
  technique?: Technique | undefined;
  accepting?: boolean | undefined;
  near?: Location | undefined;
  radiusKm?: number | undefined;
  /** Keyset of the last row seen: [distance, id] when near is given, else [name, id]. */
  after?: readonly (string | number)[] | undefined;
  limit: number;
}

export class DirectoryRepository {
  constructor(private readonly db: Executor) {}

  async search(search: DirectorySearch) {
    const distance = search.near ? distanceKm(search.near) : sql<null>`null::double precision`;
    const orderKey = search.near ? distance : sql`${users.name}`;
    const conditions: (SQL | undefined)[] = [
      eq(users.role, 'therapist'),
      eq(users.active, true),
      // Only therapists who may treat are listed (SPEC §14.2); network admins find the others among an organization's users.
      licenseIsValid(),
      search.technique ? sql`${search.technique} = any(${therapistProfiles.techniques})` : undefined,
      search.accepting === undefined ? undefined : eq(therapistProfiles.acceptingReferrals, search.accepting),
      search.near && search.radiusKm !== undefined ? sql`${distance} <= ${search.radiusKm}` : undefined,
      search.after ? sql`(${orderKey}, ${users.id}) > (${search.after[0]}, ${search.after[1]}::uuid)` : undefined,
    ];
    return this.db
      .select({
        user: { id: users.id, name: users.name },
        profile: therapistProfiles,
        practice: organizations,
        distanceKm: distance,
      })
      .from(users)
      .innerJoin(therapistProfiles, eq(therapistProfiles.userId, users.id))
      .innerJoin(organizations, eq(organizations.id, users.organizationId))
      .where(and(...conditions))
      .orderBy(asc(orderKey), asc(users.id))
      .limit(search.limit + 1);
  }
}
