// The recorder of the response-exposure tour (response-exposure.test.ts). Every call goes through
// app.inject directly rather than TestApp.request, which throws on the first contract violation:
// here every answer is kept and held to the OpenAPI contract, and afterwards searched for the
// canary secrets registered as the tour goes, each allowed only in the answers meant to show it.
import { randomBytes } from 'node:crypto';
import type { ResponseContract, Violation } from '../fixtures/response-contract.js';
import type { Json, TestApp } from '../helper.js';

export const canaryPassword = (who: string) => `canary-password-${who}-${randomBytes(6).toString('hex')}`;

export interface Seen {
  index: number;
  label: string;
  method: string;
  url: string;
  status: number;
  headers: Record<string, unknown>;
  body: string;
  violations: Violation[];
}

export interface Canary {
  name: string;
  value: string;
  /** Indexes of the responses meant to show it. */
  designated: number[];
}

export interface Person {
  id: string;
  email: string;
  password: string;
  token: string;
  refreshToken: string;
}

interface CallOptions {
  method?: string;
  token?: string | undefined;
  payload?: unknown;
  headers?: Record<string, string>;
  expect?: number;
}

interface Answer {
  index: number;
  status: number;
  headers: Record<string, unknown>;
  body: string;
  json(): Json;
}

/** The tour's calls and the canaries they may show; `failures` lists calls that answered another status than expected. */
export function exposureRecorder(test: TestApp, contract: ResponseContract, tag: string) {
  const seen: Seen[] = [];
  const canaries: Canary[] = [];
  const failures: string[] = [];

  function canary(name: string, value: string, designated: number[] = []) {
    if (!value || value.length < 8) throw new Error(`canary ${name} is too short to search for`);
    canaries.push({ name, value, designated });
  }

  async function call(label: string, url: string, { method = 'GET', token, payload, headers = {}, expect }: CallOptions = {}): Promise<Answer> {
    const response = await test.app.inject({
      method: method as 'GET',
      url,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });
    const index = seen.length;
    const record: Seen = {
      index,
      label,
      method,
      url,
      status: response.statusCode,
      headers: response.headers,
      body: response.body,
      violations: contract.check(method, url, response.statusCode, response.headers, response.body),
    };
    seen.push(record);
    if (expect !== undefined && response.statusCode !== expect) {
      failures.push(`${label}: ${method} ${url} answered ${response.statusCode}, expected ${expect}: ${response.body.slice(0, 500)}`);
    }
    return { index, status: response.statusCode, headers: response.headers, body: response.body, json: () => JSON.parse(response.body) as Json };
  }

  /** A call whose answer the rest of the tour depends on. */
  async function must(label: string, url: string, options: CallOptions & { expect: number }): Promise<Answer> {
    const answer = await call(label, url, options);
    if (answer.status !== options.expect) throw new Error(`${label}: ${options.method ?? 'GET'} ${url} answered ${answer.status}, expected ${options.expect}: ${answer.body}`);
    return answer;
  }

  /** Signs in with the password grant; the answer is the one place its tokens may appear. */
  async function signIn(label: string, email: string, password: string): Promise<Person & { answer: number }> {
    const answer = await must(`sign in ${label}`, '/v1/auth/token', { method: 'POST', payload: { grant_type: 'password', username: email, password }, expect: 200 });
    const body = answer.json();
    canary(`access token of ${label}`, body.access_token, [answer.index]);
    canary(`refresh token of ${label}`, body.refresh_token, [answer.index]);
    return { id: '', email, password, token: body.access_token, refreshToken: body.refresh_token, answer: answer.index };
  }

  async function organization(admin: string, payload: Json): Promise<Json> {
    return (await must(`create ${payload.name}`, '/v1/organizations', { method: 'POST', token: admin, payload, expect: 201 })).json();
  }

  async function member(admin: string, organizationId: string, label: string, payload: Json): Promise<Person> {
    const password = canaryPassword(label);
    canary(`password of ${label}`, password);
    const email = `${label}.${tag}@exposure.example`;
    const created = (
      await must(`add ${label}`, `/v1/organizations/${organizationId}/users`, { method: 'POST', token: admin, payload: { email, password, name: `${label} ${tag}`, ...payload }, expect: 201 })
    ).json();
    const person = await signIn(label, email, password);
    return { ...person, id: created.id };
  }

  return { seen, canaries, failures, canary, call, must, signIn, organization, member };
}

/** Keys of internal columns and records: none may appear as a member of any JSON body. */
const internalKeys = [
  'passwordHash', 'password_hash', 'secretHash', 'secret_hash', 'tokenHash', 'token_hash',
  'previousSecret', 'previous_secret', 'familyId', 'family_id', 'failedLoginCount', 'failed_login_count',
  'lockedUntil', 'locked_until', 'leaseExpiresAt', 'lease_expires_at', 'syncXid', 'sync_xid',
  'requestHash', 'request_hash', 'callerKey', 'caller_key', 'responseBody', 'response_body', 'deletedAt', 'deleted_at',
];
/** Column names as SQL spells them: in any body text they would mean SQL or a raw row leaked into an answer. */
const internalColumnText = internalKeys.filter((key) => key.includes('_'));

export interface Leak {
  canary: string;
  response: string;
  where: 'body' | 'headers';
}

function jsonKeys(value: unknown, found: Set<string>, depth = 0): void {
  if (depth > 64 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) jsonKeys(item, found, depth + 1);
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    found.add(key);
    jsonKeys(child, found, depth + 1);
  }
}

/** Canaries outside their designated answers, and internal columns in any answer. */
export function findLeaks(seen: Seen[], canaries: Canary[]): { leaks: Leak[]; internalMembers: string[] } {
  const leaks: Leak[] = [];
  const internalMembers: string[] = [];

  for (const response of seen) {
    const headersText = JSON.stringify(response.headers);
    for (const { name, value, designated } of canaries) {
      if (designated.includes(response.index)) continue;
      if (response.body.includes(value)) leaks.push({ canary: name, response: `#${response.index} ${response.label} (${response.method} ${response.url} → ${response.status})`, where: 'body' });
      if (headersText.includes(value)) leaks.push({ canary: name, response: `#${response.index} ${response.label} (${response.method} ${response.url} → ${response.status})`, where: 'headers' });
    }
    const keys = new Set<string>();
    for (const line of response.body.split('\n')) {
      try {
        jsonKeys(JSON.parse(line), keys);
      } catch {
        // Not JSON (the explorer's HTML): only the text checks apply.
      }
    }
    for (const key of internalKeys) if (keys.has(key)) internalMembers.push(`#${response.index} ${response.label}: member "${key}"`);
    for (const column of internalColumnText) if (response.body.includes(column)) internalMembers.push(`#${response.index} ${response.label}: text "${column}"`);
  }
  return { leaks, internalMembers };
}

/** What identifies a patient: a name, a birth date, an MRN (SPEC §14.8). */
export interface PatientIdentity {
  id: string;
  familyName: string;
  birthDate: string;
  mrn: string;
}

function fhirResources(value: unknown, found: Json[], depth = 0): void {
  if (depth > 64 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) fhirResources(item, found, depth + 1);
    return;
  }
  const object = value as Json;
  if (typeof object.resourceType === 'string') found.push(object);
  for (const child of Object.values(object)) fhirResources(child, found, depth + 1);
}

/**
 * Where a FHIR answer shows a patient's identity: the name, birth date or MRN anywhere in its text,
 * or a Patient resource (a read, a Bundle entry, a contained one) for that patient that carries a
 * name, a birth date or an identifier. FHIR bodies are free-form objects in the OpenAPI document, so
 * the declared-member check says nothing about them: this is what holds them to SPEC §14.8.
 */
export function fhirPatientIdentity(body: string, patient: PatientIdentity): string[] {
  const found: string[] = [];
  for (const [what, value] of [['family name', patient.familyName], ['birth date', patient.birthDate], ['MRN', patient.mrn]] as const) {
    if (body.includes(value)) found.push(`text: ${what}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return found;
  }
  const resources: Json[] = [];
  fhirResources(parsed, resources);
  for (const resource of resources) {
    // Any Patient: the answers held to this concern one patient's referral, so every Patient in them is that patient.
    if (resource.resourceType !== 'Patient') continue;
    for (const member of ['name', 'birthDate', 'identifier', 'telecom', 'address']) {
      if (resource[member] !== undefined) found.push(`Patient/${resource.id ?? '(contained)'}.${member}`);
    }
  }
  return found;
}
