// The OpenAPI side of the FHIR routes: resources are described by their FHIR type (the
// CapabilityStatement and the FHIR specification are their contract), parameters by resources.ts.
import { Type, type TSchema, type TString } from 'typebox';
import { fhirJson } from './http.js';
import { component } from '../../lib/components.js';
import type { ResourceDefinition } from './resources.js';
import { commonParameters, type SearchParameterDefinition } from './search/params.js';

/**
 * A FHIR resource of one type, as the document names it (`FhirTask`, `FhirBundle`): free-form, since
 * its elements are FHIR's (the specification and GET /fhir/R4/metadata are the contract), with its type.
 */
export const fhirResource = (type: string) =>
  component(`Fhir${type}`, {
    type: 'object',
    description: `A FHIR R4 ${type} (http://hl7.org/fhir/R4/${type.toLowerCase()}.html): its elements are FHIR's, not repeated here`,
    required: ['resourceType'],
    properties: { resourceType: { const: type } },
    additionalProperties: true,
  } as TSchema);

/** What a FHIR write takes: FHIR's own media type, and plain JSON as clients that know no better send it. */
export const fhirBodyTypes = [fhirJson, 'application/json'];

/** A response of one FHIR resource, in application/fhir+json. */
export const resourceBody = (type: string, description: string) => ({ description, content: { [fhirJson]: { schema: fhirResource(type) } } });

const formatParameter = { _format: Type.Optional(Type.String({ description: 'json (the only format served); overrides Accept' })) };
const parameterSchema = (definition: SearchParameterDefinition) =>
  Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: definition.description }));

/** A resource's id as the path takes it: a UUID unless the type's ids are made otherwise (derived ids, numbers). */
export const readSchema = <Id extends TSchema = TString>(definition: ResourceDefinition, id: Id = Type.String({ format: 'uuid' }) as TSchema as Id) => ({
  tags: ['fhir'],
  operationId: `fhirRead${definition.type}`,
  summary: `Read a ${definition.type}`,
  description: definition.documentation,
  params: Type.Object({ id }),
  querystring: Type.Object(formatParameter),
  response: {
    200: {
      ...resourceBody(definition.type, `The ${definition.type}`),
      headers: { etag: { type: 'string', description: 'W/"versionId"' }, 'last-modified': { type: 'string', description: 'meta.lastUpdated as an HTTP date' } },
    },
  },
});

export const searchSchema = (definition: ResourceDefinition) => {
  const includes = [...(definition.searchInclude ?? []).map((value) => ['_include', value]), ...(definition.searchRevInclude ?? []).map((value) => ['_revinclude', value])];
  return {
    tags: ['fhir'],
    operationId: `fhirSearch${definition.type}`,
    summary: `Search ${definition.type} resources: a searchset Bundle, paged by its next link`,
    description: `${definition.documentation} Unknown parameters are ignored (left out of the self link) unless Prefer: handling=strict.`,
    headers: Type.Object({ prefer: Type.Optional(Type.String({ description: 'handling=strict refuses unknown parameters' })) }),
    querystring: Type.Object(
      {
        ...formatParameter,
        ...Object.fromEntries([...commonParameters, ...definition.searchParams].map((parameter) => [parameter.name, parameterSchema(parameter)])),
        ...(includes.length > 0 &&
          Object.fromEntries(
            [...new Set(includes.map(([name]) => name!))].map((name) => [
              name,
              Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: includes.filter(([key]) => key === name).map(([, value]) => value).join(', ') })),
            ]),
          )),
      },
      { additionalProperties: true },
    ),
    response: { 200: resourceBody('Bundle', 'A searchset Bundle') },
  };
};

export const OperationOutcomeSchema = {
  type: 'object',
  description: 'A FHIR R4 OperationOutcome: every refusal under /fhir/R4, with the status and meaning of the /v1 problem (details.coding in urn:massage-referral:problem)',
  required: ['resourceType', 'issue'],
  additionalProperties: true,
  properties: {
    resourceType: { const: 'OperationOutcome' },
    issue: {
      type: 'array',
      items: {
        type: 'object',
        required: ['severity', 'code'],
        additionalProperties: true,
        properties: {
          severity: { enum: ['fatal', 'error', 'warning', 'information'] },
          code: { type: 'string', description: 'FHIR IssueType' },
          details: {
            type: 'object',
            properties: {
              coding: { type: 'array', items: { type: 'object', properties: { system: { type: 'string' }, code: { type: 'string', description: 'The /v1 problem type, e.g. not-found' } } } },
              text: { type: 'string' },
            },
          },
          diagnostics: { type: 'string' },
          expression: { type: 'array', items: { type: 'string' }, description: 'The FHIR element at fault, e.g. ServiceRequest.reasonCode[0]' },
        },
      },
    },
  },
};
