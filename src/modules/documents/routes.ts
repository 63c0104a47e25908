// /v1/referrals/{id}/documents: files shared on a referral by its care team (SPEC §14.6), checked
// by their bytes, stored with their SHA-256, never changed, retracted by hiding.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifySchemaCompiler } from 'fastify';
import Negotiator from 'negotiator';
import { Type } from 'typebox';
import { accessDenied, notAcceptable, notFound } from '../../lib/errors.js';
import { emptyBodyAsObject, optionalBodyKeyword } from '../../lib/optional-body.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, ResponseHeaders } from '../../lib/schemas.js';
import { createValidatorCompiler } from '../../lib/validation.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone, type Principal } from '../auth/policy.js';
import { referralReadPolicy } from '../referrals/index.js';
import { careTeamReferral, lockCareTeamReferral } from './care-team.js';
import { documentBytes, documentsOf } from './document-reads.js';
import { documentUrl, toDocument, type DocumentsRepository } from './documents-repository.js';
import { documentTooLarge, multipartRequired } from './problems.js';
import { Document, DocumentListQuery, DocumentPage, DocumentParams, DocumentUpload, RetractDocument, documentContent } from './schemas.js';
import { discard, envelopeAllowance, multipartLimits, receiveUpload } from './upload.js';

const referralResource = { type: 'referral', param: 'id' };
const writePolicy = { roles: everyone, clientScope: 'referrals:write' } as const;
const tags = ['documents'];

export interface DocumentRoutesOptions {
  repository: DocumentsRepository;
  /** DOCUMENT_MAX_BYTES: the largest file taken. */
  maxBytes: number;
  /** DOCUMENT_UPLOAD_SECONDS: the time an upload has to arrive whole. */
  uploadSeconds: number;
}

const documentRoutes: FastifyPluginAsyncTypebox<DocumentRoutesOptions> = async (app, { repository, maxBytes, uploadSeconds }) => {
  // Registered here, not app-wide: no other route takes multipart bodies.
  await app.register(fastifyMultipart, { limits: multipartLimits(maxBytes) });

  // The upload declares its multipart body so that the OpenAPI document shows it, but Fastify has
  // nothing parsed to hold it to: the parts stream, and upload.ts reads and checks them one by one
  // as they arrive (fields before or after the file). So this route's body validator passes
  // everything, while its params and headers are validated as on every other route. (An OpenAPI
  // transform would do too, but would put one route's contract in the shared plugin.)
  const validateAsUsual = createValidatorCompiler();
  const streamedBody: FastifySchemaCompiler<unknown> = (route) => (route.httpPart === 'body' ? () => true : validateAsUsual(route));

  app.post('/referrals/:id/documents', {
    config: { policy: writePolicy, auditAction: 'document.create', auditResource: referralResource, streamedBody: true },
    validatorCompiler: streamedBody,
    schema: {
      tags,
      operationId: 'uploadDocument',
      summary: 'Share a file (PDF, PNG, JPEG or TIFF) on the referral',
      description:
        'multipart/form-data with the parts file (exactly one), category and title, in any order. The type is told by the bytes, ' +
        'whatever the file is named or declared as: anything but a PDF, PNG, JPEG or TIFF is 415. A file over DOCUMENT_MAX_BYTES is 413 ' +
        '(document-too-large), refused as soon as the upload passes the limit. Only the care team: the office, and the accepting therapist ' +
        "and the accepting practice's admins and API clients. Announced as document.added.",
      params: IdParams,
      body: { content: { 'multipart/form-data': { schema: DocumentUpload } } } as never,
      response: { 201: Document },
    },
    // Refused before a byte of the body is read: a body of another type, or one whose declared
    // length already exceeds what a file of the largest size needs.
    preParsing: async (request, _reply, payload) => {
      const contentType = request.headers['content-type'];
      if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) throw multipartRequired(contentType);
      const declaredLength = Number(request.headers['content-length'] ?? 0);
      if (declaredLength > maxBytes + envelopeAllowance) throw documentTooLarge(maxBytes);
      return payload;
    },
    // An answer given before the whole upload was read (an outsider's 404, a refusal mid-file)
    // closes the connection, so that the rest of the body is never read to be thrown away.
    onSend: async (request, reply, payload) => {
      if (!request.raw.readableEnded) reply.header('connection', 'close');
      return payload;
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    // Checked before the body is read: an outsider's file is never stored, not even for a moment.
    await careTeamReferral(app.referrals, principal, request.params.id);
    const received = await receiveUpload(request, { maxBytes, chunks: repository, timeoutSeconds: uploadSeconds });
    // Only now is the body known: an Idempotency-Key met before is replayed, or refused for another file.
    const bodyDigest = `${received.sha256} ${received.category} ${received.title}`;
    let replayed = false;
    // A replay's parts are deleted before the first answer is sent again: the client hears only once nothing is left.
    const discardUpload = () => discard(request, repository, received.id);
    try {
      replayed = await app.settleStreamedIdempotency(request, reply, bodyDigest, discardUpload);
    } catch (error) {
      await discardUpload();
      throw error;
    }
    if (replayed) return reply;
    let document: Document | undefined;
    try {
      document = await app.unitOfWork.run(auditContextOf(request), async (unit) => {
        // Checked again under the referral's lock, the one every change of it takes: access may
        // have moved (a reroute) while the file arrived, and document.added is ordered with the
        // referral's other events.
        const referral = await lockCareTeamReferral(app.referrals, principal, request.params.id, unit.tx);
        if (!referral) return undefined;
        const row = await repository.insert(
          {
            id: received.id,
            referralId: referral.id,
            category: received.category,
            title: received.title,
            contentType: received.contentType,
            sizeBytes: received.sizeBytes,
            sha256: received.sha256,
            uploaderType: principal.kind,
            uploadedBy: principal.id,
            uploaderOrganizationId: principal.organizationId!,
          },
          unit.tx,
        );
        unit.emit({ type: 'document.added', referral, resource: { type: 'document', id: row.id, url: documentUrl(referral.id, row.id) } });
        unit.audit({ action: 'document.create', httpStatus: 201, resourceType: 'document', resourceId: row.id, patientId: referral.patientId });
        return toDocument(row);
      });
    } catch (error) {
      await discard(request, repository, received.id);
      throw error;
    }
    if (!document) {
      await discard(request, repository, received.id);
      // After the transaction: the 404 reads the referral's patient for the audit.
      throw await app.referrals.notFound(request.params.id);
    }
    return reply.code(201).header('location', documentUrl(document.referralId, document.id)).send(document);
  });

  app.get('/referrals/:id/documents', {
    config: { policy: referralReadPolicy, auditAction: 'document.list', auditResource: referralResource },
    schema: {
      tags,
      operationId: 'listDocuments',
      summary: "The referral's documents (metadata), oldest first; retracted ones are left out",
      params: IdParams,
      querystring: DocumentListQuery,
      response: { 200: DocumentPage },
    },
  }, async (request) => {
    const referral = await careTeamReferral(app.referrals, request.principal!, request.params.id);
    const rows = await documentsOf(app.db, referral.id, { after: decodeTimeCursor(request.query.cursor), limit: request.query.limit });
    await app.auditLog.record(auditContextOf(request), {
      action: 'document.list',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'referral',
      resourceId: referral.id,
      patientId: referral.patientId,
    });
    return toPage(rows, request.query.limit, (row) => [row.cursorTime, row.document.id], (row) => row.document);
  });

  /** The document of the referral, if the caller is on its care team and it has not been retracted; else 404. */
  const findDocument = async (request: { principal?: Principal | undefined; params: DocumentParams }) => {
    const referral = await careTeamReferral(app.referrals, request.principal!, request.params.id);
    const document = await repository.find({ referralId: referral.id, documentId: request.params.documentId });
    if (!document) throw notFound('document', request.params.documentId, 'Document', referral.patientId);
    return { referral, document };
  };

  app.get('/referrals/:id/documents/:documentId', {
    config: { policy: referralReadPolicy, auditAction: 'document.read', auditResource: referralResource },
    schema: {
      tags,
      operationId: 'getDocument',
      summary: "A document's metadata",
      params: DocumentParams,
      response: { 200: Document },
    },
  }, async (request) => {
    const { referral, document } = await findDocument(request);
    await app.auditLog.record(auditContextOf(request), {
      action: 'document.read',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'document',
      resourceId: document.id,
      patientId: referral.patientId,
    });
    return toDocument(document);
  });

  app.get('/referrals/:id/documents/:documentId/content', {
    config: { policy: referralReadPolicy, auditAction: 'document.read_content', auditResource: referralResource },
    schema: {
      tags,
      operationId: 'getDocumentContent',
      summary: "A document's bytes, as an attachment",
      description:
        'Served as the type told from the bytes when they were stored (an Accept header that excludes it is 406), with Content-Disposition: attachment, ' +
        'X-Content-Type-Options: nosniff, an ETag and a Repr-Digest (RFC 9530) of their SHA-256. Every read is audited as a read of the patient\'s record.',
      params: DocumentParams,
      response: {
        200: {
          description: 'The bytes of the document',
          // The catalogue's (lib/schemas.ts), which the document refers to as components.
          headers: { etag: ResponseHeaders.etag.schema, 'repr-digest': ResponseHeaders['repr-digest'].schema },
          content: documentContent,
        },
      },
    },
  }, async (request, reply) => {
    const { referral, document } = await findDocument(request);
    if (new Negotiator(request).mediaType([document.contentType]) === undefined) throw notAcceptable([document.contentType]);
    // Recorded before the bytes go out: the read is audited even if the client hangs up halfway.
    await app.auditLog.record(auditContextOf(request), {
      action: 'document.read_content',
      outcome: 'success',
      httpStatus: 200,
      resourceType: 'document',
      resourceId: document.id,
      patientId: referral.patientId,
    });
    const content = documentBytes(app.db, document);
    return reply.headers(content.headers).send(content.stream as never);
  });

  app.delete('/referrals/:id/documents/:documentId', {
    config: { policy: writePolicy, auditAction: 'document.retract', auditResource: referralResource },
    schema: {
      tags,
      operationId: 'retractDocument',
      summary: 'Retract a document: hidden from then on, kept, audited',
      description: 'Only by someone of the organization that uploaded it (others of the care team: 403). The optional reason is kept with it.',
      params: DocumentParams,
      body: RetractDocument,
      // The body is optional: a bare DELETE retracts without a reason.
      [optionalBodyKeyword]: true,
      response: { 204: Type.Null({ description: 'Retracted' }) },
    },
    preValidation: emptyBodyAsObject,
  }, async (request, reply) => {
    const principal = request.principal!;
    const { id, documentId } = request.params;
    const retracted = await app.unitOfWork.run(auditContextOf(request), async (unit) => {
      const referral = await lockCareTeamReferral(app.referrals, principal, id, unit.tx);
      if (!referral) return false;
      const document = await repository.find({ referralId: referral.id, documentId }, unit.tx);
      const target = { resourceType: 'document', resourceId: documentId, patientId: referral.patientId };
      if (!document) throw notFound('document', documentId, 'Document', referral.patientId);
      if (document.uploaderOrganizationId !== principal.organizationId) {
        throw accessDenied('Only the organization that uploaded a document may retract it', target);
      }
      // A retraction racing this one has hidden it already: to this caller it is gone.
      if (!(await repository.retract({ documentId, retractedBy: principal.id, reason: request.body.reason }, unit.tx))) {
        throw notFound('document', documentId, 'Document', referral.patientId);
      }
      unit.audit({ action: 'document.retract', httpStatus: 204, ...target });
      return true;
    });
    // After the transaction: the 404 reads the referral's patient for the audit.
    if (!retracted) throw await app.referrals.notFound(id);
    return reply.code(204).send(null);
  });
};

export default documentRoutes;
