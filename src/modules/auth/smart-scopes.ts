// SMART Backend Services scopes (system/<Type>.<permissions>, v2 letters or v1 read/write) and
// what they grant here: each maps onto the internal scopes API clients hold (policy.ts). A token
// keeps the SMART scopes it was granted besides its internal ones, so the FHIR façade can narrow
// by resource type and interaction too (system/Task.rs reads Tasks, not Communications).
import { oauthError } from '../../lib/errors.js';
import type { ApiClientScope, Principal } from './policy.js';

export type FhirInteraction = 'read' | 'search' | 'create' | 'update';
type Letter = 'c' | 'r' | 'u' | 'd' | 's';

const letterOrder: readonly Letter[] = ['c', 'r', 'u', 'd', 's'];
const letterOf: Record<FhirInteraction, Letter> = { create: 'c', read: 'r', update: 'u', search: 's' };
const v1Letters: Record<string, readonly Letter[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': letterOrder };

const referralRead = { r: 'referrals:read', s: 'referrals:read' } as const;
const directoryRead = { r: 'directory:read', s: 'directory:read' } as const;

/**
 * For each resource type served to API clients, the internal scope each permission needs; a
 * permission not listed (delete, and create or update where the façade does not take them) is
 * never granted. AuditEvent is absent on purpose: the audit log is for admins, as on /v1.
 */
const resourceScopes: Readonly<Record<string, Partial<Record<Letter, ApiClientScope>>>> = {
  ServiceRequest: { ...referralRead, c: 'referrals:write' },
  Task: { ...referralRead, u: 'referrals:write' },
  Communication: { ...referralRead, c: 'referrals:write' },
  Encounter: referralRead,
  Observation: referralRead,
  DocumentReference: referralRead,
  Binary: referralRead,
  Patient: { r: 'patients:read', s: 'patients:read', c: 'patients:write' },
  Practitioner: directoryRead,
  PractitionerRole: directoryRead,
  Organization: directoryRead,
};
const resourceTypes = Object.keys(resourceScopes);

interface SmartScope {
  raw: string;
  resource: string;
  letters: ReadonlySet<Letter>;
  /** v1 scopes name read/write/*, v2 scopes the cruds letters; a narrowed scope is written the way it was asked. */
  v1: boolean;
}

const invalidScope = (description: string) => oauthError('invalid_scope', description);

/** Whether a requested scope is written as a SMART scope rather than one of the internal ones. */
export function isSmartScope(scope: string): boolean {
  return scope.includes('/');
}

/** A SMART scope as requested, or the reason it is refused. */
function parse(raw: string): SmartScope | string {
  if (raw.includes('?')) return `${raw}: granular scopes (with query parameters) are not supported`;
  const match = /^(system|patient|user)\/([A-Za-z]+|\*)\.([a-z*]+)$/.exec(raw);
  if (!match) return `${raw} is not a SMART scope (system/<ResourceType>.<permissions>)`;
  const [, context, resource, permissions] = match as unknown as [string, string, string, string];
  if (context !== 'system') return `${raw}: only system/ scopes are granted (SMART Backend Services)`;
  if (resource === 'AuditEvent') return `${raw}: AuditEvent is not granted to API clients (the audit log is for admins)`;
  if (resource !== '*' && !(resource in resourceScopes)) return `${raw}: ${resource} is not a resource type served here`;
  const v1 = v1Letters[permissions];
  if (v1) return { raw, resource, letters: new Set(v1), v1: true };
  // SMART v2: a non-empty subset of c r u d s, in that order.
  if (!/^c?r?u?d?s?$/.test(permissions) || permissions === '') return `${raw}: permissions must be read, write, * or letters of cruds in that order`;
  return { raw, resource, letters: new Set(permissions as unknown as Letter[]), v1: false };
}

/** The permissions of `scope` on a resource type that the client's internal scopes allow. */
function grantedLetters(scope: SmartScope, resource: string, held: ReadonlySet<string>): Letter[] {
  const needs = resourceScopes[resource]!;
  return letterOrder.filter((letter) => scope.letters.has(letter) && needs[letter] !== undefined && held.has(needs[letter]));
}

/** What a client may do on a type, within what it asked for: all the type supports of it. */
function supportedLetters(scope: SmartScope, resource: string): Letter[] {
  return letterOrder.filter((letter) => scope.letters.has(letter) && resourceScopes[resource]![letter] !== undefined);
}

/** A scope on one type, written the way it was asked (v1 or v2). */
function written(scope: SmartScope, resource: string, letters: readonly Letter[]): string {
  if (!scope.v1) return `system/${resource}.${letters.join('')}`;
  const reads = letters.some((letter) => letter === 'r' || letter === 's');
  const writes = letters.some((letter) => letter === 'c' || letter === 'u' || letter === 'd');
  return `system/${resource}.${reads && writes ? '*' : reads ? 'read' : 'write'}`;
}

export interface ScopeGrant {
  /** The SMART scopes granted, narrowed to what the client holds. */
  smartScopes: string[];
  /** The internal scopes those need. */
  internalScopes: ApiClientScope[];
}

/**
 * Grants requested SMART scopes as far as the client's internal scopes allow. A wildcard is
 * narrowed (system/*.rs of a client holding only referrals:read becomes the read scopes of the
 * referral types); a scope naming one type that the client can have none of is refused, as is
 * a scope we do not grant at all (another context, AuditEvent, granular, malformed).
 */
export function grantSmartScopes(requested: readonly string[], held: readonly string[]): ScopeGrant {
  const holding = new Set(held);
  const smartScopes = new Set<string>();
  const internalScopes = new Set<ApiClientScope>();
  for (const raw of requested) {
    const scope = parse(raw);
    if (typeof scope === 'string') throw invalidScope(scope);
    const types = scope.resource === '*' ? resourceTypes : [scope.resource];
    const perType = types.map((resource) => ({ resource, letters: grantedLetters(scope, resource, holding) }));
    for (const { resource, letters } of perType) for (const letter of letters) internalScopes.add(resourceScopes[resource]![letter]!);
    if (scope.resource !== '*') {
      const [{ letters }] = perType as [{ resource: string; letters: Letter[] }];
      if (letters.length === 0) throw invalidScope(`The client is not granted anything ${raw} asks for`);
      smartScopes.add(written(scope, scope.resource, letters));
    } else if (perType.every(({ resource, letters }) => letters.length === supportedLetters(scope, resource).length)) {
      smartScopes.add(raw);
    } else {
      for (const { resource, letters } of perType) if (letters.length > 0) smartScopes.add(written(scope, resource, letters));
    }
  }
  if (smartScopes.size === 0) throw invalidScope('The client is not granted anything the requested scopes ask for');
  return { smartScopes: [...smartScopes], internalScopes: [...internalScopes] };
}

/**
 * Whether the principal's token allows an interaction with a resource type: always when it
 * carries no SMART scopes (users, and clients that asked for internal scopes), else when one of
 * them covers it. A wildcard covers the types served to API clients only, never AuditEvent.
 */
export function fhirScopeAllows(principal: Principal, resourceType: string, interaction: FhirInteraction): boolean {
  if (!principal.fhirScopes) return true;
  const letter = letterOf[interaction];
  return principal.fhirScopes.some((raw) => {
    const scope = parse(raw);
    if (typeof scope === 'string' || !scope.letters.has(letter)) return false;
    return scope.resource === resourceType || (scope.resource === '*' && resourceType in resourceScopes);
  });
}

/** The narrowest listed scope granting an interaction on a type (system/Task.rs for a search); none where no scope grants it. */
export function smartScopeFor(resourceType: string, interaction: FhirInteraction): string | undefined {
  const letter = letterOf[interaction];
  if (resourceScopes[resourceType]?.[letter] === undefined) return undefined;
  return `system/${resourceType}.${letter === 'r' || letter === 's' ? 'rs' : letter}`;
}

/** The scopes a client may ask for, as smart-configuration lists them. */
export function supportedSmartScopes(): string[] {
  const wildcards = ['system/*.rs', 'system/*.cruds', 'system/*.read', 'system/*.write', 'system/*.*'];
  const perType = resourceTypes.flatMap((resource) => {
    const letters = letterOrder.filter((letter) => resourceScopes[resource]![letter] !== undefined);
    const writes = letters.filter((letter) => letter === 'c' || letter === 'u');
    return [`system/${resource}.rs`, ...writes.map((letter) => `system/${resource}.${letter}`), `system/${resource}.read`, ...(writes.length > 0 ? [`system/${resource}.write`] : [])];
  });
  return [...wildcards, ...perType];
}
