// GET /v1/events: the events feed for apps that cannot host a webhook endpoint (SPEC §14.7). The
// answer always carries a cursor; with `wait` the request is held until an event arrives.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { validationFailed } from '../../lib/errors.js';
import { staffRoles } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';
import { EventsFeed, type FeedPage } from './events-feed.js';
import { feedStart, openCursor, positionBefore, sealCursor, type FeedPosition } from './feed-cursor.js';
import { EventFeedPage, EventFeedQuery } from './feed-schemas.js';
import type { FeedWaiters } from './feed-waiters.js';
import { subscribableEventTypes } from './schemas.js';

// Network admins take part in no referral, so they have no feed.
const policy = { roles: staffRoles, clientScope: 'referrals:read' } as const;
// After a wake-up that showed nothing (the event's transaction is behind an older one still
// running), look again this soon rather than only at the next event.
const catchUpMs = 500;

const later = (a: FeedPosition, b: FeedPosition) => (a.syncXid > b.syncXid || (a.syncXid === b.syncXid && a.eventId > b.eventId) ? a : b);

function typesOf(list: string | undefined): string[] | undefined {
  if (list === undefined) return undefined;
  const types = [...new Set(list.split(','))];
  const unknown = types.filter((type) => !(subscribableEventTypes as readonly string[]).includes(type));
  if (unknown.length > 0) throw validationFailed([{ field: 'query.types', message: `unknown event type ${unknown.join(', ')}` }]);
  return types;
}

const feedRoutes: FastifyPluginAsyncTypebox<{ feed: EventsFeed; waiters: FeedWaiters }> = async (app, { feed, waiters }) => {
  /** One page, and where the next begins: after the last event shown, or past everything considered. */
  const answer = (principal: Principal, from: FeedPosition, page: FeedPage, limit: number) => {
    const shown = page.events.slice(0, limit);
    const next = page.events.length > limit ? shown.at(-1)!.position : later(from, positionBefore(page.horizon));
    return {
      data: shown.map(({ position: _position, ...event }) => event),
      nextCursor: sealCursor(app.dataEncryption, principal, next),
    };
  };

  app.get('/events', {
    config: { policy, auditAction: 'event.list' },
    // Events are served as they were stored, kept up to EVENT_RETENTION_DAYS: one written before a
    // payload shape changed must not turn the whole page into a 500, as a schema-driven serializer
    // (which picks each item's branch of the FeedEvent union by validating it) would. What the
    // service writes is held to the documented union by the response contract in tests.
    serializerCompiler: () => (data) => JSON.stringify(data),
    schema: {
      tags: ['events'],
      operationId: 'listEvents',
      summary: 'Follow the events of the referrals you take part in (the webhook events, for apps that pull)',
      description:
        'Oldest first, in commit order: an event committed after you read past its place still comes to you. Thin events, as webhooks carry them: ' +
        'fetch the resource they name. Each is shown only if you may see its referral now. Kept EVENT_RETENTION_DAYS (default 30).',
      querystring: EventFeedQuery,
      response: { 200: EventFeedPage },
    },
  }, async (request) => {
    const principal = request.principal!;
    const { after, limit, wait } = request.query;
    const types = typesOf(request.query.types);
    const from = after === undefined ? feedStart : openCursor(app.dataEncryption, principal, after);
    const deadline = Date.now() + wait * 1000;
    let catchingUp = false;
    for (;;) {
      const page = await feed.read({ principal, after: from, types, limit: limit + 1 });
      const remaining = deadline - Date.now();
      if (page.events.length > 0 || remaining <= 0 || waiters.isClosing) return answer(principal, from, page, limit);
      catchingUp = await waiters.wait(catchingUp ? Math.min(remaining, catchUpMs) : remaining);
      // Closing: the database is going away, and what was read is a true (empty) answer to resume from.
      if (waiters.isClosing) return answer(principal, from, page, limit);
    }
  });
};

export default feedRoutes;
