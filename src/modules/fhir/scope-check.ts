// A token signed in with SMART scopes (system/Task.rs, …) reaches only the resource types and
// interactions they name, on top of the route's own policy: system/Task.rs reads Tasks, not
// Communications. Which type and interaction a request is comes from its route, and from its
// _include/_revinclude, which read a second type.
import type { FastifyRequest } from 'fastify';
import { accessDenied } from '../../lib/errors.js';
import { fhirPrefix } from '../../lib/api-prefix.js';
import { auditTargetOf } from '../audit/audit-log.js';
import { fhirScopeAllows, type FhirInteraction } from '../auth/index.js';

/** The resource type each supported _include names (its target) or _revinclude names (its source). */
const includedTypes: Record<string, string> = { '_include=Task:focus': 'ServiceRequest', '_revinclude=Task:focus': 'Task' };

function accessesOf(request: FastifyRequest): { type: string; interaction: FhirInteraction; unknown?: true }[] {
  const [type, id] = (request.routeOptions.url ?? '').slice(fhirPrefix.length + 1).split('/');
  if (!type || type === 'metadata' || type.startsWith('.')) return [];
  const reads = request.method === 'GET' || request.method === 'HEAD';
  const interaction: FhirInteraction | undefined = reads ? (id ? 'read' : 'search') : request.method === 'POST' ? 'create' : request.method === 'PUT' ? 'update' : undefined;
  // A method without a FHIR interaction is one no scope names: refused, never waved through.
  if (!interaction) return [{ type, interaction: 'update' as const, unknown: true }];
  const query = request.query as Record<string, unknown>;
  const includes = ['_include', '_revinclude'].flatMap((name) => [query[name] ?? []].flat().map((value) => includedTypes[`${name}=${String(value)}`]));
  return [{ type, interaction }, ...includes.filter((included) => included !== undefined).map((included) => ({ type: included, interaction: 'read' as const }))];
}

export async function assertSmartScopes(request: FastifyRequest): Promise<void> {
  const principal = request.principal;
  if (!principal?.fhirScopes) return;
  const refused = accessesOf(request).find(({ type, interaction, unknown }) => unknown || !fhirScopeAllows(principal, type, interaction));
  if (refused) {
    throw accessDenied(`The token's SMART scopes do not allow ${refused.interaction} of ${refused.type}`, auditTargetOf(request));
  }
}
