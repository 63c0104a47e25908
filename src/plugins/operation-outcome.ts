// The FHIR R4 form of a refusal: an OperationOutcome with the meaning of the /v1 problem (the same
// status, headers and detail), its problem type or rule as a code of urn:massage-referral:problem,
// one issue per offending field. Used by the FHIR façade, and by the refusals made before routing
// (a malformed path) of requests under its prefix.
import type { ProblemAnswer } from './problem-details.js';

export const fhirJson = 'application/fhir+json';
const problemSystem = 'urn:massage-referral:problem';

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
  const prefix = `${problemSystem}:`;
  if (problem.type.startsWith(prefix)) return problem.type.slice(prefix.length);
  return problem.title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function issueTypeOf(answer: ProblemAnswer): IssueType {
  // A rule of the workflow said no (an illegal move, a signature required), not a clash of writes.
  if (answer.status === 409 && 'code' in answer.problem && answer.problem.code !== 'idempotency-in-progress') return 'business-rule';
  return issueTypeOfStatus[answer.status] ?? (answer.status >= 500 ? 'exception' : 'invalid');
}

export function operationOutcomeOf(answer: ProblemAnswer) {
  const details = { coding: [{ system: problemSystem, code: problemCode(answer) }] };
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
