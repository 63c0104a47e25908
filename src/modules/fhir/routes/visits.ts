// Encounter and Observation: visit notes and what they measured, read and searched with the rules,
// 404s and audit events of /v1/referrals/{id}/progress-reports (each note shown is a read of it).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { notFound, renamedNotFound } from '../../../lib/errors.js';
import type { Principal } from '../../auth/policy.js';
import { auditContextOf } from '../../audit/audit-log.js';
import { visitNoteById, visitNotesOf, type ProgressReport } from '../../progress-reports/index.js';
import { referralReadPolicy } from '../../referrals/index.js';
import { assertJsonAccepted, sendBundle, sendResource } from '../http.js';
import { toEncounter } from '../map/encounter.js';
import { observationIdPattern, parseObservationId, toObservations } from '../map/observation.js';
import { contextOfRecord, type ThreadContext } from '../map/thread-context.js';
import { encounterDefinition, observationDefinition, type ResourceDefinition } from '../resources.js';
import { readSchema, searchSchema } from '../route-schemas.js';
import { searchsetBundle, searchUrl } from '../search/bundle.js';
import { parseSearch, wantsStrictHandling } from '../search/params.js';
import { commonFilter, readAcross, resolveAnchor, type Segment } from './thread-search.js';

const visitResource = (param: string) => ({ type: 'progress_report', param });

const visitRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, { base }) => {
  /** The note and its referral as the caller may see them: the 404 of a missing note for whoever takes no part. */
  async function readableNote(principal: Principal, noteId: string, label: string): Promise<{ note: ProgressReport; context: ThreadContext }> {
    const note = await visitNoteById(app.db, noteId);
    if (!note) throw notFound('progress_report', noteId, label);
    try {
      return { note, context: contextOfRecord(principal, await app.referrals.readParticipating(principal, note.referralId)) };
    } catch (error) {
      throw renamedNotFound(error, 'progress_report', noteId, label);
    }
  }

  /** Each note shown is a read of it, as in the /v1 list. */
  async function auditNotes(request: FastifyRequest, notes: { id: string; context: ThreadContext }[]) {
    const seen = new Map(notes.map((note) => [note.id, note]));
    await app.auditLog.recordMany(
      auditContextOf(request),
      [...seen.values()].map(({ id, context }) => ({
        action: 'progress_report.read',
        outcome: 'success' as const,
        httpStatus: 200,
        resourceType: 'progress_report',
        resourceId: id,
        patientId: context.patientId,
      })),
    );
  }

  app.get('/Encounter/:id', {
    config: { policy: referralReadPolicy, auditAction: 'progress_report.read', auditResource: visitResource('id') },
    schema: readSchema(encounterDefinition),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const { note, context } = await readableNote(request.principal!, request.params.id, 'Encounter');
    await auditNotes(request, [{ id: note.id, context }]);
    return sendResource(reply, toEncounter(note, context));
  });

  app.get('/Observation/:id', {
    config: { policy: referralReadPolicy, auditAction: 'progress_report.read' },
    schema: readSchema(observationDefinition, Type.String({ pattern: observationIdPattern, description: '{visitNoteId}-pain-before, {visitNoteId}-pain-after or {visitNoteId}-outcome-{n}' })),
  }, async (request, reply) => {
    assertJsonAccepted(request);
    const id = request.params.id.toLowerCase();
    const { noteId } = parseObservationId(id);
    const { note, context } = await readableNote(request.principal!, noteId, 'Observation');
    const observation = toObservations(note, context).find((candidate) => candidate.id === id);
    if (!observation) throw notFound('progress_report', noteId, 'Observation', context.patientId);
    await auditNotes(request, [{ id: note.id, context }]);
    return sendResource(reply, observation);
  });

  /** Notes of a referral in visit order, after the visit numbered after[0]. */
  const notesAfter = (segment: Segment, afterVisit: number | undefined, limit: number) =>
    visitNotesOf(app.db, segment.context.referralId, { afterVisit, limit });

  async function searchVisits(request: FastifyRequest, definition: ResourceDefinition, anchors: string[]) {
    const search = parseSearch(request.query as Record<string, unknown>, definition.searchParams, {
      strict: wantsStrictHandling(request.headers.prefer),
      ...(definition === observationDefinition && { idPattern: new RegExp(observationIdPattern) }),
    });
    const anchored = await resolveAnchor(app, request, search, anchors, 'progress_report.list');
    const segments = anchored.contexts.map((context) => ({ context, source: 'visits' }));
    const keep = commonFilter(search);
    if (definition === encounterDefinition) {
      const page = await readAcross(segments, { cursor: search.cursor, count: search.count, keyShape: ['position'] }, async (segment, after, limit) =>
        (await notesAfter(segment, after?.[0] as number | undefined, limit)).map((note) => ({ item: note, key: [note.visitNumber] })),
      );
      await auditNotes(request, page.items.map(({ item, segment }) => ({ id: item.id, context: segment.context })));
      return { search, page, resources: page.items.map(({ item, segment }) => toEncounter(item, segment.context)).filter(keep) };
    }
    // Observations page one by one, keyed [visit number, place in the note], so a page keeps to _count.
    const page = await readAcross(segments, { cursor: search.cursor, count: search.count, keyShape: ['position', 'position'] }, async (segment, after, limit) => {
      const [afterVisit, afterPlace] = (after ?? [0, -1]) as [number, number];
      const notes = anchored.note ? [anchored.note] : await notesAfter(segment, Math.max(afterVisit - 1, 0), limit);
      return notes
        .flatMap((note) => toObservations(note, segment.context).map((observation, place) => ({ item: { observation, noteId: note.id }, key: [note.visitNumber, place] })))
        .filter(({ key: [visit, place] }) => visit! > afterVisit || (visit === afterVisit && place! > afterPlace));
    });
    await auditNotes(request, page.items.map(({ item, segment }) => ({ id: item.noteId, context: segment.context })));
    return { search, page, resources: page.items.map(({ item }) => item.observation).filter(keep) };
  }

  for (const [definition, anchors] of [
    [encounterDefinition, ['based-on', 'patient']],
    [observationDefinition, ['based-on', 'patient', 'encounter']],
  ] as const) {
    app.get(`/${definition.type}`, {
      config: { policy: referralReadPolicy, auditAction: 'progress_report.list' },
      schema: searchSchema(definition),
    }, async (request, reply) => {
      assertJsonAccepted(request);
      const { search, page, resources } = await searchVisits(request, definition, [...anchors]);
      const applied = search.applied.filter(([name]) => name !== '_cursor');
      const next = page.next ? searchUrl(base, definition.type, [...applied, ['_cursor', page.next]]) : undefined;
      const entries = resources.map((resource) => ({ resource, mode: 'match' as const }));
      return sendBundle(reply, searchsetBundle({ base, entries, self: searchUrl(base, definition.type, search.applied), next }));
    });
  }
};

export default visitRoutes;
