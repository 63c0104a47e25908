// Shapes of the events feed (SPEC §14.7): the thin events webhooks carry, with a cursor to follow.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { FeedEvent } from './event-schemas.js';
import { subscribableEventTypes } from './schemas.js';

export const maxFeedWaitSeconds = 30;

export const EventFeedQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'nextCursor of the previous answer; without it the feed starts at the oldest event still kept' })),
    types: Type.Optional(
      Type.String({
        maxLength: 2000,
        pattern: '^[a-z_]+\\.[a-z_]+(,[a-z_]+\\.[a-z_]+)*$',
        description: `Comma-separated event types to include (others are skipped, the cursor moves past them): ${subscribableEventTypes.join(', ')}`,
      }),
    ),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 100, description: 'Most events in one answer' }),
    wait: Type.Integer({
      minimum: 0,
      maximum: maxFeedWaitSeconds,
      default: 0,
      description: 'Seconds to hold the request open when no event is there yet (long poll); the answer comes as soon as one is',
    }),
  },
  { additionalProperties: false },
);
export type EventFeedQuery = Static<typeof EventFeedQuery>;

export const EventFeedPage = component('EventFeedPage', Type.Object(
  {
    data: Type.Array(FeedEvent),
    nextCursor: Type.String({ description: 'Always given: pass it as `after` to keep following the feed' }),
  }
));
