// Turns every failure into RFC 9457 problem details; a 5xx never shows its cause to the client.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { badRequestFromDataException, conflictFromUniqueViolation } from '../db/constraint-errors.js';
import { transientDatabaseCode } from '../db/transient-errors.js';
import { serviceUnavailable, type DeniedResource, type FieldProblem, type ProblemExtensions } from '../lib/errors.js';
import { auditContextOf, auditTargetOf } from '../modules/audit/audit-log.js';

type ApiError = FastifyError & {
  extensions?: ProblemExtensions;
  deniedResource?: DeniedResource;
  /** Present on errors of our catalogue (@fastify/error's RFC 9457 errors). */
  toProblemDetails?: () => { type: string; title: string };
};

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

export const problemContentType = 'application/problem+json';

const refusedChanges = new Set([409, 412, 422]);
const maxFieldProblems = 25;

const statusTitles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Turns Ajv's errors into one entry per offending field, named as the client wrote it. */
export function fieldProblems(errors: AjvError[], location: string | undefined): FieldProblem[] {
  const seen = new Map<string, FieldProblem>();
  for (const error of errors) {
    let path = error.instancePath.split('/').slice(1).map(decodePointer);
    let message = error.message ?? 'is invalid';
    if (error.keyword === 'additionalProperties') {
      path = [...path, String(error.params.additionalProperty)];
      message = 'is not a recognised field';
    } else if (error.keyword === 'required') {
      path = [...path, String(error.params.missingProperty)];
      message = 'is required';
    } else if (error.keyword === 'enum') {
      message = `must be one of: ${(error.params.allowedValues as unknown[]).join(', ')}`;
    }
    const field = [location === 'body' ? undefined : location === 'querystring' ? 'query' : location, ...path].filter(Boolean).join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
    const key = `${field}\u0000${message}`;
    // Union branches repeat the same complaint; one line each is enough.
    if (!seen.has(key)) seen.set(key, { field: field || (location ?? 'body'), message });
  }
  const problems = [...seen.values()];
  // A request wrong in thousands of places needs no answer thousands of lines long.
  if (problems.length <= maxFieldProblems) return problems;
  return [
    ...problems.slice(0, maxFieldProblems),
    { field: location === 'querystring' ? 'query' : (location ?? 'body'), message: `and ${problems.length - maxFieldProblems} more problems` },
  ];
}

function decodePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

export default fp(
  async (app) => {
    app.setErrorHandler(async (raisedError: ApiError, request, reply) => {
      if (clientWentAway(raisedError, request)) {
        // Its socket codes (ECONNRESET) are the client's, not the database's: no false alarm.
        request.log.info({ code: raisedError.code }, 'the client closed the connection before its request was read');
        return sendProblem(request, reply, 400, { type: 'about:blank', title: 'Bad Request', detail: 'The request body did not arrive whole' });
      }
      const transientCode = transientDatabaseCode(raisedError);
      if (transientCode) {
        // Only the code: the driver's message may quote the statement and its parameters.
        request.log.warn({ code: transientCode }, 'database unavailable; answered 503');
        raisedError = serviceUnavailable();
      }
      const dataException = badRequestFromDataException(raisedError);
      if (dataException) request.log.warn({ err: raisedError }, 'the database refused a value the schemas let through');
      const error: ApiError = conflictFromUniqueViolation(raisedError) ?? dataException ?? raisedError;
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;

      if (error.validation) {
        const errors = fieldProblems(error.validation as AjvError[], error.validationContext);
        return sendProblem(request, reply, 400, {
          type: 'urn:massage-referral:problem:validation-failed',
          title: 'Validation Failed',
          detail: errors.map((problem) => `${problem.field}: ${problem.message}`).join('; '),
          errors,
        });
      }

      if (status >= 500 && !error.toProblemDetails) {
        request.log.error({ err: error }, 'request failed');
        return sendProblem(request, reply, status, {
          type: 'about:blank',
          title: statusTitles[status] ?? 'Server Error',
          detail: status === 503 ? 'The service is temporarily unavailable; retry shortly' : 'An unexpected error occurred; it has been logged',
        });
      }

      // Refusals go through the denial aggregator: identical repeats within a window are counted.
      if (error.deniedResource) {
        await app.auditLog.recordDenial(auditContextOf(request), {
          action: request.routeOptions.config.auditAction ?? 'access.denied',
          outcome: 'denied',
          httpStatus: status,
          ...error.deniedResource,
        });
      } else if (refusedChanges.has(status) && request.principal && request.routeOptions.config.auditAction) {
        // A change of a record that the rules refused (illegal move, stale version, reused key) is
        // an attempt on that record too; the transaction that would have made it rolled back.
        await app.auditLog.recordDenial(auditContextOf(request), {
          action: request.routeOptions.config.auditAction,
          outcome: 'error',
          httpStatus: status,
          ...auditTargetOf(request),
        });
      }
      for (const [name, value] of Object.entries(error.extensions?.headers ?? {})) reply.header(name, value);
      const { headers: _headers, ...extensions } = error.extensions ?? {};
      const catalogued = error.toProblemDetails?.();
      return sendProblem(request, reply, status, {
        type: catalogued?.type ?? 'about:blank',
        title: catalogued?.title ?? statusTitles[status] ?? 'Error',
        detail: error.message,
        ...extensions,
      });
    });

    app.setNotFoundHandler(async (request, reply) =>
      sendProblem(request, reply, 404, {
        type: 'about:blank',
        title: 'Not Found',
        detail: `No route for ${request.method} ${request.url.split('?')[0]}`,
      }),
    );
  },
  { name: 'problem-details', dependencies: ['audit-log'] },
);

/** The request body failed because its sender closed the connection mid-way (Fastify marks it a 400). */
function clientWentAway(error: ApiError, request: FastifyRequest): boolean {
  return request.raw.readableAborted || (error.statusCode === 400 && (error.code === 'ECONNRESET' || error.code === 'ECONNABORTED' || error.code === 'EPIPE'));
}

function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  problem: { type: string; title: string; detail: string } & Omit<ProblemExtensions, 'headers'>,
) {
  return reply
    .code(status)
    .type(problemContentType)
    .send({ ...problem, status, instance: request.url.split('?')[0], requestId: request.id });
}
