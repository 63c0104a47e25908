// Writes of the referral through FHIR (SPEC §16 inbound): POST ServiceRequest creates a referral,
// PUT Task moves it. Each goes through the referrals module's own create and moves, so the rules,
// the unit of work, its audit events and webhooks are exactly those of /v1; only the refusals are
// renamed into FHIR's element paths.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { validationFailed, type FieldProblem } from '../../../lib/errors.js';
import { assertIfMatch } from '../../../lib/etag.js';
import { createValidatorCompiler } from '../../../lib/validation.js';
import { fieldProblems } from '../../../plugins/problem-details.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { everyone, officeRoles } from '../../auth/policy.js';
import { CreateReferralSchema, type Referral } from '../../referrals/index.js';
import { sendResource } from '../http.js';
import { fhirBodyTypes, fhirResource, resourceBody } from '../route-schemas.js';
import { createReferralOf, fhirPathOf } from '../inbound/service-request.js';
import { moveOf, strongIfMatch } from '../inbound/task-update.js';
import { validateInbound } from '../inbound/validator.js';
import { toServiceRequest } from '../map/service-request.js';
import { toTask } from '../map/task.js';
import { reportsByReferral } from '../../clinical-reports/index.js';

type Json = Record<string, any>;


/** A choice element as the client wrote it: `ServiceRequest.quantity[x]` is `quantityQuantity` in the body sent. */
function asWritten(path: string, resource: Json): string {
  return path.replace(/^(\w+)\.(\w+)\[x\]/, (whole, type: string, name: string) => {
    const written = Object.keys(resource).find((key) => key.startsWith(name) && /^[A-Z]/.test(key.slice(name.length)));
    return written ? `${type}.${written}` : whole;
  });
}

/** Structural problems first (datatypes, cardinality, unknown elements), each at its FHIR path. */
function assertStructure(resource: unknown, type: string) {
  const problems = validateInbound(resource, type);
  if (problems.length > 0) throw validationFailed(problems.map(({ path, message }) => ({ field: asWritten(path, resource as Json), message })));
}

/**
 * A refusal of the /v1 rules with its fields named where they came from in the FHIR resource: the
 * same error (status, problem type) otherwise, so a 422 stays a 422.
 */
function inFhirTerms<T>(pathOf: (field: string) => string, work: () => Promise<T>): Promise<T> {
  return work().catch((error: { statusCode?: number; extensions?: { errors?: FieldProblem[]; code?: string } }) => {
    const errors = error?.extensions?.errors;
    if (!errors) throw error;
    const renamed = errors.map((problem) => ({ ...problem, field: pathOf(problem.field) }));
    if (error.statusCode === 400 && error.extensions?.code === undefined) throw validationFailed(renamed);
    error.extensions!.errors = renamed;
    throw error;
  });
}

/** Where a /v1 field of a move's request is in the Task. */
const taskPathOf = (field: string) =>
  ({ therapistId: 'Task.owner', practiceId: 'Task.owner', network: 'Task.owner', acknowledgedPrecautions: 'Task.input', reason: 'Task.statusReason.text' })[field] ?? `Task.${field}`;

const referralWriteRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  const workflow = app.referrals;
  const checkCreate = createValidatorCompiler()({ schema: CreateReferralSchema, httpPart: 'body', method: 'POST', url: '' }) as ((value: unknown) => boolean) & { errors?: unknown[] };

  app.post('/ServiceRequest', {
    config: { policy: { roles: officeRoles, clientScope: 'referrals:write' }, auditAction: 'referral.create' },
    schema: {
      tags: ['fhir'],
      operationId: 'fhirCreateServiceRequest',
      summary: 'Create a referral from a ServiceRequest (status active sends it, draft keeps it a draft)',
      description: 'With a contained Patient (registered for your office) or Patient/{id} of your office, and one performer. Elements the server does not keep are refused by name; see the README for the mapping.',
      body: fhirResource('ServiceRequest'),
      consumes: fhirBodyTypes,
      response: { 201: { ...resourceBody('ServiceRequest', 'The referral as created'), headers: { etag: { type: 'string' }, 'last-modified': { type: 'string' }, location: { type: 'string' } } } },
    },
  }, async (request, reply) => {
    const resource = request.body as Json;
    assertStructure(resource, 'ServiceRequest');
    const { input, problems } = createReferralOf(resource);
    if (problems.length > 0) throw validationFailed(problems);
    if (!checkCreate(input)) {
      throw validationFailed(fieldProblems((checkCreate.errors ?? []) as never, 'body').map((problem) => ({ ...problem, field: fhirPathOf(problem.field) })));
    }
    const referral = await inFhirTerms(fhirPathOf, () => workflow.create(auditContextOf(request), request.principal!, input as never));
    reply.header('location', `${base}/ServiceRequest/${referral.id}`);
    return sendResource(reply, toServiceRequest(referral), 201);
  });

  app.put('/Task/:id', {
    config: {
      policy: { roles: everyone, clientScope: 'referrals:write' },
      auditAction: 'referral.update',
      auditResource: { type: 'task', param: 'id' },
      ownProblems: { 422: { description: 'Accepting a referral with precautions needs input acknowledged-precautions = true (precautions-not-acknowledged)' } },
    },
    schema: {
      tags: ['fhir'],
      operationId: 'fhirUpdateTask',
      summary: "Move a referral by its Task's status: accept, reject (decline), cancel, send a draft, or send a rejected one to a new owner",
      description:
        'Only status, statusReason (the reason of a rejection or cancellation), owner (who accepts, or the new target) and input ' +
        '(type "acknowledged-precautions", valueBoolean) are read; other elements are the server\'s. If-Match takes the weak ETag of a read.',
      params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
      headers: Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 100, description: 'W/"version" as read; 412 when stale' })) }),
      body: fhirResource('Task'),
      consumes: fhirBodyTypes,
      response: { 200: { ...resourceBody('Task', 'The Task after the move'), headers: { etag: { type: 'string' }, 'last-modified': { type: 'string' } } } },
    },
  }, async (request, reply) => {
    const principal = request.principal!;
    const body = request.body as Json;
    assertStructure(body, 'Task');
    const { referral: before, taskId } = await workflow.readByTask(principal, request.params.id);
    const [reasons, reports] = await Promise.all([
      workflow.closingReasons([before.id]),
      before.activity.lastAt !== null ? reportsByReferral(app.db, [before.id]) : new Map<string, { id: string; kind: string }[]>(),
    ]);
    const current = toTask({ referral: before, taskId, closingReason: reasons.get(before.id), reports: reports.get(before.id) });
    const move = moveOf(current, body);
    const moveRequest = { context: auditContextOf(request), principal, referralId: before.id, ifMatch: strongIfMatch(request.headers['if-match']) };
    let after: Referral = before;
    let closingReason = reasons.get(before.id);
    switch (move.move) {
      case 'none':
        // Still a conditional write: a stale version is refused as a move would be.
        assertIfMatch(moveRequest.ifMatch, before.version);
        break;
      case 'send':
        after = await workflow.send(moveRequest);
        break;
      case 'accept':
        after = await inFhirTerms(taskPathOf, () =>
          workflow.accept(moveRequest, { ...(move.therapistId && { therapistId: move.therapistId }), ...(move.acknowledgedPrecautions !== undefined && { acknowledgedPrecautions: move.acknowledgedPrecautions }) }),
        );
        break;
      case 'decline':
        after = await workflow.decline(moveRequest, move.reason);
        closingReason = move.reason;
        break;
      case 'cancel':
        after = await workflow.cancel(moveRequest, move.reason);
        closingReason = move.reason;
        break;
      case 'reroute':
        after = await inFhirTerms(taskPathOf, () => workflow.reroute(moveRequest, { ...move.target, ...(move.reason && { reason: move.reason }) }));
        break;
    }
    return sendResource(reply, toTask({ referral: after, taskId, closingReason, reports: reports.get(before.id) }));
  });
};

export default referralWriteRoutes;
