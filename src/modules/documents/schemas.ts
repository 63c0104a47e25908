// Shapes of the files shared on a referral (SPEC §14.6): their metadata, the multipart upload and
// the bytes served back.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { PageQuery, Page, Timestamp, Uuid } from '../../lib/schemas.js';
import { documentCategories, documentContentTypes, enumOf, principalKinds } from '../../lib/vocabulary.js';

export const titleMaxLength = 200;

export const DocumentParams = Type.Object({ id: Uuid, documentId: Uuid }, { additionalProperties: false });
export type DocumentParams = Static<typeof DocumentParams>;

export const DocumentListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const Document = component('Document', Type.Object({
  id: Uuid,
  referralId: Uuid,
  category: enumOf(documentCategories),
  title: Type.String(),
  contentType: enumOf(documentContentTypes, { description: 'The type told by the bytes, whatever the file was named or declared as' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the bytes, lower-case hex' }),
  uploadedBy: Type.Object({
    type: enumOf(principalKinds),
    id: Uuid,
    organizationId: Uuid,
  }),
  createdAt: Timestamp,
  contentUrl: Type.String({ description: 'Where the bytes are served', examples: ['/v1/referrals/0b9a7c1e-5d1a-4c57-9f3e-2f8d1c0b6a11/documents/5f0c2a4e-8d7b-4f5e-9a61-3c2b1d0e9f87/content'] }),
}));
export type Document = Static<typeof Document>;

export const DocumentPage = Page(Document);

/** Documentation of the upload only: the parts stream and are read and checked one by one in upload.ts. */
export const DocumentUpload = component('DocumentUpload', Type.Object(
  {
    file: Type.String({
      format: 'binary',
      description: `Exactly one file: PDF, PNG, JPEG or TIFF, told by its bytes (not its name or declared type); at most DOCUMENT_MAX_BYTES`,
    }),
    category: enumOf(documentCategories),
    title: Type.String({ minLength: 1, maxLength: titleMaxLength }),
  },
  { additionalProperties: false, description: 'The parts may come in any order' },
));

export const RetractDocument = component('RetractDocument', Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Why the document is withdrawn, kept with it' })) },
  { additionalProperties: false, description: 'Optional: a DELETE without a body retracts without a reason' },
));
export type RetractDocument = Static<typeof RetractDocument>;

/** The bytes, as the type they were told to be. */
export const documentContent = Object.fromEntries(
  documentContentTypes.map((contentType) => [contentType, { schema: Type.String({ format: 'binary' }) }]),
);
