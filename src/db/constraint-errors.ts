// Unique indexes are the last word on duplicates: two requests racing past a pre-check meet here,
// and the loser gets the same 409 the pre-check would have given it.
import { ConflictError, validationFailed } from '../lib/errors.js';

const conflictMessages: Record<string, string> = {
  organizations_npi_key: 'An organization with this NPI already exists',
  users_email_key: 'A user with this email already exists',
  api_clients_client_id_key: 'An API client with this client id already exists',
};

interface DriverError {
  code?: string;
  constraint?: string;
  constraint_name?: string;
  cause?: unknown;
}

export function conflictFromUniqueViolation(error: unknown): InstanceType<typeof ConflictError> | undefined {
  // drizzle wraps the driver's error as its cause
  for (let current = error as DriverError | undefined, depth = 0; current && depth < 3; current = current.cause as DriverError, depth++) {
    if (current.code === '23505') {
      const constraint = current.constraint_name ?? current.constraint ?? '';
      return new ConflictError(conflictMessages[constraint] ?? 'The request conflicts with an existing record');
    }
  }
  return undefined;
}

/**
 * A value the schemas let through but PostgreSQL cannot hold (SQLSTATE class 22: a date out of
 * range, a number too large) is the client's input, so a 400, never a 500. The schemas should
 * catch each such case first; this is the net under them.
 */
export function badRequestFromDataException(error: unknown) {
  for (let current = error as DriverError | undefined, depth = 0; current && depth < 3; current = current.cause as DriverError, depth++) {
    if (typeof current.code === 'string' && current.code.startsWith('22')) {
      return validationFailed([{ field: 'body', message: 'holds a value outside the range the service can store' }]);
    }
  }
  return undefined;
}
