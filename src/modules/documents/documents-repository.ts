// SQL for documents: their metadata rows, and their bytes as numbered parts in document_chunks
// under the document's id (written while the upload streams in, before the document row exists).
import { and, asc, eq, isNull, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/database.js';
import { afterKey, epochMicros } from '../../db/keyset.js';
import { documentChunks, documents } from '../../db/schema.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import type { Document } from './schemas.js';

export type DocumentRow = typeof documents.$inferSelect;
type NewDocument = typeof documents.$inferInsert;

export const documentUrl = (referralId: string, documentId: string) => `${apiPrefix}/referrals/${referralId}/documents/${documentId}`;

export function toDocument(row: DocumentRow): Document {
  return {
    id: row.id,
    referralId: row.referralId,
    category: row.category,
    title: row.title,
    contentType: row.contentType,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    uploadedBy: { type: row.uploaderType, id: row.uploadedBy, organizationId: row.uploaderOrganizationId },
    createdAt: row.createdAt.toISOString(),
    contentUrl: `${documentUrl(row.referralId, row.id)}/content`,
  };
}

export class DocumentsRepository {
  constructor(private readonly db: Executor) {}

  /** One part of an upload's bytes, in a statement of its own: no transaction stays open while the client sends. */
  async insertChunk({ uploadId, part, bytes }: { uploadId: string; part: number; bytes: Buffer }): Promise<void> {
    await this.db.insert(documentChunks).values({ uploadId, part, bytes });
  }

  /** The parts of an upload that did not become a document. */
  async deleteChunks(uploadId: string): Promise<void> {
    await this.db.delete(documentChunks).where(eq(documentChunks.uploadId, uploadId));
  }

  /**
   * Parts of uploads that never became a document, written more than `maxAgeSeconds` ago (by the
   * database's clock): left by a process that died mid-upload. No upload runs that long (the
   * request timeout ends it first). Returns how many uploads were cleared.
   */
  async deleteAbandonedChunks(maxAgeSeconds: number): Promise<number> {
    const deleted = await this.db
      .delete(documentChunks)
      .where(
        and(
          lt(documentChunks.createdAt, sql`now() - ${maxAgeSeconds}::int * interval '1 second'`),
          sql`not exists (select 1 from ${documents} where ${documents.id} = ${documentChunks.uploadId})`,
        ),
      )
      .returning({ uploadId: documentChunks.uploadId });
    return new Set(deleted.map((row) => row.uploadId)).size;
  }

  /** A document's bytes, one part per query, so that no more than one part is held at a time. */
  async *contentParts(documentId: string): AsyncGenerator<Buffer> {
    for (let part = 0; ; part++) {
      const [row] = await this.db
        .select({ bytes: documentChunks.bytes })
        .from(documentChunks)
        .where(and(eq(documentChunks.uploadId, documentId), eq(documentChunks.part, part)));
      if (!row) return;
      yield row.bytes;
    }
  }

  async insert(values: NewDocument, executor: Executor): Promise<DocumentRow> {
    const [row] = await executor.insert(documents).values(values).returning();
    return row!;
  }

  /** A document of the referral that has not been retracted. */
  async find({ referralId, documentId }: { referralId: string; documentId: string }, executor: Executor = this.db): Promise<DocumentRow | undefined> {
    const [row] = await executor
      .select()
      .from(documents)
      .where(and(eq(documents.id, documentId), eq(documents.referralId, referralId), isNull(documents.retractedAt)));
    return row;
  }

  /** Any document that has not been retracted, whichever referral it belongs to. */
  async findById(documentId: string): Promise<DocumentRow | undefined> {
    const [row] = await this.db
      .select()
      .from(documents)
      .where(and(eq(documents.id, documentId), isNull(documents.retractedAt)));
    return row;
  }

  /** Oldest first, retracted ones left out; `after` is the [created time in epoch µs, id] keyset of the last one seen. */
  async list({ referralId, after, limit }: { referralId: string; after?: readonly [string, string] | undefined; limit: number }) {
    return this.db
      .select({ document: documents, cursorTime: epochMicros(documents.createdAt) })
      .from(documents)
      .where(
        and(
          eq(documents.referralId, referralId),
          isNull(documents.retractedAt),
          after ? afterKey(documents.createdAt, documents.id, after) : undefined,
        ),
      )
      .orderBy(asc(documents.createdAt), asc(documents.id))
      .limit(limit + 1);
  }

  /** Hides the document (the row and its bytes are kept); undefined if it was already retracted. */
  async retract(
    { documentId, retractedBy, reason }: { documentId: string; retractedBy: string; reason: string | undefined },
    executor: Executor,
  ): Promise<DocumentRow | undefined> {
    const [row] = await executor
      .update(documents)
      .set({ retractedAt: sql`now()`, retractedBy, retractionReason: reason ?? null })
      .where(and(eq(documents.id, documentId), isNull(documents.retractedAt)))
      .returning();
    return row;
  }
}
