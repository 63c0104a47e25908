// A Communication a partner posts, read as a message of a referral's thread (after structural
// validation, which checks no codes): the referral it names, its text and priority. Everything the
// server sets (sender, recipient, subject, sent) or does not keep is refused by name, so a client
// learns what was not taken.
import type { FieldProblem } from '../../../lib/errors.js';
import { uuidPattern } from '../../../lib/vocabulary.js';

type Json = Record<string, unknown>;

const messagePriorities = ['routine', 'urgent'] as const;
const maxBodyLength = 5000;

/** Elements read, or harmless to send (id, meta and text are the resource's, not the message's). */
const taken = new Set(['resourceType', 'id', 'meta', 'text', 'status', 'partOf', 'basedOn', 'payload', 'priority']);
const serverOwned: Record<string, string> = {
  sender: 'is set by the server: the caller',
  recipient: "is set by the server: the referral's other side",
  subject: "is set by the server: the referral's patient",
  sent: 'is set by the server: when the message is posted',
};

export interface InboundCommunication {
  message: { body: string; priority: (typeof messagePriorities)[number] };
  /** The referral it is posted to: by its Task, its ServiceRequest, or both (which must agree). */
  target: { taskId?: string; referralId?: string };
  problems: FieldProblem[];
}

/** The id of `Type/{id}` (or `{base}/Type/{id}`) in the only reference of a list, else a problem. */
function referenceIn(value: unknown, path: string, type: string, base: string, problems: FieldProblem[]): string | undefined {
  if (value === undefined) return undefined;
  const list = value as Json[];
  if (list.length !== 1) {
    problems.push({ field: path, message: `must hold one reference, to a ${type}` });
    return undefined;
  }
  const reference = String(list[0]!.reference ?? '');
  const relative = reference.startsWith(`${base}/`) ? reference.slice(base.length + 1) : reference;
  const [named, id, ...rest] = relative.split('/');
  if (named !== type || !id || rest.length > 0 || !uuidPattern.test(id)) {
    problems.push({ field: `${path}[0].reference`, message: `must be ${type}/{id}, a ${type} of this server` });
    return undefined;
  }
  return id.toLowerCase();
}

export function communicationOf(resource: Json, base: string): InboundCommunication {
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(resource)) {
    if (serverOwned[key]) problems.push({ field: `Communication.${key}`, message: `${serverOwned[key]}; leave it out` });
    else if (!taken.has(key)) problems.push({ field: `Communication.${key}`, message: 'is not taken: a message is its text, priority and referral' });
  }
  if (resource.status !== 'completed') problems.push({ field: 'Communication.status', message: 'must be completed: a message is posted whole' });
  const priority = resource.priority ?? 'routine';
  if (!messagePriorities.includes(priority as never)) problems.push({ field: 'Communication.priority', message: `must be one of: ${messagePriorities.join(', ')}` });

  const taskId = referenceIn(resource.partOf, 'Communication.partOf', 'Task', base, problems);
  const referralId = referenceIn(resource.basedOn, 'Communication.basedOn', 'ServiceRequest', base, problems);
  if (resource.partOf === undefined && resource.basedOn === undefined) {
    problems.push({ field: 'Communication.partOf', message: "is required (the referral's Task), unless basedOn names its ServiceRequest" });
  }

  const payload = (resource.payload ?? []) as Json[];
  let body = '';
  if (payload.length !== 1) {
    problems.push({ field: 'Communication.payload', message: `must hold exactly one contentString (found ${payload.length} payloads)` });
  } else if (typeof payload[0]!.contentString !== 'string') {
    problems.push({ field: 'Communication.payload[0].contentString', message: 'is required: messages are text (no attachments or references)' });
  } else {
    body = payload[0]!.contentString;
    if (body.length === 0 || body.length > maxBodyLength) {
      problems.push({ field: 'Communication.payload[0].contentString', message: `must be 1 to ${maxBodyLength} characters` });
    }
  }
  return {
    message: { body, priority: priority as InboundCommunication['message']['priority'] },
    target: { ...(taskId && { taskId }), ...(referralId && { referralId }) },
    problems,
  };
}
