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
export const NotAcceptableError = createRFC9457Error('NOT_ACCEPTABLE', '%s', 406, {
  type: problemType('not-acceptable'),
  title: 'Not Acceptable',
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
/**
 * OAuth 2.0 token endpoint errors keep the RFC 6749 `error` code beside the problem details. Its
 * status is a number, not 400 alone: a client that failed to authenticate is told 401 (§5.2).
 */
export const OAuthError = createRFC9457Error<'OAUTH_ERROR', number>('OAUTH_ERROR', '%s', 400, {
  type: problemType('oauth'),
  title: 'Token Request Rejected',
});

export interface FieldProblem {
  field: string;
  message: string;
}

/** Extra members the error handler copies into the problem body, and headers it sends with it. */
export interface ProblemExtensions {
  errors?: FieldProblem[];
  error?: string;
  /** A stable, machine-readable reason, e.g. illegal-transition or visits-exhausted. */
  code?: string;
  currentStatus?: string;
  allowedMoves?: string[];
  currentVersion?: number;
  /** Each reason a request cannot go ahead, e.g. a license both expired and unverified. */
  reasons?: string[];
  headers?: Record<string, string>;
}

/** The record a refused request was aimed at (none for a refused list or create), so the attempt is audited. */
export interface DeniedResource {
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  patientId?: string | undefined;
}

/** What an error of the catalogue may carry besides its message; each is given when the error is made, never added later. */
export interface ProblemParts {
  readonly extensions?: ProblemExtensions;
  /** Marks a refusal the audit log records (modules/audit/refusal-audit.ts). */
  readonly deniedResource?: DeniedResource;
}

// Each catalogue error that carries more than its message gets a subclass whose constructor takes it
// all, so no error is changed after it is made.

class RecordNotFoundError extends NotFoundError {
  constructor(
    label: string,
    readonly deniedResource: DeniedResource,
  ) {
    super(label);
  }
}

class AccessDeniedError extends ForbiddenError {
  constructor(
    message: string,
    readonly deniedResource: DeniedResource,
  ) {
    super(message);
  }
}

class FieldsInvalidError extends ValidationError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class TokenRequestRejectedError extends OAuthError {
  constructor(
    description: string,
    override readonly statusCode: number,
    readonly extensions: ProblemExtensions,
  ) {
    super(description);
  }
}

class ConflictWithCodeError extends ConflictError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class UnprocessableWithCodeError extends UnprocessableError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class StaleVersionError extends PreconditionFailedError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

class RetryLaterError extends ServiceUnavailableError {
  constructor(
    message: string,
    readonly extensions: ProblemExtensions,
  ) {
    super(message);
  }
}

/** A record that does not exist or is out of the caller's reach: one answer for both, and the attempt audited. */
export function notFound(resourceType: string, resourceId: string, label = resourceType, patientId?: string) {
  return new RecordNotFoundError(label, { resourceType, resourceId, ...(patientId ? { patientId } : {}) });
}

/**
 * The 404 of a record reached through another (a message through its referral) when the way there
 * was refused: the same answer, audited against the record asked for and the patient the refusal
 * named. Any other error is returned as it is.
 */
export function renamedNotFound(error: unknown, resourceType: string, resourceId: string, label = resourceType): unknown {
  if (!(error instanceof RecordNotFoundError)) return error;
  return notFound(resourceType, resourceId, label, error.deniedResource.patientId);
}

/** A 403 for a caller whose role or scopes the route's policy does not admit; the attempt is audited against the route's record. */
export function accessDenied(message: string, target: DeniedResource) {
  return new AccessDeniedError(message, target);
}

export function validationFailed(errors: FieldProblem[]) {
  return new FieldsInvalidError(errors.map((problem) => `${problem.field}: ${problem.message}`).join('; '), { errors });
}

export function oauthError(code: string, description: string, statusCode = 400, headers?: Record<string, string>) {
  return new TokenRequestRejectedError(description, statusCode, { error: code, ...(headers ? { headers } : {}) });
}

/** A 409 with a machine-readable code (and any other members or headers) beside the message. */
export function conflict(code: string, message: string, extensions: Omit<ProblemExtensions, 'code'> = {}) {
  return new ConflictWithCodeError(message, { code, ...extensions });
}

/** A 422 with a machine-readable code: the request is well formed but misses what the rule asks for (e.g. an acknowledgement). */
export function unprocessable(code: string, message: string, extensions: Omit<ProblemExtensions, 'code'> = {}) {
  return new UnprocessableWithCodeError(message, { code, ...extensions });
}

/** A 406 for an Accept header that names none of the formats the resource is served in. */
export function notAcceptable(formats: readonly string[]) {
  return new NotAcceptableError(`This resource is served as ${formats.join(' or ')}; the Accept header asks for neither`);
}

/** A 412 for an If-Match that names another version than the current one, which it tells. */
export function versionMismatch(message: string, currentVersion: number) {
  return new StaleVersionError(message, { currentVersion });
}

/** Seconds a client is asked to wait before retrying a request the database could not serve. */
export const retryAfterSeconds = 1;

/** A 503 that tells the client when to come back; nothing was changed. */
export function serviceUnavailable(message = 'The database is temporarily unavailable; nothing was changed, retry shortly') {
  return new RetryLaterError(message, { headers: { 'retry-after': String(retryAfterSeconds) } });
}
