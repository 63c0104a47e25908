// Reading an upload as it streams in: the parts of a multipart/form-data body in any order, the
// file's type told by its first bytes, its SHA-256, and its bytes written to the database part by
// part as they arrive. Memory per upload stays at about one part, whatever the size of the file.
import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { MultipartFile, MultipartValue } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { fileTypeFromBuffer } from 'file-type';
import { validationFailed, type FieldProblem } from '../../lib/errors.js';
import { documentCategories, documentContentTypes, type DocumentCategory, type DocumentContentType } from '../../lib/vocabulary.js';
import { findInputProblem } from '../../plugins/input-safety.js';
import { documentTooLarge, uploadTooSlow, unsupportedDocumentType } from './problems.js';
import { titleMaxLength } from './schemas.js';

/** file-type reads at most this much of a file's start to tell its type. */
const sniffBytes = 4100;
/** The bytes of one document_chunks row: few rows per file, little memory per upload. */
export const chunkBytes = 256 * 1024;

/** The most the multipart envelope (boundaries, part headers, category and title) adds to the file. */
export const envelopeAllowance = 64 * 1024;

/**
 * Busboy's limits, enforced while it parses. One more file and field than are taken, so that a
 * second file or an extra field is seen and named (400) rather than cut off by the parser.
 */
export const multipartLimits = (maxBytes: number) => ({
  fileSize: maxBytes,
  files: 2,
  fields: 3,
  parts: 5,
  // A title of 200 characters is at most 800 bytes of UTF-8; a longer value is cut and refused.
  fieldSize: 1024,
  fieldNameSize: 100,
  headerPairs: 20,
});

export interface ChunkStore {
  insertChunk(chunk: { uploadId: string; part: number; bytes: Buffer }): Promise<void>;
  deleteChunks(uploadId: string): Promise<void>;
}

export interface ReceivedDocument {
  /** The id of the upload's parts in document_chunks, which the document row takes. */
  id: string;
  category: DocumentCategory;
  title: string;
  contentType: DocumentContentType;
  sizeBytes: number;
  sha256: string;
}

interface StoredFile {
  contentType: DocumentContentType;
  sizeBytes: number;
  sha256: string;
}

const acceptedTypes: ReadonlySet<string> = new Set(documentContentTypes);

async function documentTypeOf(start: Buffer): Promise<DocumentContentType> {
  if (start.length === 0) throw unsupportedDocumentType('an empty file');
  // A start file-type cannot make sense of is of no type we take, not a failure of ours.
  const found = await fileTypeFromBuffer(start).catch(() => undefined);
  if (!found) throw unsupportedDocumentType('of an unknown type');
  if (!acceptedTypes.has(found.mime)) throw unsupportedDocumentType(`${found.mime} (.${found.ext})`);
  return found.mime as DocumentContentType;
}

/** The stream's items; an error of the stream itself (not of the code consuming it) is told by `translate`. */
async function* reading<T>(source: AsyncIterable<T>, translate: (error: unknown) => unknown): AsyncGenerator<T> {
  try {
    for await (const item of source) yield item;
  } catch (error) {
    throw translate(error);
  }
}

/** Writes the file's bytes as parts of the upload while hashing them; its type is told before anything is written. */
async function storeFile(file: Readable & { truncated?: boolean }, uploadId: string, maxBytes: number, chunks: ChunkStore, translate: (error: unknown) => unknown): Promise<StoredFile> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  let part = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let contentType: DocumentContentType | undefined;
  /** Writes what is pending in parts of chunkBytes; the last, shorter one only when the file has ended. */
  const flush = async (ended: boolean) => {
    while (pendingBytes >= chunkBytes || (ended && pendingBytes > 0)) {
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      const bytes = all.subarray(0, Math.min(chunkBytes, all.length));
      pending = bytes.length < all.length ? [all.subarray(bytes.length)] : [];
      pendingBytes = all.length - bytes.length;
      // Awaited before more is read: the request stream pauses meanwhile, so a slow database slows
      // the upload instead of filling memory.
      await chunks.insertChunk({ uploadId, part: part++, bytes });
    }
  };
  for await (const data of reading(file as AsyncIterable<Buffer>, translate)) {
    // Busboy cuts a file off at fileSize and skips the rest: refused now, not after reading it all.
    if (file.truncated) throw documentTooLarge(maxBytes);
    hash.update(data);
    sizeBytes += data.length;
    pending.push(data);
    pendingBytes += data.length;
    if (contentType === undefined && pendingBytes >= sniffBytes) contentType = await documentTypeOf(Buffer.concat(pending, pendingBytes));
    if (contentType !== undefined) await flush(false);
  }
  if (file.truncated) throw documentTooLarge(maxBytes);
  contentType ??= await documentTypeOf(Buffer.concat(pending, pendingBytes));
  await flush(true);
  return { contentType, sizeBytes, sha256: hash.digest('hex') };
}

/** The form fields, each checked as it arrives, so that a bad one ends the upload at once. */
class FormFields {
  category: DocumentCategory | undefined;
  title: string | undefined;

  take(part: MultipartValue): void {
    const name = part.fieldname;
    if (name !== 'category' && name !== 'title') {
      throw validationFailed([{ field: name, message: 'is not a recognised part (the parts are file, category and title)' }]);
    }
    if (this[name] !== undefined) throw validationFailed([{ field: name, message: 'appears more than once; send each part once' }]);
    const value = part.value;
    if (typeof value !== 'string') throw validationFailed([{ field: name, message: 'must be text' }]);
    if (name === 'category') {
      if (!(documentCategories as readonly string[]).includes(value)) {
        throw validationFailed([{ field: 'category', message: `must be one of: ${documentCategories.join(', ')}` }]);
      }
      this.category = value as DocumentCategory;
      return;
    }
    const length = [...value].length;
    if (part.valueTruncated || length > titleMaxLength) throw validationFailed([{ field: 'title', message: `must be at most ${titleMaxLength} characters` }]);
    if (length === 0) throw validationFailed([{ field: 'title', message: 'must not be empty' }]);
    // The text rules every JSON body is held to (plugins/input-safety.ts), which a multipart body would otherwise pass by.
    const problem = findInputProblem(value, 'title');
    if (problem) throw validationFailed([problem]);
    this.title = value;
  }

  missing(): FieldProblem[] {
    return [
      ...(this.category === undefined ? [{ field: 'category', message: 'is required' }] : []),
      ...(this.title === undefined ? [{ field: 'title', message: 'is required' }] : []),
    ];
  }
}

/** A failure of the multipart parser, as the answer the client gets. */
function parserFailure(maxBytes: number) {
  return (error: unknown): unknown => {
    const { code, statusCode, message } = error as { code?: string; statusCode?: number; message?: string };
    // Already an answer of ours, or the client going away (problem-details.ts tells that one).
    if ((error as { toProblemDetails?: unknown }).toProblemDetails || code === 'FST_MP_PREMATURE_CLOSE' || code === 'ECONNRESET') return error;
    if (code === 'FST_REQ_FILE_TOO_LARGE') return documentTooLarge(maxBytes);
    if (code === 'FST_PARTS_LIMIT' || code === 'FST_FILES_LIMIT' || code === 'FST_FIELDS_LIMIT') {
      return validationFailed([{ field: 'body', message: 'has too many parts (the parts are one file, category and title)' }]);
    }
    if (code === 'FST_PROTO_VIOLATION') return validationFailed([{ field: 'body', message: 'names a part after a reserved name' }]);
    if (statusCode !== undefined && statusCode >= 500) return error;
    // Busboy's own errors (no boundary, a malformed part header, the body ending mid-part) carry no status.
    return validationFailed([{ field: 'body', message: `is not well-formed multipart/form-data${message ? ` (${message.slice(0, 200)})` : ''}` }]);
  };
}

/**
 * Reads the upload to its end, writing the file's bytes as it goes. Whatever goes wrong (a bad
 * part, a file too large or of another type, the client going away, the database failing), the
 * parts written so far are deleted before the error is thrown: nothing is left behind.
 */
export async function receiveUpload(
  request: FastifyRequest,
  { maxBytes, chunks, timeoutSeconds }: { maxBytes: number; chunks: ChunkStore; timeoutSeconds: number },
): Promise<ReceivedDocument> {
  const uploadId = randomUUID();
  const translate = parserFailure(maxBytes);
  const fields = new FormFields();
  let stored: StoredFile | undefined;
  let current: MultipartFile | undefined;
  // The server's requestTimeout is as long (app.ts), but Node enforces it on a periodic check, by
  // closing the connection: the upload's own deadline answers on time, with a problem that says why.
  const deadline = setTimeout(() => {
    const late = uploadTooSlow(timeoutSeconds);
    if (current) current.file.destroy(late);
    else request.raw.destroy(late);
  }, timeoutSeconds * 1000);
  try {
    // The parser enforces multipartLimits, given where the plugin is registered (routes.ts).
    for await (const part of reading(request.parts(), translate)) {
      if (part.type === 'field') {
        fields.take(part);
        continue;
      }
      current = part;
      if (part.fieldname !== 'file') throw validationFailed([{ field: part.fieldname, message: 'is not a recognised part (the file goes in the part named file)' }]);
      if (stored) throw validationFailed([{ field: 'file', message: 'appears more than once; send exactly one file' }]);
      stored = await storeFile(part.file, uploadId, maxBytes, chunks, translate);
      current = undefined;
    }
    const missing = [...(stored ? [] : [{ field: 'file', message: 'is required' }]), ...fields.missing()];
    if (missing.length > 0) throw validationFailed(missing);
    return { id: uploadId, category: fields.category!, title: fields.title!, ...stored! };
  } catch (error) {
    // A file left unread would hold the parser; closing it lets the request go.
    current?.file.destroy();
    await discard(request, chunks, uploadId);
    throw error;
  } finally {
    clearTimeout(deadline);
  }
}

/** Deletes an upload's parts; should that fail too, the worker's sweep deletes them later. */
export async function discard(request: FastifyRequest, chunks: ChunkStore, uploadId: string): Promise<void> {
  try {
    await chunks.deleteChunks(uploadId);
  } catch (error) {
    request.log.warn({ err: error, uploadId }, 'could not delete the parts of a refused upload; the sweep will');
  }
}
