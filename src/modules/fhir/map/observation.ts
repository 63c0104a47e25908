// What a visit measured as FHIR Observations: pain before and after the session (LOINC 72514-3, the
// 0–10 numeric rating) and each outcome score. Their ids are derived from the note's: `{noteId}-pain-before`,
// `{noteId}-pain-after`, `{noteId}-outcome-{n}` (n from 1, in the note's order), so a note's
// Observations are found again without a table of their own. Range of motion is not mapped.
import type { ProgressReport } from '../../progress-reports/index.js';
import { painSeverityLoinc, systems, threadSystems } from '../codes.js';
import { noteLastUpdated } from './encounter.js';
import { patient, practitioner, serviceRequest } from './references.js';
import type { ThreadContext } from './thread-context.js';

const instrumentNames: Record<string, string> = {
  NDI: 'Neck Disability Index',
  ODI: 'Oswestry Disability Index',
  LEFS: 'Lower Extremity Functional Scale',
  DASH: 'Disabilities of the Arm, Shoulder and Hand',
  PSFS: 'Patient-Specific Functional Scale',
  other: 'Other outcome measure',
};

/** The id pattern of the Observations of a note, for the read route's path. */
export const observationIdPattern = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-(pain-before|pain-after|outcome-[1-9][0-9]?)$';

/** The note an Observation id was derived from, and which of its Observations it names. */
export function parseObservationId(id: string): { noteId: string; part: string } {
  return { noteId: id.slice(0, 36).toLowerCase(), part: id.slice(37) };
}

const surveyCategory = [{ coding: [{ system: threadSystems.observationCategory, code: 'survey', display: 'Survey' }] }];

/** Every Observation of a visit note, in a fixed order: pain before, pain after, then the outcome scores. */
export function toObservations(note: ProgressReport, context: ThreadContext) {
  const common = {
    resourceType: 'Observation' as const,
    meta: { lastUpdated: noteLastUpdated(note) },
    basedOn: [serviceRequest(context.referralId)],
    status: 'final',
    category: surveyCategory,
  };
  const about = {
    ...(context.identified && { subject: patient(context.patientId) }),
    encounter: { reference: `Encounter/${note.id}` },
    effectiveDateTime: note.visitDate,
    performer: [practitioner(note.authorId)],
  };
  const pain = (timing: 'before' | 'after', value: number) => ({
    ...common,
    id: `${note.id}-pain-${timing}`,
    code: { coding: [painSeverityLoinc], text: `Pain severity 0-10, ${timing} the session` },
    ...about,
    valueInteger: value,
    method: { coding: [{ system: threadSystems.painTiming, code: timing, display: `${timing === 'before' ? 'Before' : 'After'} the session` }] },
  });
  return [
    pain('before', note.painBefore),
    pain('after', note.painAfter),
    ...note.outcomeMeasures.map((measure, index) => ({
      ...common,
      id: `${note.id}-outcome-${index + 1}`,
      code: {
        coding: [{ system: threadSystems.outcomeInstrument, code: measure.instrument, display: instrumentNames[measure.instrument] }],
        text: measure.name ?? instrumentNames[measure.instrument],
      },
      ...about,
      valueQuantity: { value: measure.score, unit: 'score', system: systems.ucum, code: '{score}' },
    })),
  ];
}
