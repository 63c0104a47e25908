// A body a route may go without (accept, mark read, retract): an empty request is validated as an
// empty object, and the OpenAPI document says the body is optional, or a generated client would
// make every caller send {}.
import type { FastifyRequest } from 'fastify';

/** Set on the route's schema; the document's generation turns it into requestBody.required: false. */
export const optionalBodyKeyword = 'x-body-optional';

export async function emptyBodyAsObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined) request.body = {};
}
