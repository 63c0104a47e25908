// A Task an EHR PUTs, read as the workflow move it asks for (SPEC §16): only its status moves the
// referral, with statusReason as the reason, owner as whom it goes to, and input as the therapist's
// acknowledgement of the precautions. The rest of a Task is the server's: a change there is refused.
import { conflict, validationFailed, type FieldProblem } from '../../../lib/errors.js';
import type { TaskStatus } from '../map/task.js';

type Json = Record<string, any>;

export const precautionsInputCode = 'acknowledged-precautions';

export type TaskMove =
  | { move: 'none' }
  | { move: 'send' }
  | { move: 'accept'; therapistId?: string; acknowledgedPrecautions?: boolean }
  | { move: 'decline'; reason: string }
  | { move: 'cancel'; reason: string }
  | { move: 'reroute'; target: { therapistId: string } | { practiceId: string }; reason?: string };

/** What identifies each server-owned element: a client may send it back with a display added or keys reordered. */
const serverOwned: Record<string, (value: Json | undefined) => unknown> = {
  focus: (value) => value?.reference,
  for: (value) => value?.reference,
  requester: (value) => value?.reference,
  intent: (value) => value,
  code: (value) => value?.coding?.map((coding: Json) => `${coding?.system}|${coding?.code}`).join(','),
};
// As /v1: an office cancels any referral not yet closed, a declined one included.
const cancellable = new Set<TaskStatus>(['draft', 'requested', 'accepted', 'rejected', 'in-progress', 'on-hold']);
/** The /v1 limit of a move's reason. */
const maxReasonLength = 2000;

function ownerOf(body: Json): { therapistId: string } | { practiceId: string } | undefined {
  const reference = String(body.owner?.reference ?? '');
  const match = /^(Practitioner|Organization)\/([0-9a-fA-F-]{36})$/.exec(reference);
  if (!match) return undefined;
  return match[1] === 'Practitioner' ? { therapistId: match[2]!.toLowerCase() } : { practiceId: match[2]!.toLowerCase() };
}

function acknowledgedPrecautions(body: Json): boolean | undefined {
  const input = (body.input as Json[] | undefined)?.find(
    (item) => item?.type?.text === precautionsInputCode || item?.type?.coding?.some((coding: Json) => coding?.code === precautionsInputCode),
  );
  return typeof input?.valueBoolean === 'boolean' ? input.valueBoolean : undefined;
}

/** The move a PUT of `body` over the `current` Task asks for; 400 for a changed server-owned element, 409 for a move the workflow has not. */
export function moveOf(current: Json, body: Json): TaskMove {
  const problems: FieldProblem[] = [];
  if (body.id !== current.id) problems.push({ field: 'Task.id', message: 'must be the id in the URL' });
  for (const [element, identity] of Object.entries(serverOwned)) {
    if (body[element] !== undefined && identity(body[element]) !== identity(current[element])) {
      problems.push({ field: `Task.${element}`, message: 'is the server\'s and cannot change; send it as read, or leave it out' });
    }
  }
  const reasonText = body.statusReason?.text;
  if (typeof reasonText === 'string' && reasonText.length > maxReasonLength) {
    problems.push({ field: 'Task.statusReason.text', message: `must be at most ${maxReasonLength} characters` });
  }
  if (problems.length > 0) throw validationFailed(problems);

  const from = current.status as TaskStatus;
  const to = body.status as TaskStatus;
  const reason = typeof body.statusReason?.text === 'string' && body.statusReason.text.trim() !== '' ? (body.statusReason.text as string) : undefined;
  const needReason = () => {
    if (!reason) throw validationFailed([{ field: 'Task.statusReason.text', message: `is required to make the Task ${to}` }]);
    return reason;
  };
  if (to === from) {
    // Nothing moves without a new status; a changed owner or reason alone would be dropped.
    const changed = [
      ['Task.owner', body.owner !== undefined && body.owner?.reference !== current.owner?.reference],
      ['Task.statusReason.text', body.statusReason !== undefined && reason !== current.statusReason?.text],
    ] as const;
    const dropped = changed.filter(([, differs]) => differs).map(([field]) => ({ field, message: `changes only with a move of Task.status (it is ${from})` }));
    if (dropped.length > 0) throw validationFailed(dropped);
    return { move: 'none' };
  }
  if (from === 'draft' && to === 'requested') return { move: 'send' };
  if (from === 'requested' && to === 'accepted') {
    const owner = ownerOf(body);
    if (body.owner !== undefined && !(owner && 'therapistId' in owner)) {
      throw validationFailed([{ field: 'Task.owner', message: 'must be Practitioner/{therapistId}: the therapist who accepts' }]);
    }
    const acknowledged = acknowledgedPrecautions(body);
    return { move: 'accept', ...(owner && 'therapistId' in owner && { therapistId: owner.therapistId }), ...(acknowledged !== undefined && { acknowledgedPrecautions: acknowledged }) };
  }
  if (from === 'requested' && to === 'rejected') return { move: 'decline', reason: needReason() };
  if (cancellable.has(from) && to === 'cancelled') return { move: 'cancel', reason: needReason() };
  if (from === 'rejected' && to === 'requested') {
    const target = ownerOf(body);
    if (!target) throw validationFailed([{ field: 'Task.owner', message: 'is required to send the referral again: Practitioner/{therapistId} or Organization/{practiceId}' }]);
    return { move: 'reroute', target, ...(reason && { reason }) };
  }
  throw conflict('illegal-transition', `A Task cannot go from ${from} to ${to} through this server; the workflow's moves are described in the README`, { currentStatus: from });
}

/** FHIR clients send the version they read as a weak ETag (W/"3"); the workflow compares strong ones. */
export function strongIfMatch(ifMatch: string | undefined): string | undefined {
  return ifMatch?.split(',').map((tag) => tag.trim().replace(/^W\//, '')).join(', ');
}
