// The referral state machine of SPEC §3: which move is legal from which status, decided in one place.
import { expirableStatuses, type ReferralStatus } from '../../lib/vocabulary.js';
import { conflict } from '../../lib/errors.js';

export type ReferralMove = 'sign' | 'send' | 'accept' | 'decline' | 'cancel' | 'reroute' | 'amend' | 'start' | 'complete' | 'discharge' | 'expire';

/** Open: the referral can still be treated or changed. */
export const openStatuses: readonly ReferralStatus[] = ['draft', 'sent', 'accepted', 'declined', 'in_progress'];

const moves: Record<ReferralMove, { from: readonly ReferralStatus[]; to?: ReferralStatus }> = {
  // Signing keeps the status; a referral sent before orders were signed can still be signed while open.
  sign: { from: openStatuses },
  send: { from: ['draft'], to: 'sent' },
  accept: { from: ['sent'], to: 'accepted' },
  decline: { from: ['sent'], to: 'declined' },
  reroute: { from: ['declined'], to: 'sent' },
  cancel: { from: openStatuses, to: 'cancelled' },
  // An amendment keeps the status.
  amend: { from: openStatuses },
  start: { from: ['accepted'], to: 'in_progress' },
  complete: { from: ['in_progress'], to: 'completed' },
  // A discharge report ends care whatever visits remain, with or without a visit (SPEC §14.3).
  discharge: { from: ['accepted', 'in_progress'], to: 'completed' },
  expire: { from: expirableStatuses, to: 'expired' },
};

/** Moves a client can ask for (start, complete and expire happen on their own; signing moves no status). */
const requestableMoves: readonly ReferralMove[] = ['send', 'accept', 'decline', 'reroute', 'cancel', 'amend'];

export function allowedMoves(status: ReferralStatus): ReferralMove[] {
  return requestableMoves.filter((move) => moves[move].from.includes(status));
}

export function targetStatus(move: ReferralMove, current: ReferralStatus): ReferralStatus {
  return moves[move].to ?? current;
}

/** Throws the 409 of an illegal move, carrying the current status and the moves allowed from it. */
export function assertMoveAllowed(move: ReferralMove, status: ReferralStatus): void {
  if (moves[move].from.includes(status)) return;
  const allowed = allowedMoves(status);
  throw conflict(
    'illegal-transition',
    `Cannot ${move} a referral that is ${status}; allowed from ${status}: ${allowed.length > 0 ? allowed.join(', ') : 'none'}`,
    { currentStatus: status, allowedMoves: allowed },
  );
}
