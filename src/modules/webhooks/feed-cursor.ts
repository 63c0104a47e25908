// The events feed's cursor: a position (writing transaction, event id) sealed for one caller. It is
// opaque, cannot be altered, and opens only for the caller it was issued to, so a cursor passed to
// someone else or edited is a 400, never a view of another caller's feed.
import type { SecretBox } from '../../lib/secret-box.js';
import { validationFailed } from '../../lib/errors.js';
import { uuidPattern } from '../../lib/vocabulary.js';
import type { Principal } from '../auth/policy.js';

export interface FeedPosition {
  syncXid: bigint;
  eventId: string;
}

/** The position before every event: a feed read from it starts at the oldest event still kept. */
export const feedStart: FeedPosition = { syncXid: -1n, eventId: '00000000-0000-0000-0000-000000000000' };

/** Past every event written by a transaction older than `horizon`: where a drained feed resumes. */
export const positionBefore = (horizon: bigint): FeedPosition => ({ syncXid: horizon - 1n, eventId: 'ffffffff-ffff-ffff-ffff-ffffffffffff' });

const purposeOf = (principal: Principal) => `events-feed-cursor:${principal.kind}:${principal.id}`;

export function sealCursor(box: SecretBox, principal: Principal, position: FeedPosition): string {
  return box.seal(`${position.syncXid}.${position.eventId}`, purposeOf(principal));
}

export function openCursor(box: SecretBox, principal: Principal, cursor: string): FeedPosition {
  let text: string | undefined;
  try {
    text = box.open(cursor, purposeOf(principal));
  } catch {
    text = undefined;
  }
  const match = text === undefined ? null : /^(-?\d{1,20})\.(.+)$/.exec(text);
  if (!match || !uuidPattern.test(match[2]!)) {
    throw validationFailed([{ field: 'query.after', message: 'is not a cursor this feed issued to you' }]);
  }
  return { syncXid: BigInt(match[1]!), eventId: match[2]! };
}
