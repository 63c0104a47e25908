// SQL for patients, always within the office that owns them.
import { and, asc, eq, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { patients } from '../../db/schema.js';
import type { CreatePatient, Patient } from './schemas.js';

type PatientRow = typeof patients.$inferSelect;

export function toPatient(row: PatientRow): Patient {
  return {
    id: row.id,
    organizationId: row.organizationId,
    givenName: row.givenName,
    familyName: row.familyName,
    birthDate: row.birthDate,
    sex: row.sex,
    phone: row.phone,
    email: row.email,
    identifiers: row.identifiers,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export class PatientsRepository {
  constructor(private readonly db: Executor) {}

  async create(
    { organizationId, createdBy, input }: { organizationId: string; createdBy: string; input: CreatePatient },
    executor: Executor = this.db,
  ): Promise<Patient> {
    const [row] = await executor
      .insert(patients)
      .values({
        organizationId,
        createdBy,
        givenName: input.givenName,
        familyName: input.familyName,
        birthDate: input.birthDate,
        sex: input.sex,
        phone: input.phone ?? null,
        email: input.email ?? null,
        identifiers: input.identifiers ?? [],
      })
      .returning();
    return toPatient(row!);
  }

  async findInOrganization({ organizationId, patientId }: { organizationId: string; patientId: string }, executor: Executor = this.db) {
    const [row] = await executor
      .select()
      .from(patients)
      .where(and(eq(patients.id, patientId), eq(patients.organizationId, organizationId)));
    return row && toPatient(row);
  }

  async list({ organizationId, identifier, after, limit }: {
    organizationId: string;
    identifier?: { system: string; value: string } | undefined;
    after?: readonly [string, string] | undefined;
    limit: number;
  }) {
    const conditions: (SQL | undefined)[] = [
      eq(patients.organizationId, organizationId),
      identifier ? sql`${patients.identifiers} @> ${JSON.stringify([identifier])}::jsonb` : undefined,
      after ? afterKey(patients.createdAt, patients.id, after) : undefined,
    ];
    return this.db
      .select({ patient: patients, cursorTime: epochMicros(patients.createdAt) })
      .from(patients)
      .where(and(...conditions))
      .orderBy(asc(patients.createdAt), asc(patients.id))
      .limit(limit + 1);
  }
}
