// Every refusal under /fhir/R4 is an OperationOutcome with the meaning of the /v1 problem: the same
// status, headers and detail, its problem type as a code of urn:massage-referral:problem, one issue
// per offending field (FHIR clients show issues, not problem members).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { operationOutcomeOf } from '../../plugins/operation-outcome.js';
import { answerTo, type ProblemAnswer, type RaisedError } from '../../plugins/problem-details.js';
import { fhirJson } from './http.js';

export function sendOperationOutcome(request: FastifyRequest, reply: FastifyReply, answer: ProblemAnswer) {
  for (const [name, value] of Object.entries(answer.headers)) reply.header(name, value);
  return reply.code(answer.status).type(fhirJson).send(JSON.stringify(operationOutcomeOf(answer)));
}

/** For the FHIR routes' context: errors raised by routes and hooks, and unknown paths under the prefix. */
export function outcomeErrorHandler(error: RaisedError, request: FastifyRequest, reply: FastifyReply) {
  return sendOperationOutcome(request, reply, answerTo(error, request));
}

export function outcomeNotFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  const path = request.url.split('?')[0] ?? '';
  return sendOperationOutcome(request, reply, {
    status: 404,
    problem: { type: 'about:blank', title: 'Not Found', detail: `No FHIR interaction for ${request.method} ${path}; see ${'/fhir/R4/metadata'}` },
    headers: {},
  });
}
