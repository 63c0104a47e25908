// Serving a document's bytes: streamed from the database one part at a time, with the headers that
// make a browser save rather than render them and let the client check what it received.
import { Readable } from 'node:stream';
import contentDisposition from 'content-disposition';
import type { DocumentContentType } from '../../lib/vocabulary.js';
import type { DocumentRow } from './documents-repository.js';

const extensions: Record<DocumentContentType, string> = {
  'application/pdf': 'pdf',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/tiff': 'tif',
};

/** The name to save the file under: its title (which may name no folder) with the extension of its type. */
export function downloadName(title: string, contentType: DocumentContentType): string {
  const extension = extensions[contentType];
  const base = title.replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim() || 'document';
  return base.toLowerCase().endsWith(`.${extension}`) ? base : `${base}.${extension}`;
}

/** The headers of a document's bytes. */
export function contentHeaders(document: Pick<DocumentRow, 'title' | 'contentType' | 'sizeBytes' | 'sha256'>): Record<string, string> {
  const name = downloadName(document.title, document.contentType);
  const digest = Buffer.from(document.sha256, 'hex');
  return {
    'content-type': document.contentType,
    'content-length': String(document.sizeBytes),
    // RFC 6266: an ASCII filename for every client, and the title in UTF-8 (filename*) for those that read it.
    'content-disposition': contentDisposition(name, { fallback: name.replace(/[^\x20-\x7e]/g, '_') }),
    // The type was told from the bytes when they were stored; a browser must not guess another (HTML, say).
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    // The bytes never change, so their hash is a strong validator.
    etag: `"${document.sha256}"`,
    // RFC 9530: the client can check the whole representation it received.
    'repr-digest': `sha-256=:${digest.toString('base64')}:`,
  };
}

/** The bytes as a stream that reads the next part only when the client has taken the last. */
export function contentStream(parts: AsyncIterable<Buffer>): Readable {
  return Readable.from(parts, { objectMode: false });
}
