// Following GET /v1/events: long polls from a cursor, yielding each event in commit order. The
// cursor is handed to onCursor once every event of an answer has been handled, so an app that keeps
// it resumes after the last answer it finished and sees again at most the events it was handling
// when it stopped: handle them idempotently.
import type { Client } from 'openapi-fetch';
import type { FeedEvent, paths } from './schema.js';

export type FeedEventType = FeedEvent['type'];

export interface FollowOptions<Type extends FeedEventType = FeedEventType> {
  /** A cursor kept from an earlier run; without it the feed starts at the oldest event kept. */
  after?: string | undefined;
  /** Only these types (the events are typed as these); the cursor moves past the others. */
  types?: readonly Type[];
  /** Seconds each request waits for an event when there is none (0–30). */
  wait?: number;
  limit?: number;
  /** End after the first answer without events instead of asking again. */
  untilIdle?: boolean;
  onCursor?: (cursor: string) => unknown;
  signal?: AbortSignal;
}

export async function* followEvents<Type extends FeedEventType = FeedEventType>(
  api: Client<paths>,
  options: FollowOptions<Type> = {},
): AsyncGenerator<FeedEvent & { type: Type }, void, undefined> {
  let after = options.after;
  for (;;) {
    const { data } = await api.GET('/v1/events', {
      params: { query: { after, types: options.types?.join(','), wait: options.wait ?? 30, limit: options.limit } },
      ...(options.signal && { signal: options.signal }),
    });
    if (!data) throw new Error('GET /v1/events gave no page');
    // The service left out the other types.
    yield* data.data as (FeedEvent & { type: Type })[];
    after = data.nextCursor;
    await options.onCursor?.(after);
    if (options.untilIdle && data.data.length === 0) return;
  }
}
