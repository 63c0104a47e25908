// What a leaf of the audit log's Merkle tree commits to (SPEC §15): the event as the API serves it,
// without its leafIndex, in the JSON canonicalization of RFC 8785, so that anyone holding the event
// can hash it again and get the same bytes.
import canonicalize from 'canonicalize';
import { leafHash, type Hash } from './merkle.js';
import type { AuditEvent } from './schemas.js';

export function auditLeafData(event: AuditEvent): Buffer {
  const { leafIndex: _position, ...hashed } = event;
  return Buffer.from(canonicalize(hashed)!, 'utf8');
}

export const auditLeafHash = (event: AuditEvent): Hash => leafHash(auditLeafData(event));
