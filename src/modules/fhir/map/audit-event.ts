// An audit event as a FHIR AuditEvent (id = the event's number): a RESTful operation whose subtype
// is our action (referral.read, message.create, …), its outcome, the actor as agent (a person as
// Practitioner, an API client by identifier) with the client's address, and the record and
// patient it touched as entities. The request id, user agent and the log position (leafIndex) are
// not mapped: the /v1 event and its proofs stay the verifiable record.
import type { AuditEvent } from '../../audit/index.js';
import { threadSystems } from '../codes.js';

type Action = 'C' | 'R' | 'U' | 'D' | 'E';

/** The kind of operation, by the action's last word; what is none of create, read, update or delete is an execution (accept, sign, login). */
const actionOfVerb: Record<string, Action> = {
  create: 'C',
  addendum: 'C',
  read: 'R',
  list: 'R',
  read_content: 'R',
  export: 'R',
  viewers: 'R',
  update: 'U',
  amend: 'U',
  mark_read: 'U',
  delete: 'D',
  retract: 'D',
  revoke: 'D',
};

const outcomeCodes: Record<AuditEvent['outcome'], '0' | '4' | '8'> = { success: '0', denied: '4', error: '8' };

/** Our record types that are FHIR resources of this façade, by the FHIR type their ids are. */
const resourceTypes: Record<string, string> = {
  referral: 'ServiceRequest',
  task: 'Task',
  patient: 'Patient',
  message: 'Communication',
  progress_report: 'Encounter',
  report: 'DocumentReference',
  document: 'DocumentReference',
  user: 'Practitioner',
  organization: 'Organization',
  audit_event: 'AuditEvent',
};

function agentOf(event: AuditEvent) {
  const { actor } = event;
  const who =
    actor.type === 'user' && actor.id
      ? { reference: `Practitioner/${actor.id}` }
      : actor.type === 'api_client' && actor.id
        ? { identifier: { system: threadSystems.apiClient, value: actor.id }, display: 'API client' }
        : { display: actor.type === 'system' ? 'The service itself' : 'Anonymous caller' };
  return {
    ...(actor.role && { role: [{ text: actor.role }] }),
    who,
    requestor: actor.type !== 'system',
    ...(event.clientAddress && event.clientAddress !== 'internal' && { network: { address: event.clientAddress, type: '2' } }),
  };
}

/** The record the event is about, and its patient (the patient alone when the record is the patient). */
function entitiesOf(event: AuditEvent) {
  const recordIsPatient = event.resourceType === 'patient' && event.resourceId === event.patientId;
  const fhirType = event.resourceType ? resourceTypes[event.resourceType] : undefined;
  const record =
    event.resourceType && event.resourceId && !recordIsPatient
      ? {
          what: fhirType
            ? { reference: `${fhirType}/${event.resourceId}` }
            : { identifier: { system: `urn:massage-referral:resource:${event.resourceType}`, value: event.resourceId } },
          type: { system: threadSystems.auditEntityType, code: '2', display: 'System Object' },
        }
      : undefined;
  const patient = event.patientId
    ? {
        what: { reference: `Patient/${event.patientId}` },
        type: { system: threadSystems.auditEntityType, code: '1', display: 'Person' },
        role: { system: threadSystems.objectRole, code: '1', display: 'Patient' },
      }
    : undefined;
  return [record, patient].filter((entity) => entity !== undefined);
}

export function toAuditEvent(event: AuditEvent) {
  const verb = event.action.slice(event.action.lastIndexOf('.') + 1);
  const entity = entitiesOf(event);
  const described = [event.httpStatus === null ? undefined : `HTTP ${event.httpStatus}`, event.repeatCount ? `repeated ${event.repeatCount} more times in the window` : undefined].filter(Boolean);
  return {
    resourceType: 'AuditEvent',
    id: String(event.id),
    meta: { lastUpdated: event.occurredAt },
    type: { system: threadSystems.auditEventType, code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: threadSystems.auditAction, code: event.action }],
    action: actionOfVerb[verb] ?? 'E',
    recorded: event.occurredAt,
    outcome: outcomeCodes[event.outcome],
    ...(described.length > 0 && { outcomeDesc: described.join('; ') }),
    agent: [agentOf(event)],
    source: { observer: { display: 'Massage referral network API' } },
    ...(entity.length > 0 && { entity }),
  };
}
