// Every refusal under /fhir/R4 is an OperationOutcome with the meaning of the /v1 problem: the same
// status, headers and detail, its problem type as a code of urn:massage-referral:problem, one issue
// per offending field (FHIR clients show issues, not problem members).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { answerTo, type ProblemAnswer, type RaisedError } from '../../plugins/problem-details.js';
import { systems } from './codes.js';
import { fhirJson } from './http.js';

type IssueType = 'invalid' | 'required' | 'value' | 'login' | 'forbidden' | 'not-found' | 'not-supported' | 'conflict' | 'business-rule' | 'too-long' | 'throttled' | 'exception' | 'transient';

const issueTypeOfStatus: Record<number, IssueType> = {
  400: 'invalid',
  401: 'login',
  403: 'forbidden',
  404: 'not-found',
  405: 'not-supported',
  406: 'not-supported',
  408: 'transient',
  409: 'conflict',
  412: 'conflict',
  413: 'too-long',
  414: 'too-long',
  415: 'not-supported',
  422: 'business-rule',
  429: 'throttled',
  503: 'transient',
};

/** The problem's type as a short code: `urn:massage-referral:problem:not-found` → `not-found`; about:blank → the status's. */
function problemCode({ problem }: ProblemAnswer): string {
  // A refusal of the workflow names its rule (illegal-transition, signature-required): the code partners branch on.
  if ('code' in problem && typeof problem.code === 'string') return problem.code;
  const prefix = `${systems.problem}:`;
  if (problem.type.startsWith(prefix)) return problem.type.slice(prefix.length);
  return problem.title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function issueTypeOf(answer: ProblemAnswer): IssueType {
  // A rule of the workflow said no (an illegal move, a signature required), not a clash of writes.
  if (answer.status === 409 && 'code' in answer.problem && answer.problem.code !== 'idempotency-in-progress') return 'business-rule';
  return issueTypeOfStatus[answer.status] ?? (answer.status >= 500 ? 'exception' : 'invalid');
}

export function operationOutcomeOf(answer: ProblemAnswer) {
  const details = { coding: [{ system: systems.problem, code: problemCode(answer) }] };
  const severity = answer.status >= 500 ? 'fatal' : 'error';
  const fieldProblems = answer.problem.errors ?? [];
  const issue =
    fieldProblems.length > 0
      ? fieldProblems.map((field) => ({
          severity,
          code: answer.status !== 400 ? issueTypeOf(answer) : field.message === 'is required' ? 'required' : 'invalid',
          details: { ...details, text: `${field.field}: ${field.message}` },
          // A FHIR element path (ServiceRequest.reasonCode[0]) is an expression; a query parameter is not.
          ...(/^[A-Z][A-Za-z]+(\.|$)/.test(field.field) && { expression: [field.field] }),
          diagnostics: answer.problem.detail,
        }))
      : [{ severity, code: issueTypeOf(answer), details: { ...details, text: answer.problem.title }, diagnostics: answer.problem.detail }];
  return { resourceType: 'OperationOutcome', issue };
}

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
