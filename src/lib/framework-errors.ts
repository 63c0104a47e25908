// Errors raised before a request reaches a route — by the HTTP parser (a malformed request, headers
// too large, a client too slow) or by the router (a malformed or over-long path) — answered as
// problem details like every other error.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

const problemContentType = 'application/problem+json';

function problem(status: number, detail: string, request?: { id: string; instance: string }) {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(request ? { instance: request.instance, requestId: request.id } : {}),
  };
}

/** For Fastify's `frameworkErrors`: the router could not take the path. */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path segment is too long' : 'The path is malformed';
  // The path is the client's own and goes back only in the JSON body, cut short.
  const instance = (request.url.split('?')[0] ?? '').slice(0, 256);
  reply.header('x-request-id', request.id).header('cache-control', 'no-store').code(status).type(problemContentType).send(problem(status, detail, { id: request.id, instance }));
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
  const body = JSON.stringify(problem(status, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${problemContentType}\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
