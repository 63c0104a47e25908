// Optimistic concurrency over HTTP: a resource's version is its ETag, and If-Match must name it.
import { versionMismatch } from './errors.js';

export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * Passes when there is no If-Match, when it is `*`, or when one of its entity tags is the current
 * version's. If-Match compares strongly (RFC 9110 §13.1.1), so a weak tag never matches.
 */
export function assertIfMatch(ifMatch: string | undefined, currentVersion: number): void {
  if (ifMatch === undefined) return;
  const tags = ifMatch.split(',').map((tag) => tag.trim());
  if (tags.includes('*')) return;
  if (tags.includes(etagOf(currentVersion))) return;
  throw versionMismatch(
    `If-Match ${ifMatch} does not match the current version ${etagOf(currentVersion)}; read the resource again and retry`,
    currentVersion,
  );
}
