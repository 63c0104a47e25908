// Reports to the prescriber and documents shared on a referral as FHIR DocumentReferences (id = the
// report's or the document's id), their bytes as the Binary of the same id: a report as its PDF, a
// document as stored. A document's SHA-256 is not put in attachment.hash, which R4 defines as SHA-1.
import type { Document } from '../../documents/index.js';
import type { Report } from '../../clinical-reports/index.js';
import { systems, threadSystems } from '../codes.js';
import { organization, patient, practitioner, serviceRequest } from './references.js';
import type { ThreadContext } from './thread-context.js';

const kindTitles: Record<Report['kind'], string> = { evaluation: 'Evaluation and plan of care', progress: 'Progress report', discharge: 'Discharge summary' };

/** LOINC document types where one says what the report is; an evaluation keeps the local code alone until one is agreed. */
const kindLoinc: Partial<Record<Report['kind'], { code: string; display: string }>> = {
  progress: { code: '11506-3', display: 'Progress note' },
  discharge: { code: '18842-5', display: 'Discharge summary' },
};

const categoryTitles: Record<Document['category'], string> = {
  prescription: 'Prescription',
  imaging: 'Imaging',
  intake: 'Intake form',
  insurance: 'Insurance',
  report: 'Report',
  other: 'Other document',
};

const binaryUrl = (base: string, id: string) => `${base}/Binary/${id}`;

function context(thread: ThreadContext) {
  return { related: [serviceRequest(thread.referralId)] };
}

export function reportDocumentReference(report: Report, thread: ThreadContext, base: string) {
  const loinc = kindLoinc[report.kind];
  const title = kindTitles[report.kind];
  return {
    resourceType: 'DocumentReference',
    id: report.id,
    meta: { lastUpdated: report.signature?.signedAt ?? report.createdAt },
    status: 'current',
    // Signed by the prescriber, the report is final; until then the physician has not attested it.
    docStatus: report.signature ? 'final' : 'preliminary',
    type: {
      coding: [...(loinc ? [{ system: systems.loinc, ...loinc }] : []), { system: threadSystems.reportKind, code: report.kind, display: title }],
      text: title,
    },
    category: [{ coding: [{ system: threadSystems.documentCategory, code: 'report', display: categoryTitles.report }] }],
    ...(thread.identified && { subject: patient(thread.patientId) }),
    date: report.createdAt,
    author: [practitioner(report.authorId)],
    ...(report.signature && { authenticator: practitioner(report.signature.signedBy) }),
    description: `${title} to the prescriber`,
    content: [{ attachment: { contentType: 'application/pdf', url: binaryUrl(base, report.id), title: `${title} (${report.createdAt.slice(0, 10)})`, creation: report.createdAt } }],
    context: context(thread),
  };
}

export function sharedDocumentReference(document: Document, thread: ThreadContext, base: string) {
  const uploader = document.uploadedBy;
  return {
    resourceType: 'DocumentReference',
    id: document.id,
    meta: { lastUpdated: document.createdAt },
    status: 'current',
    type: { coding: [{ system: threadSystems.documentCategory, code: document.category, display: categoryTitles[document.category] }], text: categoryTitles[document.category] },
    ...(thread.identified && { subject: patient(thread.patientId) }),
    date: document.createdAt,
    author: [uploader.type === 'user' ? practitioner(uploader.id) : organization(uploader.organizationId)],
    description: document.title,
    content: [
      {
        attachment: { contentType: document.contentType, url: binaryUrl(base, document.id), size: document.sizeBytes, title: document.title, creation: document.createdAt },
      },
    ],
    context: context(thread),
  };
}

/** The bytes as a FHIR Binary (for a client that asks for FHIR JSON rather than the bytes themselves). */
export function toBinary(id: string, contentType: string, bytes: Buffer) {
  return {
    resourceType: 'Binary',
    id,
    contentType,
    securityContext: { reference: `DocumentReference/${id}` },
    data: bytes.toString('base64'),
  };
}
