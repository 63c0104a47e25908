// The examples of the OpenAPI document, as recorded from the test suite (test/fixtures/
// example-recorder.ts): merged, first file first, and scrubbed so that re-recording changes
// little and nothing that looks like a credential is published: every UUID becomes a numbered
// placeholder (the same id the same placeholder everywhere, so ids and URLs still agree), times
// move to a fixed start keeping their order and gaps, and tokens, secrets, cursors and passwords
// become placeholders of the same kind.
import type { DocumentExamples } from '../../src/plugins/openapi-examples.js';

export type { DocumentExamples };


/** A recording file's content (test/fixtures/example-recorder.ts RecordedExamples). */
type Recording = DocumentExamples & { file: string };

const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const dateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const httpDate = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const startOfExamples = Date.parse('2026-12-01T09:00:00Z');

/** Values replaced whole, by the name of the member holding them. */
export const placeholders: Record<string, string> = {
  access_token: 'eyJhbGciOiJIUzI1NiJ9.example-access-token.signature',
  refresh_token: 'example-refresh-token',
  client_id: 'cli_example-client-id',
  clientId: 'cli_example-client-id',
  client_secret: 'cs_example-client-secret',
  clientSecret: 'cs_example-client-secret',
  secret: 'whsec_ZXhhbXBsZS1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5',
  password: 'correct horse battery staple',
  client_assertion: 'eyJhbGciOiJSUzM4NCJ9.example-client-assertion.signature',
  nextCursor: 'v1.example-cursor',
  syncCursor: 'v1.example-sync-cursor',
};

export function mergeRecordings(recordings: Recording[], preferred: readonly string[]): DocumentExamples {
  const rank = (file: string) => {
    const index = preferred.findIndex((name) => file.startsWith(name));
    return index < 0 ? preferred.length : index;
  };
  const ordered = [...recordings].sort((a, b) => rank(a.file) - rank(b.file) || a.file.localeCompare(b.file));
  const merged: DocumentExamples = { requests: {}, responses: {}, problems: {}, webhooks: {} };
  for (const recording of ordered) {
    for (const [operationId, variants] of Object.entries(recording.requests)) {
      for (const [variant, sample] of Object.entries(variants)) (merged.requests[operationId] ??= {})[variant] ??= sample;
    }
    for (const [operationId, statuses] of Object.entries(recording.responses)) {
      for (const [status, media] of Object.entries(statuses)) {
        for (const [mediaType, body] of Object.entries(media)) ((merged.responses[operationId] ??= {})[status] ??= {})[mediaType] ??= body;
      }
    }
    for (const [status, body] of Object.entries(recording.problems)) merged.problems[status] ??= body;
    for (const [type, media] of Object.entries(recording.webhooks)) {
      for (const [mediaType, body] of Object.entries(media)) (merged.webhooks[type] ??= {})[mediaType] ??= body;
    }
  }
  return merged;
}

export function scrubExamples(examples: DocumentExamples): DocumentExamples {
  const ids = new Map<string, string>();
  const idOf = (found: string) => {
    const key = found.toLowerCase();
    if (!ids.has(key)) ids.set(key, `00000000-0000-4000-8000-${String(ids.size + 1).padStart(12, '0')}`);
    return ids.get(key)!;
  };
  const times: number[] = [];
  const collectTimes = (value: unknown): void => {
    if (typeof value === 'string' && dateTime.test(value)) times.push(Date.parse(value));
    else if (Array.isArray(value)) value.forEach(collectTimes);
    else if (value && typeof value === 'object') Object.values(value).forEach(collectTimes);
  };
  collectTimes(examples);
  // Times start at startOfExamples; dates move by the same number of whole days, so a date next to
  // a time stays as far from it as it was.
  const shift = times.length === 0 ? 0 : startOfExamples - Math.floor(Math.min(...times) / 1000) * 1000;
  const dayShift = Math.round(shift / 86_400_000) * 86_400_000;
  const shiftTime = (value: string) => new Date(Date.parse(value) + shift).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const shiftDate = (value: string) => new Date(Date.parse(`${value}T00:00:00Z`) + dayShift).toISOString().slice(0, 10);

  const scrub = (value: unknown, key?: string): unknown => {
    if (key !== undefined && key in placeholders && typeof value === 'string') return placeholders[key];
    if (typeof value === 'string') {
      if (dateTime.test(value)) return shiftTime(value);
      if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return shiftDate(value);
      if (httpDate.test(value)) return new Date(Date.parse(value) + shift).toUTCString();
      if (key !== undefined && /^cli_/.test(value)) return placeholders.client_id!;
      // The suite's webhook receivers listen on loopback, which a real endpoint may not (and the fuzzer's requests, built from these examples, would be refused).
      const loopback = /^https?:\/\/127\.0\.0\.1(:\d+)?(\/.*)?$/.exec(value);
      if (loopback) return `https://ehr.example${loopback[2] ?? ''}`;
      return value.replace(uuid, idOf);
    }
    // A page or a Bundle shows its shape in two items; the rest is bulk.
    if (Array.isArray(value)) return (key === 'data' || key === 'entry' ? value.slice(0, 2) : value).map((item) => scrub(item));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([name, item]) => [name.replace(uuid, idOf), scrub(item, name)]));
    return value;
  };
  return scrub(examples) as DocumentExamples;
}

/** Strings an example must never hold: a real-looking token or secret left unscrubbed. */
export function leftovers(examples: unknown): string[] {
  const found: string[] = [];
  const allowed = new Set(Object.values(placeholders));
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      if (!allowed.has(value) && (/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./.test(value) || /whsec_/.test(value) || /^cs_/.test(value))) found.push(value.slice(0, 40));
    } else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(examples);
  return found;
}
