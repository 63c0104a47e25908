// The names people and organizations are shown under in documents other modules produce (a report
// as PDF); nothing else about them.
import { inArray } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { organizations, users } from '../../db/schema.js';

export async function displayNames(executor: Executor, ids: { userIds: string[]; organizationIds: string[] }): Promise<Map<string, string>> {
  const [people, places] = await Promise.all([
    ids.userIds.length > 0 ? executor.select({ id: users.id, name: users.name }).from(users).where(inArray(users.id, ids.userIds)) : [],
    ids.organizationIds.length > 0
      ? executor.select({ id: organizations.id, name: organizations.name }).from(organizations).where(inArray(organizations.id, ids.organizationIds))
      : [],
  ]);
  return new Map([...people, ...places].map((row) => [row.id, row.name]));
}
