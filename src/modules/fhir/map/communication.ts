// A message of a referral's thread as a FHIR Communication (id = message id): part of the referral's
// Task, based on its ServiceRequest, from a person (Practitioner) or an EHR (its Organization) to
// the other side's organization.
import type { Message } from '../../messages/index.js';
import { organization, patient, practitioner, serviceRequest, task } from './references.js';
import type { ThreadContext } from './thread-context.js';

/** The latest of the moments a message changed: written, acknowledged, escalated. */
function lastChange(message: Message): string {
  return [message.createdAt, message.acknowledgedAt, message.escalatedAt].filter((at): at is string => at !== null).sort().at(-1)!;
}

export function toCommunication(message: Message, context: ThreadContext) {
  const fromOffice = message.author.organizationId === context.officeId;
  const otherSide = fromOffice ? context.practiceId : context.officeId;
  return {
    resourceType: 'Communication',
    id: message.id,
    meta: { lastUpdated: lastChange(message) },
    basedOn: [serviceRequest(context.referralId)],
    partOf: [task(context.taskId)],
    status: 'completed',
    priority: message.priority,
    ...(context.identified && { subject: patient(context.patientId) }),
    sent: message.createdAt,
    ...(otherSide && { recipient: [organization(otherSide)] }),
    sender: message.author.type === 'user' ? practitioner(message.author.id) : organization(message.author.organizationId),
    payload: [{ contentString: message.body }],
  };
}
