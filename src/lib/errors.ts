// The catalogue of errors the API answers with; the error handler turns each into problem details.
import { createRFC9457Error } from '@fastify/error';

const problemType = (slug: string) => `urn:massage-referral:problem:${slug}`;

export const NotFoundError = createRFC9457Error('NOT_FOUND', '%s not found', 404, {
  type: problemType('not-found'),
  title: 'Not Found',
});
export const ForbiddenError = createRFC9457Error('FORBIDDEN', '%s', 403, {
  type: problemType('forbidden'),
  title: 'Forbidden',
});
export const UnauthorizedError = createRFC9457Error('UNAUTHORIZED', '%s', 401, {
  type: problemType('unauthorized'),
  title: 'Unauthorized',
});
export const ConflictError = createRFC9457Error('CONFLICT', '%s', 409, {
  type: problemType('conflict'),
  title: 'Conflict',
});
export const ValidationError = createRFC9457Error('VALIDATION_FAILED', '%s', 400, {
  type: problemType('validation-failed'),
  title: 'Validation Failed',
});
export const RateLimitedError = createRFC9457Error('RATE_LIMITED', 'Rate limit of %d requests per minute exceeded; retry in %d s', 429, {
  type: problemType('rate-limited'),
  title: 'Too Many Requests',
});
export const PreconditionFailedError = createRFC9457Error('PRECONDITION_FAILED', '%s', 412, {
  type: problemType('precondition-failed'),
  title: 'Precondition Failed',
});
export const UnprocessableError = createRFC9457Error('UNPROCESSABLE', '%s', 422, {
  type: problemType('unprocessable'),
  title: 'Unprocessable Content',
});
export const ServiceUnavailableError = createRFC9457Error('SERVICE_UNAVAILABLE', '%s', 503, {
  type: problemType('service-unavailable'),
  title: 'Service Unavailable',
});
/** OAuth 2.0 token endpoint errors keep the RFC 6749 `error` code beside the problem details. */
export const OAuthError = createRFC9457Error('OAUTH_ERROR', '%s', 400, {
  type: problemType('oauth'),
  title: 'Token Request Rejected',
});

export interface FieldProblem {
  field: string;
  message: string;
}

/** Extra members the error handler copies into the problem body. */
export interface ProblemExtensions {
  errors?: FieldProblem[];
  error?: string;
  /** A stable, machine-readable reason, e.g. illegal-transition or visits-exhausted. */
  code?: string;
  currentStatus?: string;
  allowedMoves?: string[];
  currentVersion?: number;
  headers?: Record<string, string>;
}

/** The resource a refused request was aimed at, so the attempt can be audited. */
export interface DeniedResource {
  resourceType: string;
  resourceId: string;
  patientId?: string;
}

type WithExtensions<E> = E & { extensions?: ProblemExtensions; deniedResource?: DeniedResource };

export function notFound(resourceType: string, resourceId: string, label = resourceType, patientId?: string) {
  const error: WithExtensions<InstanceType<typeof NotFoundError>> = new NotFoundError(label);
  error.deniedResource = { resourceType, resourceId, ...(patientId ? { patientId } : {}) };
  return error;
}

export function validationFailed(errors: FieldProblem[]) {
  const error: WithExtensions<InstanceType<typeof ValidationError>> = new ValidationError(
    errors.map((problem) => `${problem.field}: ${problem.message}`).join('; '),
  );
  error.extensions = { errors };
  return error;
}

export function oauthError(code: string, description: string, statusCode = 400, headers?: Record<string, string>) {
  const error: WithExtensions<InstanceType<typeof OAuthError>> = new OAuthError(description);
  (error as { statusCode: number }).statusCode = statusCode;
  error.extensions = { error: code, ...(headers ? { headers } : {}) };
  return error;
}

/** A 409 with a machine-readable code (and any other members) beside the message. */
export function conflict(code: string, message: string, extensions: Omit<ProblemExtensions, 'code'> = {}) {
  const error: WithExtensions<InstanceType<typeof ConflictError>> = new ConflictError(message);
  error.extensions = { code, ...extensions };
  return error;
}

/** Seconds a client is asked to wait before retrying a request the database could not serve. */
export const retryAfterSeconds = 1;

/** A 503 that tells the client when to come back; nothing was changed. */
export function serviceUnavailable(message = 'The database is temporarily unavailable; nothing was changed, retry shortly') {
  const error: WithExtensions<InstanceType<typeof ServiceUnavailableError>> = new ServiceUnavailableError(message);
  error.extensions = { headers: { 'retry-after': String(retryAfterSeconds) } };
  return error;
}
