// DocumentReference and Binary: reports to the prescriber (as PDFs) and documents shared on a
// referral, and their bytes, with the rules, 404s and audit events of /v1/referrals/{id}/reports
// and /documents: reports to whoever takes part in the referral's care, documents to its care team
// that may know the patient; retracted documents are gone.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import { notAcceptable, notFound, renamedNotFound } from '../../../lib/errors.js';
import { documentContentTypes } from '../../../lib/vocabulary.js';
import { auditContextOf } from '../../audit/audit-log.js';
import type { Principal } from '../../auth/policy.js';
import { reportById, reportPdf, reportsOf, type Report } from '../../clinical-reports/index.js';
import { careTeamReferral, documentById, documentBytes, documentsOf, type Document } from '../../documents/index.js';
import { referralReadPolicy, type ReferralWorkflow } from '../../referrals/index.js';
import { assertJsonAccepted, fhirJson, sendBundle, sendResource } from '../http.js';
import { reportDocumentReference, sharedDocumentReference, toBinary } from '../map/document-reference.js';
import { contextOfRecord, type ThreadContext } from '../map/thread-context.js';
import { binaryDefinition, documentReferenceDefinition } from '../resources.js';
import { fhirResource, readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling } from '../search/params.js';
import { commonFilter, readAcross, resolveAnchor, type Segment } from './thread-search.js';

type Found =
  | { kind: 'report'; report: Report; context: ThreadContext; care: Awaited<ReturnType<ReferralWorkflow['readCare']>> }
  | { kind: 'document'; document: Document; context: ThreadContext };

const jsonTypes = [fhirJson, 'application/json'];

const documentRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  /** The report or document of this id as the caller may see it; the 404 of a missing one for anyone else. */
  async function readable(principal: Principal, id: string): Promise<Found> {
    const report = await reportById(app.db, id);
    if (report) {
      try {
        const care = await app.referrals.readCare(principal, report.referralId);
        return { kind: 'report', report, care, context: contextOfRecord(principal, care.referral) };
      } catch (error) {
        throw renamedNotFound(error, 'report', id, 'DocumentReference');
      }
    }
    const document = await documentById(app.db, id);
    if (!document) throw notFound('document', id, 'DocumentReference');
    try {
      return { kind: 'document', document, context: contextOfRecord(principal, await careTeamReferral(app.referrals, principal, document.referralId)) };
    } catch (error) {
      throw renamedNotFound(error, 'document', id, 'DocumentReference');
    }
  }

  const audit = (request: FastifyRequest, entries: { action: string; resourceType: string; resourceId: string; patientId: string }[]) =>
    app.auditLog.recordMany(auditContextOf(request), entries.map((entry) => ({ ...entry, outcome: 'success' as const, httpStatus: 200 })));

  const documentReferenceOf = (found: Found) =>
    found.kind === 'report' ? reportDocumentReference(found.report, found.context, base) : sharedDocumentReference(found.document, found.context, base);

  app.get('/DocumentReference/:id', {
    config: { policy: referralReadPolicy, auditAction: 'document.read' },
    schema: readSchema(documentReferenceDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const found = await readable(request.principal!, request.params.id);
    const [action, resourceType] = found.kind === 'report' ? ['report.read', 'report'] : ['document.read', 'document'];
    await audit(request, [{ action, resourceType, resourceId: request.params.id, patientId: found.context.patientId }]);
    return sendResource(reply, documentReferenceOf(found));
  });

  app.get('/DocumentReference', {
    config: { policy: referralReadPolicy, auditAction: 'document.list' },
    schema: searchSchema(documentReferenceDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const search = parseSearch(request.query as Record<string, unknown>, documentReferenceDefinition.searchParams, { strict: wantsStrictHandling(request.headers.prefer) });
    const { contexts } = await resolveAnchor(app, request, search, ['related', 'based-on', 'patient'], 'document.list');
    // Reports to whoever takes part in the care; documents only to those of them who may know the patient.
    const segments: Segment[] = contexts.flatMap((context) => [
      { context, source: 'reports' },
      ...(context.identified ? [{ context, source: 'shared-documents' }] : []),
    ]);
    const page = await readAcross<Found>(segments, { cursor: search.cursor, count: search.count, keyShape: ['micros', 'uuid'] }, async ({ context, source }, after, limit) => {
      const key = after as [string, string] | undefined;
      if (source === 'reports') {
        const rows = await reportsOf(app.db, context.referralId, { after: key, limit });
        return rows.map(({ report, cursorTime }) => ({ item: { kind: 'report', report, context } as Found, key: [cursorTime, report.id] }));
      }
      const rows = await documentsOf(app.db, context.referralId, { after: key, limit });
      return rows.map(({ document, cursorTime }) => ({ item: { kind: 'document', document, context } as Found, key: [cursorTime, document.id] }));
    });
    // As the /v1 lists: each report shown is a read of it; a referral's documents listed, a read of the list.
    await audit(request, [
      ...page.items.flatMap(({ item }) =>
        item.kind === 'report' ? [{ action: 'report.read', resourceType: 'report', resourceId: item.report.id, patientId: item.context.patientId }] : [],
      ),
      ...page.visited
        .filter(({ source }) => source === 'shared-documents')
        .map(({ context }) => ({ action: 'document.list', resourceType: 'referral', resourceId: context.referralId, patientId: context.patientId })),
    ]);
    const entries = page.items.map(({ item }) => documentReferenceOf(item)).filter(commonFilter(search)).map((resource) => ({ resource, mode: 'match' as const }));
    const applied = search.applied.filter(([name]) => name !== '_cursor');
    const next = page.next ? searchUrl(base, 'DocumentReference', [...applied, ['_cursor', page.next]]) : undefined;
    return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, 'DocumentReference', search.applied), next }));
  });

  /** FHIR JSON when Accept or _format asks for it (a Binary resource), else the bytes themselves. */
  function wantsResource(request: FastifyRequest, contentType: string): boolean {
    const format = (request.query as Record<string, unknown>)._format;
    if (typeof format === 'string') {
      assertJsonAccepted(request);
      return true;
    }
    const chosen = new Negotiator(request).mediaType([contentType, ...jsonTypes]);
    if (chosen === undefined) throw notAcceptable([contentType, fhirJson]);
    return jsonTypes.includes(chosen);
  }

  async function sendBytes(reply: FastifyReply, id: string, found: Found, asResource: boolean) {
    if (found.kind === 'report') {
      const pdf = await reportPdf(app.db, found.report, found.care, reply.request.principal!);
      if (asResource) return sendResource(reply, toBinary(id, 'application/pdf', pdf));
      return reply.type('application/pdf').header('content-disposition', `attachment; filename="report-${id}.pdf"`).send(pdf as never);
    }
    const { headers, stream } = documentBytes(app.db, found.document);
    if (!asResource) return reply.headers(headers).send(stream as never);
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return sendResource(reply, toBinary(id, found.document.contentType, Buffer.concat(parts)));
  }

  const binaryContentTypes = ['application/pdf', ...documentContentTypes.filter((type) => type !== 'application/pdf')];

  app.get('/Binary/:id', {
    config: { policy: referralReadPolicy, auditAction: 'document.read_content' },
    schema: {
      ...readSchema(binaryDefinition),
      response: {
        200: {
          description: 'The bytes in their own type, or (Accept: application/fhir+json) a Binary resource holding them in data',
          headers: {
            etag: { type: 'string', description: "A document's SHA-256, quoted (bytes served as themselves)" },
            'repr-digest': { type: 'string', description: "RFC 9530 sha-256 of a document's bytes" },
            'last-modified': { type: 'string' },
          },
          content: {
            ...Object.fromEntries(binaryContentTypes.map((type) => [type, { schema: { type: 'string', format: 'binary' } }])),
            [fhirJson]: { schema: fhirResource('Binary') },
          },
        },
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const found = await readable(request.principal!, id);
    const contentType = found.kind === 'report' ? 'application/pdf' : found.document.contentType;
    const asResource = wantsResource(request, contentType);
    // Audited as the /v1 reads of the same bytes, before they go out (a client hanging up halfway was still served).
    const [action, resourceType] = found.kind === 'report' ? ['report.read', 'report'] : ['document.read_content', 'document'];
    await audit(request, [{ action, resourceType, resourceId: id, patientId: found.context.patientId }]);
    return sendBytes(reply, id, found, asResource);
  });
};

export default documentRoutes;
