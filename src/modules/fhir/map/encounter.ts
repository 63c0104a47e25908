// A visit note as a FHIR Encounter (id = visit note id): the visit, when, how long, by whom, for
// which order, and the CPT codes billed. The SOAP text, techniques and range of motion are not
// mapped; pain and outcome scores are Observations of the Encounter (observation.ts).
import type { ProgressReport } from '../../progress-reports/index.js';
import { systems, threadSystems } from '../codes.js';
import { organization, patient, practitioner, serviceRequest } from './references.js';
import type { ThreadContext } from './thread-context.js';

/** A note never changes; its addenda are what move it. */
export function noteLastUpdated(note: ProgressReport): string {
  return [note.signedAt, ...note.addenda.map((addendum) => addendum.createdAt)].sort().at(-1)!;
}

export function toEncounter(note: ProgressReport, context: ThreadContext) {
  const billed = [...new Set(note.billing.map((line) => line.cpt))];
  return {
    resourceType: 'Encounter',
    id: note.id,
    meta: { lastUpdated: noteLastUpdated(note) },
    status: 'finished',
    class: { system: threadSystems.actCode, code: 'AMB', display: 'ambulatory' },
    ...(billed.length > 0 && { type: billed.map((code) => ({ coding: [{ system: systems.cpt, code }] })) }),
    ...(context.identified && { subject: patient(context.patientId) }),
    basedOn: [serviceRequest(context.referralId)],
    participant: [{ individual: practitioner(note.authorId) }],
    period: { start: note.visitDate, end: note.visitDate },
    length: { value: note.minutes, unit: 'min', system: systems.ucum, code: 'min' },
    ...(context.practiceId && { serviceProvider: organization(context.practiceId) }),
  };
}
