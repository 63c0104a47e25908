// Every failure answered as RFC 9457 problem details, in one shape and content type: errors raised by
// routes and hooks, unknown routes, and requests refused before routing (by the router or the HTTP
// parser). A 5xx never shows its cause to the client.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { badRequestFromDataException, conflictFromUniqueViolation } from '../db/constraint-errors.js';
import { transientDatabaseCode } from '../db/transient-errors.js';
import { serviceUnavailable, type FieldProblem, type ProblemExtensions, type ProblemParts } from '../lib/errors.js';
import { noStore } from './response-headers.js';
import { fhirJson, operationOutcomeOf } from './operation-outcome.js';
import { isFhirRoute } from '../lib/api-prefix.js';

export const problemContentType = 'application/problem+json';

/** An error as it reaches the handler: ours carry problem parts, Fastify's a validation, the driver's a code. */
export type RaisedError = FastifyError &
  ProblemParts & {
    /** Present on errors of our catalogue (@fastify/error's RFC 9457 errors). */
    toProblemDetails?: () => { type: string; title: string };
  };

/** A problem's members; answering adds its status and the request it answers. */
export type Problem = { type: string; title: string; detail: string } & Omit<ProblemExtensions, 'headers'>;

/** What a raised error is answered with. */
export interface ProblemAnswer {
  status: number;
  problem: Problem;
  headers: Record<string, string>;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

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

/** The body of every problem; `about` names the request it answers, when there is one. */
function problemBody(status: number, problem: Problem, about?: { instance: string; requestId: string }) {
  return { ...problem, status, ...(about && { instance: about.instance, requestId: about.requestId }) };
}

/** A routed request, named by its path without the query (which may hold what the client searched for). */
function aboutRequest(request: FastifyRequest) {
  return { instance: request.url.split('?')[0] ?? '', requestId: request.id };
}

function sendProblem(request: FastifyRequest, reply: FastifyReply, { status, problem, headers }: ProblemAnswer) {
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  return reply.code(status).type(problemContentType).send(problemBody(status, problem, aboutRequest(request)));
}

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

/** The request body failed because its sender closed the connection mid-way (Fastify marks it a 400). */
function clientWentAway(error: RaisedError, request: FastifyRequest): boolean {
  return request.raw.readableAborted || (error.statusCode === 400 && (error.code === 'ECONNRESET' || error.code === 'ECONNABORTED' || error.code === 'EPIPE'));
}

/** What a raised error is answered with; logs what operators need to know of it, which the client is not shown. */
export function answerTo(raisedError: RaisedError, request: FastifyRequest): ProblemAnswer {
  if (clientWentAway(raisedError, request)) {
    // Its socket codes (ECONNRESET) are the client's, not the database's: no false alarm.
    request.log.info({ code: raisedError.code }, 'the client closed the connection before its request was read');
    return { status: 400, problem: { type: 'about:blank', title: 'Bad Request', detail: 'The request body did not arrive whole' }, headers: {} };
  }
  let raised = raisedError;
  const transientCode = transientDatabaseCode(raised);
  if (transientCode) {
    // Only the code: the driver's message may quote the statement and its parameters.
    request.log.warn({ code: transientCode }, 'database unavailable; answered 503');
    raised = serviceUnavailable();
  }
  const dataException = badRequestFromDataException(raised);
  if (dataException) request.log.warn({ err: raised }, 'the database refused a value the schemas let through');
  const error: RaisedError = conflictFromUniqueViolation(raised) ?? dataException ?? raised;
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;

  if (error.validation) {
    const errors = fieldProblems(error.validation as AjvError[], error.validationContext);
    const detail = errors.map((problem) => `${problem.field}: ${problem.message}`).join('; ');
    return { status: 400, problem: { type: 'urn:massage-referral:problem:validation-failed', title: 'Validation Failed', detail, errors }, headers: {} };
  }

  if (status >= 500 && !error.toProblemDetails) {
    request.log.error({ err: error }, 'request failed');
    const detail = status === 503 ? 'The service is temporarily unavailable; retry shortly' : 'An unexpected error occurred; it has been logged';
    return { status, problem: { type: 'about:blank', title: statusTitles[status] ?? 'Server Error', detail }, headers: {} };
  }

  const { headers = {}, ...extensions } = error.extensions ?? {};
  const catalogued = error.toProblemDetails?.();
  return {
    status,
    problem: { type: catalogued?.type ?? 'about:blank', title: catalogued?.title ?? statusTitles[status] ?? 'Error', detail: error.message, ...extensions },
    headers,
  };
}

/**
 * For an onSend hook that fails while the answer to `answered` is on its way (auditing it, say):
 * the answer becomes the one to `failure`, with `answered`'s own headers taken off. Returns the new
 * payload. The content type stays, since both answers are problems.
 */
export function replaceProblem(request: FastifyRequest, reply: FastifyReply, answered: RaisedError, failure: unknown): ReturnType<FastifyReply['serialize']> {
  for (const name of Object.keys(answered.extensions?.headers ?? {})) reply.removeHeader(name);
  const { status, problem, headers } = answerTo(failure as RaisedError, request);
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  reply.code(status);
  return reply.serialize(problemBody(status, problem, aboutRequest(request)));
}

export default fp(
  async (app) => {
    app.setErrorHandler(async (error: RaisedError, request, reply) => sendProblem(request, reply, answerTo(error, request)));

    app.setNotFoundHandler(async (request, reply) =>
      sendProblem(request, reply, {
        status: 404,
        problem: { type: 'about:blank', title: 'Not Found', detail: `No route for ${request.method} ${request.url.split('?')[0]}` },
        headers: {},
      }),
    );
  },
  { name: 'problem-details' },
);

// Requests refused before routing get no hooks: the headers every answer carries are set here.

/** For Fastify's `frameworkErrors`: the router could not take the path. Under the FHIR prefix, as FHIR clients read refusals. */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path segment is too long' : 'The path is malformed';
  // The path is the client's own and goes back only in the JSON body, cut short.
  const path = request.url.split('?')[0] ?? '';
  const instance = path.slice(0, 256);
  const problem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', detail };
  reply.header('x-request-id', request.id).header('cache-control', noStore).code(status);
  if (isFhirRoute(path)) return reply.type(fhirJson).send(JSON.stringify(operationOutcomeOf({ status, problem, headers: {} })));
  return reply.type(problemContentType).send(problemBody(status, problem, { instance, requestId: request.id }));
}

/** For Fastify's `clientErrorHandler`: the HTTP parser refused the request, so no reply object exists. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket) {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'The request did not arrive in time']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'The request line or headers are too large']
        : [400, 'The request is not valid HTTP'];
  const body = JSON.stringify(problemBody(status, { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', detail }));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${problemContentType}\r\nCache-Control: ${noStore}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
