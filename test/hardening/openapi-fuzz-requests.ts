// The requests of the OpenAPI fuzzer (openapi-fuzz.test.ts): for one operation of the document,
// fast-check arbitraries of whole requests (caller, path, query, headers, body), most of them fuzz,
// the rest well-formed as a working client sends them.
import fc from 'fast-check';
import type { Operation } from '../fixtures/response-contract.js';
import type { Json } from '../helper.js';
import { exampleArb, invalidArb, mutatedArb, validArb, type Schema } from './openapi-fuzz-schemas.js';
import { CallerOrganizationRef, PairRef, fhirSearchTakes, pathPool, ref, searchAnchors, wellFormedBodies } from './openapi-fuzz-values.js';


export interface RequestTemplate {
  operationId: string;
  caller: number;
  /** For the caller without a token: no Authorization, a malformed bearer token, or Basic credentials. */
  authVariant: number;
  pathValues: Record<string, unknown>;
  query: Array<[string, unknown]>;
  headers: Record<string, unknown>;
  body:
    | { kind: 'none' }
    | { kind: 'json'; value: unknown }
    /** A FHIR resource, sent as application/fhir+json. */
    | { kind: 'fhir'; value: unknown }
    | { kind: 'raw'; contentType: string; text: string }
    | { kind: 'form'; value: Record<string, unknown> }
    | { kind: 'multipart'; parts: MultipartPart[]; damage: MultipartDamage };
}

/** The kinds of file the fuzzer uploads: the four a document may be (SPEC §14.6), and some it may not. */
export const fileKinds = ['pdf', 'png', 'jpeg', 'tiff', 'gif', 'text', 'empty'] as const;
export type FileKind = (typeof fileKinds)[number];
/** A part of a multipart/form-data body: a text field, or a file built when the request is sent. */
export type MultipartPart = { name: string; value: unknown } | { name: string; file: FileKind; padding: number; filename: string; contentType: string };
/** What is wrong with the envelope itself, if anything: the boundary left out of the media type, the body cut short, or a boundary other than the one declared. */
export type MultipartDamage = 'none' | 'no-boundary' | 'truncated' | 'wrong-boundary';

/** Path parameters naming a record of the resource the path's {id} names: the {id} is then mostly its owner. */
const childParameters = ['userId', 'apiClientId', 'reportId', 'requestId', 'documentId', 'appointmentId', 'messageId', 'eventId'];

export const garbageSegments = [
  'not-a-uuid', '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-4FFF-8FFF-FFFFFFFFFFFF', '1', '-1', 'null', 'undefined', '%20',
  '%zz', '%00', '..', '.', 'ü', '%F0%9F%92%A9', "1'%20or%20'1'='1", 'a'.repeat(120), '{id}', ':id', '%2F', 'urn:uuid:9c8b7a6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d',
];

/**
 * Requests of one operation. Most are fuzz: every part varies, valid or not, on its own. The rest
 * are well-formed — the caller the operation is for, a resource of the right kind and state, valid
 * parameters and headers, the document's example or a schema-valid body — as a working client
 * sends them: these move the seeded network through its states, so that the fuzz meets referrals
 * that are sent, accepted, declined and completed, and the server's checks beyond the schema are
 * reached. (Independent noise in each part would otherwise leave almost none of them valid.)
 */
export function operationArb(
  operation: Operation,
  operationObject: Json,
  resolve: (schema: Schema) => Schema,
  callerWeights: fc.Arbitrary<number>,
  wellFormedCaller: fc.Arbitrary<number> = callerWeights,
): fc.Arbitrary<RequestTemplate> {
  return fc.oneof({ weight: 2, arbitrary: fuzzArb(operation, operationObject, resolve, callerWeights) }, { weight: 1, arbitrary: wellFormedArb(operation, operationObject, resolve, wellFormedCaller) });
}

function wellFormedArb(operation: Operation, operationObject: Json, resolve: (schema: Schema) => Schema, caller: fc.Arbitrary<number>): fc.Arbitrary<RequestTemplate> {
  const parameters = (operationObject.parameters ?? []) as Json[];
  const pathParams = parameters.filter((parameter) => parameter.in === 'path');
  const child = pathParams.find((parameter) => childParameters.includes(parameter.name))?.name as string | undefined;
  const pathArb = fc.record(
    Object.fromEntries(
      pathParams.map((parameter) => [
        parameter.name,
        child && parameter.name === 'id'
          ? fc.constant(new PairRef(child))
          : operation.path.startsWith('/v1/organizations/{id}') && parameter.name === 'id'
            ? fc.constant(new CallerOrganizationRef())
            : ref(pathPool(operation, parameter.name)),
      ]),
    ),
  );
  // A FHIR search names its anchor, if it needs one, and otherwise only parameters a client knows a value for.
  const fhirSearch = operation.operationId.startsWith('fhirSearch');
  const queryParams = parameters.filter((parameter) => parameter.in === 'query' && (!fhirSearch || fhirSearchTakes(operation.operationId, parameter.name)));
  const anchors = searchAnchors[operation.operationId] ?? [];
  const anchorArb: fc.Arbitrary<Array<[string, unknown]>> =
    anchors.length > 0
      ? fc.constantFrom(...anchors).chain((name) => validArb(parameters.find((parameter) => parameter.name === name)!.schema, resolve, name).map((value): Array<[string, unknown]> => [[name, value]]))
      : fc.constant([]);
  const queryArb = fc
    .tuple(anchorArb, ...queryParams.map((parameter) => (parameter.required ? validArb(parameter.schema, resolve, parameter.name) : fc.option(validArb(parameter.schema, resolve, parameter.name), { freq: 3 }))))
    .map(([anchor, ...values]) => [...anchor, ...values.flatMap((value, index): Array<[string, unknown]> => (value === null ? [] : [[queryParams[index]!.name as string, value]]))]);
  const headerParams = parameters.filter((parameter) => parameter.in === 'header');
  const headerArb = fc.record(
    Object.fromEntries(
      headerParams.map((parameter) => [
        parameter.name,
        parameter.name === 'if-match' ? fc.option(fc.constant('*'), { freq: 2 }) : parameter.name === 'idempotency-key' ? fc.option(fc.uuid(), { freq: 2 }) : fc.constant(null),
      ]),
    ),
  );
  const media = operationObject.requestBody?.content?.['application/json'] as Json | undefined;
  const formMedia = operationObject.requestBody?.content?.['multipart/form-data'] as Json | undefined;
  const bodyArb: fc.Arbitrary<RequestTemplate['body']> = wellFormedBodies[operation.operationId]
    ? wellFormedBodies[operation.operationId]!
    : media?.schema
    ? (exampleArb(media, media.schema) ? fc.oneof(exampleArb(media, media.schema)!, validArb(media.schema, resolve)) : validArb(media.schema, resolve)).map((value) => ({ kind: 'json' as const, value }))
    : formMedia?.schema
      ? validPartsArb(formMedia.schema, resolve).map((parts) => ({ kind: 'multipart' as const, parts, damage: 'none' as const }))
      : fc.constant({ kind: 'none' as const });
  return fc
    .record({ caller, authVariant: fc.constant(0), pathValues: pathArb, query: queryArb, headers: headerArb, body: bodyArb })
    .map((parts) => ({ operationId: operation.operationId, ...parts }));
}

function fuzzArb(operation: Operation, operationObject: Json, resolve: (schema: Schema) => Schema, callerWeights: fc.Arbitrary<number>): fc.Arbitrary<RequestTemplate> {
  const parameters = (operationObject.parameters ?? []) as Json[];
  const pathParams = parameters.filter((parameter) => parameter.in === 'path');
  const queryParams = parameters.filter((parameter) => parameter.in === 'query');
  const headerParams = parameters.filter((parameter) => parameter.in === 'header');

  const child = pathParams.find((parameter) => childParameters.includes(parameter.name))?.name as string | undefined;
  const pathArb = fc.record(
    Object.fromEntries(
      pathParams.map((parameter) => [
        parameter.name,
        fc.oneof(
          ...(child && parameter.name === 'id' ? [{ weight: 12, arbitrary: fc.constant(new PairRef(child)) as fc.Arbitrary<unknown> }] : []),
          ...(operation.path.startsWith('/v1/organizations/{id}') && parameter.name === 'id'
            ? [{ weight: 8, arbitrary: fc.constant(new CallerOrganizationRef()) as fc.Arbitrary<unknown> }]
            : []),
          { weight: 12, arbitrary: ref(pathPool(operation, parameter.name)) as fc.Arbitrary<unknown> },
          ...(pathPool(operation, parameter.name).endsWith('Referrals') ? [{ weight: 4, arbitrary: ref('referrals') as fc.Arbitrary<unknown> }] : []),
          // A real id of another kind of resource: exists, but not here.
          { weight: 2, arbitrary: ref(['patients', 'referrals', 'organizations', 'people', 'endpoints'][parameter.name.length % 5]!) as fc.Arbitrary<unknown> },
          { weight: 3, arbitrary: fc.uuid() },
          { weight: 3, arbitrary: fc.constantFrom(...garbageSegments) },
        ),
      ]),
    ),
  );

  const valuesArb = fc.tuple(
    ...queryParams.map((parameter) =>
      fc.oneof(
        { weight: 10, arbitrary: fc.constant(undefined) },
        { weight: 8, arbitrary: validArb(parameter.schema, resolve, parameter.name) },
        { weight: 2, arbitrary: invalidArb(parameter.schema, resolve) },
        // Said twice: an array where the schema expects one value.
        { weight: 1, arbitrary: fc.tuple(validArb(parameter.schema, resolve, parameter.name), validArb(parameter.schema, resolve, parameter.name)).map((pair) => ({ twice: pair })) },
      ),
    ),
  ) as fc.Arbitrary<unknown[]>;
  // A parameter the operation does not take, now and then.
  const strangerArb = fc.oneof(
    { weight: 12, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('foo', 'limit[]', '__proto__', 'constructor', 'status[0]', ''), fc.string({ maxLength: 8 })) },
  );
  const queryArb = fc.tuple(valuesArb, strangerArb).map(([values, stranger]) => {
    const query: Array<[string, unknown]> = [];
    values.forEach((value, index) => {
      if (value === undefined) return;
      const name = queryParams[index]!.name as string;
      if (value && typeof value === 'object' && 'twice' in value) for (const each of (value as { twice: unknown[] }).twice) query.push([name, each]);
      else query.push([name, value]);
    });
    if (stranger) query.push(stranger);
    return query;
  });

  const headerArb = fc.record(
    Object.fromEntries(
      headerParams.map((parameter) => [
        parameter.name,
        parameter.name === 'if-match'
          ? fc.option(fc.oneof({ weight: 3, arbitrary: ref('etags') as fc.Arbitrary<unknown> }, { weight: 2, arbitrary: fc.constantFrom('*', '"1"', '"2"', 'W/"1"', '"1", "2"', 'garbage', '""', `"${'9'.repeat(120)}"`) }), { freq: 2 })
          : parameter.name === 'idempotency-key'
            ? fc.option(fc.oneof({ weight: 6, arbitrary: fc.uuid() }, { weight: 2, arbitrary: fc.constantFrom('fuzz-key-1', 'fuzz-key-2', 'fuzz-key-3') }, { weight: 1, arbitrary: fc.constantFrom('has space', 'k'.repeat(256), 'ütf') }), { freq: 2 })
            : fc.option(validArb(parameter.schema, resolve, parameter.name), { freq: 2 }),
      ]),
    ),
  );

  const media = (operationObject.requestBody?.content?.['application/json'] ?? undefined) as Json | undefined;
  const bodySchema = media?.schema as Schema | undefined;
  const formSchema = operationObject.requestBody?.content?.['multipart/form-data']?.schema as Schema | undefined;
  const bodyArb: fc.Arbitrary<RequestTemplate['body']> = bodySchema
    ? fc.oneof(
        { weight: 8, arbitrary: validArb(bodySchema, resolve).map((value) => ({ kind: 'json' as const, value })) },
        ...(exampleArb(media!, bodySchema) ? [{ weight: 6, arbitrary: exampleArb(media!, bodySchema)!.map((value) => ({ kind: 'json' as const, value })) }] : []),
        { weight: 7, arbitrary: mutatedArb(bodySchema, resolve).map((value) => ({ kind: 'json' as const, value })) },
        { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => ({ kind: 'json' as const, value })) },
        { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.constantFrom('application/json', 'text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/json; charset=latin1'), fc.constantFrom('{', '{"a":', '[1,2', 'null', '"', 'a=1&b=2', '<x/>', '{"__proto__":{"admin":true}}', '{"a":1,"a":2}', ' '.repeat(3), '\u0000'))
            .map(([contentType, text]) => ({ kind: 'raw' as const, contentType, text })),
        },
        // The token endpoint also takes forms (RFC 6749), as partner EHRs mostly send them.
        ...(operation.operationId === 'issueToken'
          ? [{ weight: 4, arbitrary: fc.oneof(exampleArb(media!, bodySchema) ?? validArb(bodySchema, resolve), validArb(bodySchema, resolve)).map((value) => ({ kind: 'form' as const, value: value as Record<string, unknown> })) }]
          : []),
      )
    : formSchema
      ? multipartFuzzArb(formSchema, resolve)
      : fc.oneof(
          { weight: 8, arbitrary: fc.constant({ kind: 'none' as const }) },
          { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value) => ({ kind: 'json' as const, value })) },
        );

  return fc.record({ caller: callerWeights, authVariant: fc.nat({ max: 2 }), pathValues: pathArb, query: queryArb, headers: headerArb, body: bodyArb }).map((parts) => ({ operationId: operation.operationId, ...parts }));
}

// ---------------------------------------------------------------------------------------------
// multipart/form-data (the document upload, SPEC §14.6). The document declares the parts as an
// object schema: a member of format binary is a file part, every other member a text part.

const fileArb = (kinds: readonly FileKind[]) =>
  fc.record({
    file: fc.constantFrom(...kinds),
    padding: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 4096 }) }, { weight: 1, arbitrary: fc.integer({ min: 4096, max: 300 * 1024 }) }),
    filename: fc.constantFrom('scan.pdf', 'photo.png', 'x.bin', '../../etc/passwd', 'a"b.pdf', 'ü.tif', ''),
    contentType: fc.constantFrom('application/pdf', 'image/png', 'application/octet-stream', 'text/html', 'image/svg+xml'),
  });

/** The parts of a form the schema accepts, in any order (the server takes them so). */
function validPartsArb(schema: Schema, resolve: (schema: Schema) => Schema): fc.Arbitrary<MultipartPart[]> {
  const resolved = resolve(schema);
  const properties = Object.entries((resolved.properties ?? {}) as Record<string, Schema>);
  const part = ([name, property]: [string, Schema]): fc.Arbitrary<MultipartPart> =>
    resolve(property).format === 'binary'
      ? fileArb(['pdf', 'png', 'jpeg', 'tiff']).map((file) => ({ name, ...file }))
      : validArb(property, resolve, name).map((value) => ({ name, value }));
  return fc.tuple(...properties.map(part)).chain((parts) => fc.shuffledSubarray(parts, { minLength: parts.length, maxLength: parts.length }));
}

/**
 * Forms of every sort: valid ones; one part missing, repeated, of a refused value or a refused kind
 * of file, or joined by a stranger; a broken envelope; and bodies that are no form at all.
 */
function multipartFuzzArb(schema: Schema, resolve: (schema: Schema) => Schema): fc.Arbitrary<RequestTemplate['body']> {
  const resolved = resolve(schema);
  const textMembers = Object.entries((resolved.properties ?? {}) as Record<string, Schema>).filter(([, property]) => resolve(property).format !== 'binary');
  const valid = validPartsArb(schema, resolve);
  const mutated = fc.tuple(valid, fc.nat(), fc.nat({ max: 4 }), fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 40 })).chain(([parts, where, how, strangerName, strangerValue]): fc.Arbitrary<MultipartPart[]> => {
    const index = where % parts.length;
    const target = parts[index]!;
    if (how === 0) return fc.constant(parts.filter((_, at) => at !== index));
    if (how === 1) return fc.constant([...parts, target]);
    if (how === 2) return fc.constant([...parts, { name: strangerName, value: strangerValue }]);
    if ('file' in target) return fileArb(fileKinds).map((file) => parts.map((each, at) => (at === index ? { name: target.name, ...file } : each)));
    const [, property] = textMembers.find(([name]) => name === target.name) ?? [target.name, {}];
    return invalidArb(property, resolve).map((value) => parts.map((each, at) => (at === index ? { name: target.name, value } : each)));
  });
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((parts) => ({ kind: 'multipart' as const, parts, damage: 'none' as const })) },
    { weight: 8, arbitrary: mutated.map((parts) => ({ kind: 'multipart' as const, parts, damage: 'none' as const })) },
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.constantFrom('no-boundary' as const, 'truncated' as const, 'wrong-boundary' as const)).map(([parts, damage]) => ({ kind: 'multipart' as const, parts, damage })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value) => ({ kind: 'json' as const, value })) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('multipart/form-data', 'multipart/form-data; boundary=', 'multipart/mixed; boundary=x', 'application/octet-stream', 'text/plain'), fc.constantFrom('', '--x\r\n', '%PDF-1.7', '\u0000'))
        .map(([contentType, text]) => ({ kind: 'raw' as const, contentType, text })),
    },
  );
}

export function toText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? '';
}
