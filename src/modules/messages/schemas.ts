// Shapes of a referral's message thread and its read markers (SPEC §5).
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, messagePriorities, principalKinds } from '../../lib/vocabulary.js';

export const MessagePriority = component('MessagePriority', enumOf(messagePriorities, {
  description: 'urgent: the other side is notified at once (message.urgent) and acknowledges it; unacknowledged in time, urgent.unacknowledged is sent once',
}));

export const CreateMessage = component('CreateMessage', Type.Object(
  {
    body: Type.String({ minLength: 1, maxLength: 5000 }),
    priority: Type.Optional({ ...MessagePriority, default: 'routine' }),
  },
  { additionalProperties: false },
));
export type CreateMessage = Static<typeof CreateMessage>;

export const Message = component('Message', Type.Object({
  id: Uuid,
  referralId: Uuid,
  author: Type.Object({
    type: enumOf(principalKinds),
    id: Uuid,
    organizationId: Uuid,
  }),
  body: Type.String(),
  priority: MessagePriority,
  acknowledgedAt: Type.Union([Timestamp, Type.Null()], {
    description: 'When the other side acknowledged this urgent message (the office for the therapist side\'s, the therapist side of the care team for the office\'s); null for a routine message or until then',
  }),
  acknowledgedBy: Type.Union([Uuid, Type.Null()], { description: 'The user or API client who acknowledged it first' }),
  escalatedAt: Type.Union([Timestamp, Type.Null()], { description: 'When urgent.unacknowledged was sent for it, if it was' }),
  createdAt: Timestamp,
}));
export type Message = Static<typeof Message>;

export const MessageParams = Type.Object({ id: Uuid, messageId: Uuid }, { additionalProperties: false });
export type MessageParams = Static<typeof MessageParams>;

export const MessageListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const MessagePage = component('MessagePage', Type.Object({
  data: Type.Array(Message),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  unread: Type.Integer({ description: "Messages of others in this thread the caller has not marked read" }),
}));

export const MarkRead = component('MarkMessagesRead', Type.Object(
  { upTo: Type.Optional(Type.String({ format: 'uuid', description: 'Mark read up to and including this message; without it, the whole thread' })) },
  { additionalProperties: false },
));
export type MarkRead = Static<typeof MarkRead>;

export const ReadState = component('MessageReadState', Type.Object({
  unread: Type.Integer(),
  lastReadMessageId: Type.Union([Uuid, Type.Null()]),
}));
