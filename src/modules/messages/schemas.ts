// Shapes of a referral's message thread and its read markers (SPEC §5).
import { Type, type Static } from 'typebox';
import { PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { enumOf, principalKinds } from '../../lib/vocabulary.js';

export const CreateMessage = Type.Object(
  { body: Type.String({ minLength: 1, maxLength: 5000 }) },
  { additionalProperties: false, examples: [{ body: 'Patient reports numbness after session 2 — please advise.' }] },
);
export type CreateMessage = Static<typeof CreateMessage>;

export const Message = Type.Object({
  id: Uuid,
  referralId: Uuid,
  author: Type.Object({
    type: enumOf(principalKinds),
    id: Uuid,
    organizationId: Uuid,
  }),
  body: Type.String(),
  createdAt: Timestamp,
});
export type Message = Static<typeof Message>;

export const MessageListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const MessagePage = Type.Object({
  data: Type.Array(Message),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  unread: Type.Integer({ description: "Messages of others in this thread the caller has not marked read" }),
});

export const MarkRead = Type.Object(
  { upTo: Type.Optional(Type.String({ format: 'uuid', description: 'Mark read up to and including this message; without it, the whole thread' })) },
  { additionalProperties: false },
);
export type MarkRead = Static<typeof MarkRead>;

export const ReadState = Type.Object({
  unread: Type.Integer(),
  lastReadMessageId: Type.Union([Uuid, Type.Null()]),
});
