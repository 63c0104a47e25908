// Refused requests are audited: a record out of the caller's reach (404), a role or scope the route's
// policy does not admit (403), a change the rules refused (409, 412, 422). The audit write ends
// before the answer leaves, and should it fail the answer becomes a 5xx: no refusal goes out
// unaudited, as no change lands unaudited.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { replaceProblem, type RaisedError } from '../../plugins/problem-details.js';
import { auditContextOf, auditTargetOf, type AuditEntry } from './audit-log.js';

const refusedChanges = new Set([409, 412, 422]);

/** The audit entry for answering `error` with `status`, when that answer refused the caller. */
function refusalOf(error: RaisedError, status: number, request: FastifyRequest): AuditEntry | undefined {
  const action = request.routeOptions.config.auditAction;
  // Answered as itself (not as a client that went away mid-request), the error names what was refused.
  if (error.deniedResource && status === error.statusCode) {
    return { action: action ?? 'access.denied', outcome: 'denied', httpStatus: status, ...error.deniedResource };
  }
  // A change of a record that the rules refused (illegal move, stale version, reused key) is
  // an attempt on that record too; the transaction that would have made it rolled back.
  if (refusedChanges.has(status) && request.principal && action) {
    return { action, outcome: 'error', httpStatus: status, ...auditTargetOf(request) };
  }
  return undefined;
}

export default fp(
  async (app) => {
    // onError meets the error before the error handler answers it, and cannot fail that answer
    // (Fastify ignores what an onError hook throws); onSend runs once the answer's status is
    // decided and before it is written, and can. So the one notes the error, the other audits.
    const raised = new WeakMap<FastifyRequest, RaisedError>();
    app.addHook('onError', async (request, _reply, error) => {
      raised.set(request, error);
    });
    app.addHook('onSend', async (request, reply, payload) => {
      const error = raised.get(request);
      if (!error) return payload;
      raised.delete(request);
      const refusal = refusalOf(error, reply.statusCode, request);
      if (!refusal) return payload;
      try {
        // Refusals go through the denial aggregator: identical repeats within a window are counted.
        await app.auditLog.recordDenial(auditContextOf(request), refusal);
        return payload;
      } catch (failure) {
        return replaceProblem(request, reply, error, failure);
      }
    });
  },
  { name: 'refusal-audit', dependencies: ['audit-log'] },
);
