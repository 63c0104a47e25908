// The passes over the generated OpenAPI document (components, headers, examples) each visit every
// operation; they find them the same way.
type Json = Record<string, any>;

/** Every operation of the document's paths (path items also hold `parameters` and the like, which are not). */
export const operationsOf = (document: Json): Json[] =>
  Object.values((document.paths ?? {}) as Record<string, Json>).flatMap((item) => Object.values(item).filter((operation) => operation?.responses));
