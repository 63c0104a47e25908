// Problem details (RFC 9457) as a thrown error, so a caller handles a refusal in one catch and
// finds the request id to quote when asking the operators about it.
import type { Middleware } from 'openapi-fetch';
import type { Problem } from './schema.js';

export class ApiProblem extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** The machine-readable reason (illegal-transition, precautions-not-acknowledged, …); the token endpoint's is `problem.error`. */
  readonly code: string | undefined;
  readonly errors: NonNullable<Problem['errors']>;
  readonly requestId: string | undefined;

  constructor(
    /** The whole answer, with the members some codes add (currentStatus, allowedMoves, currentVersion, …). */
    readonly problem: Problem,
    response: Response,
  ) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = 'ApiProblem';
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.code = problem.code ?? problem.error;
    this.errors = problem.errors ?? [];
    this.requestId = response.headers.get('x-request-id') ?? problem.requestId;
  }
}

export const problemDetails: Middleware = {
  async onResponse({ response }) {
    if (response.ok || !response.headers.get('content-type')?.startsWith('application/problem+json')) return undefined;
    throw new ApiProblem((await response.json()) as Problem, response);
  },
};
