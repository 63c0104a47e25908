// Reading visit notes for other modules (the FHIR façade) and for the /v1 list: pages by visit
// number, and one note by its id. Access is the caller's to check, by the note's referral.
import type { Executor } from '../../db/database.js';
import { ProgressReportsRepository, toProgressReport } from './progress-reports-repository.js';
import type { ProgressReport } from './schemas.js';

/**
 * A page of a referral's visit notes by visit number, after `afterVisit`: up to limit + 1, so one
 * more than asked tells there is a next page. Who may read them is the caller's to check
 * (app.referrals.readParticipating), as the /v1 list does.
 */
export async function visitNotesOf(executor: Executor, referralId: string, page: { afterVisit?: number | undefined; limit: number }): Promise<ProgressReport[]> {
  const rows = await new ProgressReportsRepository(executor).list({ referralId, afterVisit: page.afterVisit, limit: page.limit });
  return rows.map(({ row, addenda }) => toProgressReport(row, addenda));
}

/** A visit note by its id, whichever referral it belongs to (its referralId says which, to check access by). */
export async function visitNoteById(executor: Executor, noteId: string): Promise<ProgressReport | undefined> {
  const found = await new ProgressReportsRepository(executor).findById(noteId);
  return found && toProgressReport(found.row, found.addenda);
}
