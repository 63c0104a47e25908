// Reading documents for other modules (the FHIR façade) and the /v1 routes: pages of a referral's
// documents, one by its id, and its bytes with the headers they are served with. Retracted
// documents are never read. Access is the caller's to check (careTeamReferral, by the referral).
import type { Executor } from '../../db/database.js';
import { contentHeaders, contentStream } from './content.js';
import { DocumentsRepository, toDocument } from './documents-repository.js';
import type { Document } from './schemas.js';

/** A page of a referral's documents, oldest first, after the [created µs, id] key: up to limit + 1, to tell a next page. */
export async function documentsOf(executor: Executor, referralId: string, page: { after?: readonly [string, string] | undefined; limit: number }) {
  const rows = await new DocumentsRepository(executor).list({ referralId, after: page.after, limit: page.limit });
  return rows.map((row) => ({ document: toDocument(row.document), cursorTime: row.cursorTime }));
}

/** A document that has not been retracted, by its id, whichever referral it belongs to (its referralId says which, to check access by). */
export async function documentById(executor: Executor, documentId: string): Promise<Document | undefined> {
  const row = await new DocumentsRepository(executor).findById(documentId);
  return row && toDocument(row);
}

/** A document's bytes, streamed a part at a time, and the headers they go out with (type, length, digest, attachment). */
export function documentBytes(executor: Executor, document: Pick<Document, 'id' | 'title' | 'contentType' | 'sizeBytes' | 'sha256'>) {
  return { headers: contentHeaders(document), stream: contentStream(new DocumentsRepository(executor).contentParts(document.id)) };
}
