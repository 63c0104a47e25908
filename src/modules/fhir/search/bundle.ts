// A searchset Bundle: the page's matches, then what _include/_revinclude brought, with self and next
// links that repeat only the parameters the search applied (FHIR's way of saying what it ignored).
import { randomUUID } from 'node:crypto';

export interface SearchEntry {
  resource: { resourceType: string; id: string };
  mode: 'match' | 'include';
}

export function searchsetBundle({ base, entries, self, next }: { base: string; entries: SearchEntry[]; self: string; next?: string | undefined }) {
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    link: [{ relation: 'self', url: self }, ...(next ? [{ relation: 'next', url: next }] : [])],
    entry: entries.map(({ resource, mode }) => ({
      fullUrl: `${base}/${resource.resourceType}/${resource.id}`,
      resource,
      search: { mode },
    })),
  };
}

/** The URL of a search with these parameters (in the order given). */
export function searchUrl(base: string, resourceType: string, parameters: [string, string][]): string {
  const query = new URLSearchParams(parameters).toString();
  return `${base}/${resourceType}${query ? `?${query}` : ''}`;
}
