// The FHIR webhook format (issue 18): an event as a small collection Bundle holding the referral's
// Task as it stands after the event, registered with the webhooks module for endpoints of format
// fhir. Thin like the standard payload (SPEC §8): ids, status and references, never the patient,
// a decline's reason or any clinical text; the partner reads the rest through the API.
import type { ReferralFacts } from '../../lib/domain-events.js';
import type { Referral } from '../referrals/index.js';
import type { WebhookEventFacts, WebhookRenderer } from '../webhooks/index.js';
import { toTask } from './map/task.js';
import { resourceDefinitions } from './resources.js';

export const eventTypeSystem = 'urn:massage-referral:event-type';

/** The FHIR type of each record an event may name, where the façade maps one; its FHIR id is its /v1 id. */
const fhirTypes: Partial<Record<string, string>> = {
  message: 'Communication',
  progress_report: 'Encounter',
  report: 'DocumentReference',
  document: 'DocumentReference',
  user: 'Practitioner',
};

/** What of the referral the Task mapper reads for the elements of the thin Task. */
type TaskInputs = Pick<Referral, 'id' | 'status' | 'version' | 'updatedAt' | 'prescriberId' | 'therapistId' | 'practiceId' | 'acceptedBy' | 'hold'>;

function taskInputsOf(referral: ReferralFacts, holdTold: boolean): TaskInputs {
  return {
    id: referral.id,
    status: referral.status,
    version: referral.version,
    updatedAt: referral.updatedAt.toISOString(),
    prescriberId: referral.prescriberId,
    therapistId: referral.targetKind === 'therapist' ? referral.targetTherapistId : null,
    practiceId: referral.targetKind === 'practice' ? referral.targetPracticeId : null,
    acceptedBy:
      referral.acceptedTherapistId && referral.acceptedPracticeId && referral.acceptedAt
        ? { therapistId: referral.acceptedTherapistId, practiceId: referral.acceptedPracticeId, at: referral.acceptedAt.toISOString() }
        : null,
    hold: holdTold && referral.holdSince && referral.holdAdverseEventId ? { since: referral.holdSince.toISOString(), adverseEventId: referral.holdAdverseEventId } : null,
  };
}

/**
 * A hold is part of the patient's care, told only to whoever may know the patient (the referral's
 * read model, identifiesPatient): the office and the accepting practice. One body goes to every
 * target, so the Task shows it only when every organization it goes to is one of those.
 */
function holdToldTo(referral: ReferralFacts, organizations: readonly string[]): boolean {
  return organizations.length > 0 && organizations.every((id) => id === referral.organizationId || id === referral.acceptedPracticeId);
}

/**
 * The Task's elements a partner follows the workflow by, from the same mapper as GET Task: not
 * `for` (the patient), `statusReason` (free text), `restriction` or dates of the order.
 */
function thinTask(referral: ReferralFacts, organizations: readonly string[]) {
  // The mapper reads only TaskInputs of these elements; the others it maps are left out below.
  const task = toTask({ referral: taskInputsOf(referral, holdToldTo(referral, organizations)) as Referral, taskId: referral.taskId });
  const { id, meta, status, businessStatus, intent, code, focus, requester, owner } = task;
  return { resourceType: 'Task', id, meta, status, ...(businessStatus && { businessStatus }), intent, code, focus, requester, ...(owner && { owner }) };
}

export function webhookBundleRenderer({ publicBaseUrl, fhirBase }: { publicBaseUrl: string; fhirBase: string }): WebhookRenderer {
  const served = new Set(resourceDefinitions.filter((definition) => definition.interactions.includes('read')).map((definition) => definition.type));

  /** Where the record the event names is read: its FHIR resource when the façade serves its type, else its /v1 URL. */
  function recordUrl({ type, id, url }: WebhookEventFacts['resource']): string {
    const fhirType = fhirTypes[type];
    return fhirType && served.has(fhirType) ? `${fhirBase}/${fhirType}/${id}` : `${publicBaseUrl}${url}`;
  }

  return (event) => {
    // A status event is told by the Task alone; anything else also points at the record it names
    // (a link, as an entry without a resource breaks bdl-5).
    const aboutReferral = event.referral !== null && event.resource.type === 'referral';
    const task = event.referral && thinTask(event.referral, event.organizations);
    return {
      resourceType: 'Bundle',
      id: event.id,
      meta: { tag: [{ system: eventTypeSystem, code: event.type }] },
      identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${event.id}` },
      type: 'collection',
      timestamp: event.timestamp,
      ...(!aboutReferral && { link: [{ relation: 'related', url: recordUrl(event.resource) }] }),
      ...(task && { entry: [{ fullUrl: `${fhirBase}/Task/${task.id}`, resource: task }] }),
    };
  };
}
