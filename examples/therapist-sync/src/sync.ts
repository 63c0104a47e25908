// What the therapist's app does with each event: a referral sent to them is read (the limited view
// before acceptance), accepted when the app may, and given one visit note per day, under an
// Idempotency-Key that makes a repeat of the same work a replay. Logs carry ids, never patient data.
import { ApiProblem, followEvents, ok, type Api, type CreateProgressReport, type Referral } from '@massage-referral/client';

export interface SyncOptions {
  /** Accept referrals sent to this therapist and record a visit on them (a demo of the writes). */
  autoAccept: boolean;
  /** Stop after the first long poll that brings nothing. */
  untilIdle: boolean;
  /** Seconds each long poll waits (0–30). */
  wait: number;
  /** The cursor kept by the last run. */
  after: string | undefined;
  saveCursor: (cursor: string) => Promise<void>;
  log: (line: string) => void;
  signal?: AbortSignal;
}

const today = () => new Date().toISOString().slice(0, 10);

export async function syncReferrals(api: Api, options: SyncOptions): Promise<void> {
  const { log } = options;
  const me = ok(await api.GET('/v1/me'));
  if (me.kind !== 'user' || me.role !== 'therapist') throw new Error(`signed in as a ${me.role}, not a therapist`);
  log(`signed in as therapist ${me.id}`);
  log(options.after ? 'following the events feed from the saved cursor' : 'following the events feed from its oldest event');

  const events = followEvents(api, {
    after: options.after,
    types: ['referral.sent', 'referral.accepted'],
    wait: options.wait,
    untilIdle: options.untilIdle,
    onCursor: options.saveCursor,
    ...(options.signal && { signal: options.signal }),
  });
  for await (const event of events) {
    const referralId = event.data.referralId;
    log(`event ${event.type} ${event.id}: referral ${referralId}`);
    try {
      await settle(api, me.id, referralId, options);
    } catch (error) {
      // A refusal concerns this referral only (taken by someone else, cancelled meanwhile, …).
      if (!(error instanceof ApiProblem)) throw error;
      log(`referral ${referralId}: refused: ${error.status} ${error.code ?? error.title} (request ${error.requestId})`);
    }
  }
  log('no new events: done until the next run');
}

/** Brings a referral to where the app takes it: read, then accepted and one visit recorded today. */
async function settle(api: Api, therapistId: string, referralId: string, options: SyncOptions): Promise<void> {
  const path = { id: referralId };
  let referral = ok(await api.GET('/v1/referrals/{id}', { params: { path } }));
  const warned = referral.precautions.length > 0 || referral.contraindications.trim() !== '';
  options.log(
    `referral ${referral.id}: ${referral.status}, ${referral.frequencyPerWeek}x/week for ${referral.durationWeeks} weeks, ` +
      `${referral.sessionMinutes} min, ${referral.precautions.length} precaution(s)${referral.contraindications.trim() ? ' and contraindications' : ''}`,
  );
  if (!options.autoAccept) return;

  if (referral.status === 'sent') {
    // Precautions shown to the therapist are acknowledged explicitly; AUTO_ACCEPT=1 is their standing consent.
    const body = warned ? { acknowledgedPrecautions: true } : {};
    referral = ok(await api.POST('/v1/referrals/{id}/accept', { params: { path }, body }));
    options.log(`referral ${referral.id}: accepted${warned ? ', precautions acknowledged' : ''}`);
  }
  if (referral.acceptedBy?.therapistId !== therapistId || !['accepted', 'in_progress'].includes(referral.status)) return;

  const visitDate = today();
  const posted = await api.POST('/v1/referrals/{id}/progress-reports', {
    // Derived from what the note is, not random: a run that repeats this work (no saved cursor, or
    // an event seen again) gets the first answer back instead of a second note.
    params: { path, header: { 'idempotency-key': `therapist-sync:visit-note:${referral.id}:${visitDate}` } },
    body: visitNote(referral, visitDate),
  });
  const note = ok(posted);
  const replayed = posted.response.headers.get('idempotent-replayed') === 'true';
  options.log(`referral ${referral.id}: visit note ${note.visitNumber} of ${visitDate} ${replayed ? 'already recorded (replayed)' : 'recorded'}`);
}

/** The same note for the same referral and day: a replayed key must come with the same body. */
function visitNote(referral: Referral, visitDate: string): CreateProgressReport {
  return {
    visitDate,
    subjective: 'Reports pain 6/10 at the start of the session',
    objective: 'Palpable taut bands in the treated regions',
    assessment: 'Tolerated treatment well; tissue response as expected',
    plan: `Continue ${referral.frequencyPerWeek}x/week as prescribed`,
    painBefore: 6,
    painAfter: 4,
    techniquesApplied: referral.techniques,
    minutes: referral.sessionMinutes,
  };
}
