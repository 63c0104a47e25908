// The referral's workflow as a FHIR Task (SPEC §16): who is asked to do it and how far it got, with
// the BSeR business status where one fits. A Task has an id of its own, stable for the referral.
import type { Referral, ReferralState } from '../../referrals/index.js';
import { systems } from '../codes.js';
import { metaOf, organization, patient, practitioner, serviceRequest } from './references.js';

export const taskStatuses = ['draft', 'requested', 'accepted', 'rejected', 'in-progress', 'on-hold', 'completed', 'cancelled', 'failed'] as const;
export type TaskStatus = (typeof taskStatuses)[number];

/** The referral states each Task status stands for; a hold shows only to those who may know of it (SPEC §14.10). */
export const referralStatesOfTask: Record<TaskStatus, ReferralState> = {
  draft: { statuses: ['draft'] },
  requested: { statuses: ['sent'] },
  accepted: { statuses: ['accepted'], onHold: false },
  rejected: { statuses: ['declined'] },
  'in-progress': { statuses: ['in_progress'], onHold: false },
  'on-hold': { statuses: ['accepted', 'in_progress'], onHold: true },
  completed: { statuses: ['completed'] },
  cancelled: { statuses: ['cancelled'] },
  failed: { statuses: ['expired'] },
};

export function taskStatusOf(referral: Pick<Referral, 'status' | 'hold'>): TaskStatus {
  if (referral.hold) return 'on-hold';
  switch (referral.status) {
    case 'draft':
      return 'draft';
    case 'sent':
      return 'requested';
    case 'accepted':
      return 'accepted';
    case 'declined':
      return 'rejected';
    case 'in_progress':
      return 'in-progress';
    case 'completed':
      return 'completed';
    case 'cancelled':
      return 'cancelled';
    case 'expired':
      return 'failed';
  }
}

/** BSeR TaskBusinessStatus (STU1) codes, where one says what ours does; otherwise text alone. */
const businessStatuses: Partial<Record<TaskStatus, { code: string; display: string }>> = {
  requested: { code: '2.0', display: 'Service Request Created' },
  accepted: { code: '3.0', display: 'Service Request Accepted' },
  rejected: { code: '4.0', display: 'Service Request Declined' },
  cancelled: { code: '6.0', display: 'Service Request Fulfillment Cancelled' },
  completed: { code: '7.0', display: 'Service Request Fulfillment Completed' },
};
const businessStatusTexts: Partial<Record<TaskStatus, string>> = {
  'in-progress': 'Treatment in progress',
  'on-hold': 'Treatment paused after an adverse event',
  failed: 'Authorization expired',
};

function businessStatusOf(status: TaskStatus) {
  const coded = businessStatuses[status];
  if (coded) return { coding: [{ system: systems.bserBusinessStatus, ...coded }], text: coded.display };
  const text = businessStatusTexts[status];
  return text ? { text } : undefined;
}

/** Whose work it is now: the accepting therapist, else the therapist or practice it was sent to (none for an open offer). */
function ownerOf(referral: Referral) {
  if (referral.acceptedBy) return practitioner(referral.acceptedBy.therapistId);
  if (referral.therapistId) return practitioner(referral.therapistId);
  if (referral.practiceId) return organization(referral.practiceId);
  return undefined;
}

export interface TaskSource {
  referral: Referral;
  taskId: string;
  /** The reason of the decline or cancellation that brought it to its status, when it is one of those. */
  closingReason?: string | null | undefined;
  /** The reports to the prescriber written so far (the Task's outputs). */
  reports?: readonly { id: string; kind: string }[] | undefined;
}

export function toTask({ referral, taskId, closingReason, reports = [] }: TaskSource) {
  const status = taskStatusOf(referral);
  const businessStatus = businessStatusOf(status);
  const owner = ownerOf(referral);
  const statusReason = status === 'rejected' || status === 'cancelled' ? closingReason : undefined;
  return {
    resourceType: 'Task',
    id: taskId,
    meta: metaOf(referral),
    status,
    ...(statusReason && { statusReason: { text: statusReason } }),
    ...(businessStatus && { businessStatus }),
    intent: 'order',
    priority: referral.priority,
    code: { coding: [{ system: systems.taskCode, code: 'fulfill' }] },
    focus: serviceRequest(referral.id),
    ...(referral.patientId && { for: patient(referral.patientId) }),
    authoredOn: referral.createdAt,
    lastModified: referral.updatedAt,
    requester: practitioner(referral.prescriberId),
    ...(owner && { owner }),
    restriction: { repetitions: referral.visitsAuthorized, period: { start: referral.startDate, end: referral.expiresOn } },
    ...(reports.length > 0 && {
      output: reports.map((report) => ({ type: { text: `${report.kind} report to the prescriber` }, valueReference: { reference: `DocumentReference/${report.id}` } })),
    }),
  };
}
