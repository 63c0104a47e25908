// The refusals of an upload that the shared catalogue (lib/errors.ts) has no word for: a file too
// large, and a body or file of a type the API does not take.
import { createRFC9457Error } from '@fastify/error';
import type { ProblemExtensions } from '../../lib/errors.js';

const problemType = (slug: string) => `urn:massage-referral:problem:${slug}`;

const DocumentTooLargeError = createRFC9457Error('DOCUMENT_TOO_LARGE', '%s', 413, {
  type: problemType('document-too-large'),
  title: 'Content Too Large',
});
const UnsupportedMediaTypeError = createRFC9457Error('UNSUPPORTED_MEDIA_TYPE', '%s', 415, {
  type: problemType('unsupported-media-type'),
  title: 'Unsupported Media Type',
});

// The upload may still be arriving when it is refused: the connection is closed after the answer,
// so that the rest of it is never read.
const closeConnection = { connection: 'close' };

const UploadTooSlowError = createRFC9457Error('UPLOAD_TOO_SLOW', '%s', 408, {
  type: problemType('upload-too-slow'),
  title: 'Request Timeout',
});

class UploadTooSlow extends UploadTooSlowError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class DocumentTooLarge extends DocumentTooLargeError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class UnsupportedMediaType extends UnsupportedMediaTypeError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

const mebibytes = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 100) / 100} MiB`;

export function documentTooLarge(maxBytes: number) {
  return new DocumentTooLarge(`A document may be at most ${maxBytes} bytes (${mebibytes(maxBytes)}); this one is larger`, {
    code: 'document-too-large',
    errors: [{ field: 'file', message: `is larger than ${maxBytes} bytes` }],
    headers: closeConnection,
  });
}

/** A file whose bytes are of none of the document types; `found` names what they are. */
export function unsupportedDocumentType(found: string) {
  return new UnsupportedMediaType(`The file is ${found}; a document must be a PDF, PNG, JPEG or TIFF, told by its bytes`, {
    code: 'unsupported-document-type',
    errors: [{ field: 'file', message: `is ${found}, not a PDF, PNG, JPEG or TIFF` }],
    headers: closeConnection,
  });
}

export function multipartRequired(received: string | undefined) {
  return new UnsupportedMediaType(
    `The body must be multipart/form-data with the parts file, category and title${received ? `; it is ${received.split(';')[0]!.trim().slice(0, 100)}` : ''}`,
    {
      code: 'multipart-required',
      errors: [{ field: 'body', message: 'must be multipart/form-data' }],
      headers: closeConnection,
    },
  );
}

/** An upload still arriving after its time: whoever holds a connection open that long is cut off. */
export function uploadTooSlow(seconds: number) {
  return new UploadTooSlow(`An upload must arrive whole within ${seconds} s (DOCUMENT_UPLOAD_SECONDS); this one did not, and nothing was kept`, {
    code: 'upload-too-slow',
    errors: [{ field: 'file', message: `did not arrive within ${seconds} s` }],
    headers: closeConnection,
  });
}
