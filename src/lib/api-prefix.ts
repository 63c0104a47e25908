// The versioned API lives under one prefix, given once: modules register their routes beneath it.
export const apiPrefix = '/v1';
/** The FHIR R4 façade over the same data and rules (SPEC §16). */
export const fhirPrefix = '/fhir/R4';

const under = (url: string, prefix: string) => url === prefix || url.startsWith(`${prefix}/`);

/** Whether a route (by its URL) belongs to the API (/v1 or its FHIR façade) rather than to health checks or docs. */
export const isApiRoute = (url: string): boolean => under(url, apiPrefix) || under(url, fhirPrefix);

export const isFhirRoute = (url: string): boolean => under(url, fhirPrefix);
