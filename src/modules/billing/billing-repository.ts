// SQL of the billing summary. A read model: it reads the tables of the modules whose facts a claim
// gathers (visit notes, users, organizations) directly, for reading only, rather than asking each
// module for its part; access to the referral is decided by the referrals module before any of it.
import { asc, eq, inArray } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { organizations, progressReports, users } from '../../db/schema.js';

/** The referral's people and places by id, as the referrals module read it for the caller. */
export interface ClaimParties {
  id: string;
  prescriberId: string;
  acceptedTherapistId: string | null;
  acceptedPracticeId: string | null;
}

export type Person = { id: string; name: string; npi: string | null };
export type Practice = typeof organizations.$inferSelect;
export type BilledVisit = Awaited<ReturnType<BillingRepository['billedVisits']>>[number];

export class BillingRepository {
  constructor(private readonly db: Executor) {}

  /** The prescriber, the accepting therapist and practice, and every visit note's billing lines. */
  async claimFacts(referral: ClaimParties) {
    const people = [referral.prescriberId, ...(referral.acceptedTherapistId ? [referral.acceptedTherapistId] : [])];
    const [persons, practice, visits] = await Promise.all([
      this.people(people),
      referral.acceptedPracticeId ? this.practice(referral.acceptedPracticeId) : undefined,
      this.billedVisits(referral.id),
    ]);
    // Authors of notes are the accepting therapist today; a note by anyone else still names its own NPI.
    const authors = visits.map((visit) => visit.authorId).filter((id) => !persons.has(id));
    if (authors.length > 0) for (const [id, person] of await this.people([...new Set(authors)])) persons.set(id, person);
    return { people: persons, practice, visits };
  }

  private async people(ids: string[]): Promise<Map<string, Person>> {
    const rows = await this.db.select({ id: users.id, name: users.name, npi: users.npi }).from(users).where(inArray(users.id, ids));
    return new Map(rows.map((row) => [row.id, row]));
  }

  private async practice(id: string): Promise<Practice | undefined> {
    const [row] = await this.db.select().from(organizations).where(eq(organizations.id, id));
    return row;
  }

  private async billedVisits(referralId: string) {
    return this.db
      .select({
        id: progressReports.id,
        visitNumber: progressReports.visitNumber,
        visitDate: progressReports.visitDate,
        authorId: progressReports.authorId,
        billing: progressReports.billing,
      })
      .from(progressReports)
      .where(eq(progressReports.referralId, referralId))
      .orderBy(asc(progressReports.visitNumber));
  }
}
