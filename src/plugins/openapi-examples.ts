// The examples of the OpenAPI document: real requests and answers recorded from the test suite
// (npm run openapi:examples, tools/openapi/record-examples.ts), kept in src/openapi-examples/ and
// set on each operation's request body and 2xx answers, the problems and the webhooks here.
import { existsSync, readFileSync } from 'node:fs';
import { operationsOf } from './openapi-operations.js';

type Json = Record<string, any>;

export interface DocumentExamples {
  /** operationId → variant (a grant type, or '') → the JSON request body. */
  requests: Record<string, Record<string, { mediaType: string; body: unknown }>>;
  /** operationId → status → media type → the answer's body. */
  responses: Record<string, Record<string, Record<string, unknown>>>;
  /** status → a problem answered with it. */
  problems: Record<string, unknown>;
  /** event type (or `fhir` for the Bundle) → media type → a delivered body. */
  webhooks: Record<string, Record<string, unknown>>;
}

const examplesFile = new URL('../openapi-examples/examples.json', import.meta.url);

/** The recorded examples; none before the first recording. */
export function loadExamples(): DocumentExamples {
  if (!existsSync(examplesFile)) return { requests: {}, responses: {}, problems: {}, webhooks: {} };
  return JSON.parse(readFileSync(examplesFile, 'utf8')) as DocumentExamples;
}

/** The document with its examples: on request bodies, 2xx answers, problems (components.examples) and webhooks. */
export function withExamples(document: Json, examples: DocumentExamples): Json {
  const problemNames = new Map(Object.keys(examples.problems).map((status) => [status, `Problem${status}`]));
  for (const operation of operationsOf(document)) {
    if (!operation.operationId) continue;
    const variants = Object.entries(examples.requests[operation.operationId] ?? {});
    for (const content of Object.values((operation.requestBody?.content ?? {}) as Record<string, Json>)) {
      delete content.example;
      delete content.examples;
      if (variants.length === 1) content.example = variants[0]![1].body;
      else if (variants.length > 1) content.examples = Object.fromEntries(variants.map(([variant, { body }]) => [variant || 'example', { value: body }]));
    }
    for (const [status, response] of Object.entries((operation.responses ?? {}) as Record<string, Json>)) {
      for (const [mediaType, content] of Object.entries((response.content ?? {}) as Record<string, Json>)) {
        const recorded = examples.responses[operation.operationId]?.[status]?.[mediaType];
        if (recorded !== undefined) content.example = recorded;
        const problem = problemNames.get(status);
        if (mediaType === 'application/problem+json' && problem) content.examples = { [problem]: { $ref: `#/components/examples/${problem}` } };
      }
    }
  }
  for (const [type, entry] of Object.entries((document.webhooks ?? {}) as Record<string, Json>)) {
    for (const [mediaType, content] of Object.entries((entry.post?.requestBody?.content ?? {}) as Record<string, Json>)) {
      const recorded = mediaType === 'application/json' ? examples.webhooks[type]?.[mediaType] : examples.webhooks.fhir?.[mediaType];
      if (recorded !== undefined) content.example = recorded;
    }
  }
  const problemExamples = Object.fromEntries(
    [...problemNames].map(([status, name]) => [name, { summary: `A ${status} problem, as the service answers it`, value: examples.problems[status] }]),
  );
  document.components = { ...document.components, ...(problemNames.size > 0 ? { examples: problemExamples } : {}) };
  return document;
}
