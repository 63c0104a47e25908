// A token signed in with SMART scopes (system/Task.rs, …) reaches only the resource types and
// interactions they name, on top of the route's own policy: system/Task.rs reads Tasks, not
// Communications. Which type and interaction a request is comes from its route, and from its
// _include/_revinclude, which read a second type.
import type { FastifyRequest, RouteOptions } from 'fastify';
import { accessDenied } from '../../lib/errors.js';
import { fhirPrefix } from '../../lib/api-prefix.js';
import { auditTargetOf } from '../audit/audit-log.js';
import { fhirScopeAllows, smartScopeFor, type FhirInteraction } from '../auth/index.js';

/** The resource type each supported _include names (its target) or _revinclude names (its source). */
const includedTypes: Record<string, string> = { '_include=Task:focus': 'ServiceRequest', '_revinclude=Task:focus': 'Task' };

/** The resource type and FHIR interaction a route serves; `unknown` for a method no interaction names. */
export function routeInteractionOf(url: string, method: string): { type: string; interaction: FhirInteraction | 'unknown' } | undefined {
  const [type, id] = url.slice(fhirPrefix.length + 1).split('/');
  if (!type || type === 'metadata' || type.startsWith('.')) return undefined;
  const reads = method === 'GET' || method === 'HEAD';
  const interaction = reads ? (id ? 'read' : 'search') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : 'unknown';
  return { type, interaction };
}

function accessesOf(request: FastifyRequest): { type: string; interaction: FhirInteraction; unknown?: true }[] {
  const served = routeInteractionOf(request.routeOptions.url ?? '', request.method);
  if (!served) return [];
  // A method without a FHIR interaction is one no scope names: refused, never waved through.
  if (served.interaction === 'unknown') return [{ type: served.type, interaction: 'update' as const, unknown: true }];
  const query = request.query as Record<string, unknown>;
  const includes = ['_include', '_revinclude'].flatMap((name) => [query[name] ?? []].flat().map((value) => includedTypes[`${name}=${String(value)}`]));
  return [{ type: served.type, interaction: served.interaction }, ...includes.filter((included) => included !== undefined).map((included) => ({ type: included, interaction: 'read' as const }))];
}

/**
 * The SMART scope a route needs, added to its documented access (auth's x-access and security):
 * the narrowest scope listed in smart-configuration that grants the route's interaction.
 */
export function documentSmartScope(route: RouteOptions): void {
  const served = routeInteractionOf(route.url, String(route.method));
  const schema = route.schema as Record<string, any> | undefined;
  if (!served || served.interaction === 'unknown' || !schema?.['x-access']) return;
  const scope = smartScopeFor(served.type, served.interaction);
  if (!scope) return;
  schema['x-access'] = { ...schema['x-access'], smartScope: scope };
  schema.security = [...(schema.security ?? []), { oauth2: [scope] }];
  schema.description = `${schema.description ?? ''} SMART Backend Services tokens need ${scope} (or a wider system/ scope).`.trim();
}

export async function assertSmartScopes(request: FastifyRequest): Promise<void> {
  const principal = request.principal;
  if (!principal?.fhirScopes) return;
  const refused = accessesOf(request).find(({ type, interaction, unknown }) => unknown || !fhirScopeAllows(principal, type, interaction));
  if (refused) {
    throw accessDenied(`The token's SMART scopes do not allow ${refused.interaction} of ${refused.type}`, auditTargetOf(request));
  }
}
