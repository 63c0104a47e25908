// Searches of a referral's thread (messages, visits, reports, documents): what they are anchored on
// (the referral, its Task, a visit, or a patient's referrals), and pages that run across the
// anchored referrals in a fixed order, each read through the owning module's own list.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError, renamedNotFound, validationFailed, type DeniedResource } from '../../../lib/errors.js';
import { decodeCursor, encodeCursor, type CursorKey, type CursorPart } from '../../../lib/pagination.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { visitNoteById, type ProgressReport } from '../../progress-reports/index.js';
import { contextOfRecord, contextOfView, type ThreadContext } from '../map/thread-context.js';
import type { ParsedSearch } from '../search/params.js';

/**
 * The most referrals a patient anchor reaches (years of courses of care); beyond it the search is
 * refused rather than cut short without a sign, and the client anchors on one ServiceRequest.
 */
const patientReferralLimit = 100;

export interface Anchored {
  /** The referrals searched. */
  contexts: ThreadContext[];
  /** An Encounter anchor: the one visit whose Observations are searched. */
  note?: ProgressReport;
}

/**
 * Runs a lookup that answers the outsider's 404 for a record the caller may not reach. A search
 * that names such a record matches nothing rather than failing (as Task?focus= does), but the
 * attempt on it is audited as a refused one.
 */
async function reachable<T>(app: FastifyInstance, request: FastifyRequest, action: string, lookup: () => Promise<T>): Promise<T | undefined> {
  try {
    return await lookup();
  } catch (error) {
    if (!(error instanceof NotFoundError) || !('deniedResource' in error)) throw error;
    await app.auditLog.recordDenial(auditContextOf(request), { action, outcome: 'denied', httpStatus: 200, ...(error.deniedResource as DeniedResource) });
    return undefined;
  }
}

/**
 * The referrals a thread search is anchored on: exactly one value of one of `anchors` (a Task, a
 * ServiceRequest, an Encounter or a Patient reference), else 400. Referrals the caller takes no part
 * in are left out; a patient's are those whose patient the caller may know.
 */
export async function resolveAnchor(app: FastifyInstance, request: FastifyRequest, search: ParsedSearch, anchors: readonly string[], action: string): Promise<Anchored> {
  const given = anchors.flatMap((name) => (search.references.get(name) ?? []).map((reference) => ({ name, reference })));
  const distinct = new Set(given.map(({ reference }) => `${reference.type}/${reference.id}`));
  if (distinct.size !== 1) {
    throw validationFailed([
      {
        field: 'query',
        message: distinct.size === 0 ? `name what to search in: one of ${anchors.join(', ')} is required` : `name one ${anchors.join(' or ')}, not several`,
      },
    ]);
  }
  const principal = request.principal!;
  const { reference } = given[0]!;
  const participating = async (referralId: string) => contextOfRecord(principal, await app.referrals.readParticipating(principal, referralId));
  switch (reference.type) {
    case 'Patient': {
      const rows = await app.referrals.search({ principal, patientId: reference.id, limit: patientReferralLimit });
      if (rows.length > patientReferralLimit) {
        throw validationFailed([{ field: 'query.patient', message: `the patient has more than ${patientReferralLimit} referrals you may see: search by based-on (one ServiceRequest) instead` }]);
      }
      return { contexts: rows.map(contextOfView) };
    }
    case 'Task': {
      const context = await reachable(app, request, action, async () => participating((await app.referrals.readByTask(principal, reference.id)).referral.id));
      return { contexts: context ? [context] : [] };
    }
    case 'Encounter': {
      const note = await visitNoteById(app.db, reference.id);
      if (!note) return { contexts: [] };
      const context = await reachable(app, request, action, () =>
        participating(note.referralId).catch((error: unknown) => {
          throw renamedNotFound(error, 'progress_report', note.id, 'Encounter');
        }),
      );
      return context ? { contexts: [context], note } : { contexts: [] };
    }
    default: {
      const context = await reachable(app, request, action, () => participating(reference.id));
      return { contexts: context ? [context] : [] };
    }
  }
}

/** A part of a search's results: one kind of record (`source`) of one referral. */
export interface Segment {
  context: ThreadContext;
  source: string;
}

/** Up to limit + 1 records of a segment after `after` (from its start without one), each with its key in the segment's order. */
export type SegmentReader<T> = (segment: Segment, after: CursorKey | undefined, limit: number) => Promise<{ item: T; key: CursorKey }[]>;

const segmentKey = (segment: Segment) => `${segment.context.referralId}:${segment.source}`;

/**
 * One page of up to `count` records across the segments, in the order of their keys (referral id,
 * then source: nothing the request or the time changes), each segment in its own order. The cursor
 * is [segment, ...key of the last record shown]; a segment gone since (a referral no longer
 * reached) is skipped to the next one.
 */
export async function readAcross<T>(
  segments: readonly Segment[],
  { cursor, count, keyShape }: { cursor: string | undefined; count: number; keyShape: readonly CursorPart[] },
  read: SegmentReader<T>,
): Promise<{ items: { item: T; segment: Segment }[]; visited: Segment[]; next?: string }> {
  const [startSegment, ...startKey] = decodeCursor(cursor, ['string', ...keyShape]) ?? [];
  const items: { item: T; segment: Segment }[] = [];
  const visited: Segment[] = [];
  const ordered = [...segments].sort((a, b) => (segmentKey(a) < segmentKey(b) ? -1 : 1));
  for (const [index, segment] of ordered.entries()) {
    const key = segmentKey(segment);
    if (startSegment !== undefined && key < String(startSegment)) continue;
    const need = count - items.length;
    const rows = await read(segment, key === startSegment ? startKey : undefined, need);
    visited.push(segment);
    const shown = rows.slice(0, need);
    items.push(...shown.map(({ item }) => ({ item, segment })));
    if (items.length === count) {
      const more = rows.length > need || index < ordered.length - 1;
      const last = shown.at(-1);
      return { items, visited, ...(more && last && { next: encodeCursor([key, ...last.key]) }) };
    }
  }
  return { items, visited };
}

/** The common parameters a thread search applies to what it read: _id and _lastUpdated. */
export function commonFilter(search: ParsedSearch): (resource: { id: string; meta?: { lastUpdated?: string } }) => boolean {
  const ids = search.tokens.get('_id');
  const since = search.lastUpdated;
  return (resource) => {
    if (ids && !ids.includes(resource.id.toLowerCase())) return false;
    if (!since) return true;
    const at = new Date(resource.meta?.lastUpdated ?? 0).getTime();
    return since.prefix === 'ge' ? at >= since.at.getTime() : at > since.at.getTime();
  };
}
