// FHIR's HTTP conventions (https://hl7.org/fhir/R4/http.html) for the façade: JSON only, in
// application/fhir+json; _format and Accept negotiate; versions are weak ETags; search pages are
// absolute links built on PUBLIC_BASE_URL (never on the request's Host header, which a client sets).
import type { FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import { NotAcceptableError } from '../../lib/errors.js';

export const fhirJson = 'application/fhir+json';
const contentType = `${fhirJson}; charset=utf-8`;
const jsonFormats = new Set(['json', fhirJson, 'application/json']);

/** Answers 406 unless the client takes JSON, as _format (which wins) or Accept asks. */
export function assertJsonAccepted(request: FastifyRequest): void {
  const format = (request.query as Record<string, unknown> | undefined)?._format;
  if (typeof format === 'string') {
    if (!jsonFormats.has(format.split(';')[0]!.trim())) throw notAcceptable(`_format ${format} is not served; this server speaks FHIR JSON only`);
    return;
  }
  if (request.headers.accept === undefined) return;
  const accepted = new Negotiator(request).mediaType([fhirJson, 'application/json']);
  if (!accepted) throw notAcceptable(`Accept ${request.headers.accept} names no format served; ask for ${fhirJson}`);
}

function notAcceptable(detail: string) {
  return new NotAcceptableError(detail);
}

/** A weak ETag of a version, as FHIR servers send it. */
export const weakEtagOf = (version: number | string) => `W/"${version}"`;

export function sendResource(reply: FastifyReply, resource: { resourceType: string; meta?: { versionId?: string; lastUpdated?: string } }, status = 200) {
  const { versionId, lastUpdated } = resource.meta ?? {};
  if (versionId) reply.header('etag', weakEtagOf(versionId));
  if (lastUpdated) reply.header('last-modified', new Date(lastUpdated).toUTCString());
  return reply.code(status).type(contentType).send(JSON.stringify(resource));
}

export function sendBundle(reply: FastifyReply, bundle: object) {
  return reply.code(200).type(contentType).send(JSON.stringify(bundle));
}
