// The referral lifecycle of SPEC §3: every legal move, every illegal move from every status (409
// with the current status and the moves allowed), amendments, the history, and open network offers
// declined one therapist at a time. Expiry: referral-expiry.test.ts.
import t, { type Test } from 'tap';
import { auditEvents } from './fixtures/database.js';
import { addTherapist, createOffice, createPractice, type Member } from './fixtures/network.js';
import { assertProblem } from './fixtures/problems.js';
import { isoDate } from './fixtures/referral-bodies.js';
import { assertMoved, referralMoves, type Move, type ReferralStatus as Status } from './fixtures/referral-moves.js';
import { buildTestApp, type Json } from './helper.js';

const test = await buildTestApp(t);
const networkAdmin = await test.loginAsAdmin();
const office = await createOffice(test, networkAdmin);
const otherOffice = await createOffice(test, networkAdmin);
// The practice every referral is first sent to, and a second one to reroute to (both in Portland).
const practice = await createPractice(test, networkAdmin);
const second = await createPractice(test, networkAdmin);
// Three therapists of one practice in a region of their own, for open network offers.
const region = { lat: 41.0, lng: -95.0 };
const networkPractice = await createPractice(test, networkAdmin, { location: region, techniques: ['trigger_point'] });
const offerTherapists: Member[] = [
  networkPractice.therapist,
  await addTherapist(test, networkAdmin, networkPractice.id),
  await addTherapist(test, networkAdmin, networkPractice.id),
];

const { get, create, read, history, request, must, mustSign, staffDraft, visitNote, inStatus } = referralMoves(test, office, practice);

/** "a sent", "an accepted": the article for a status in test names. */
const a = (status: string) => `${/^[aeiou]/.test(status) ? 'an' : 'a'} ${status}`;

/** Asserts the referral is unchanged: same status and version as before. */
async function assertUnchanged(t: Test, before: Json) {
  const now = await read(before.id);
  t.equal(now.status, before.status, 'status unchanged');
  t.equal(now.version, before.version, 'version unchanged');
}

const allowed: Record<Status, Move[]> = {
  draft: ['send', 'cancel', 'amend'],
  sent: ['accept', 'decline', 'cancel', 'amend'],
  accepted: ['cancel', 'amend'],
  declined: ['reroute', 'cancel', 'amend'],
  in_progress: ['cancel', 'amend'],
  completed: [],
  cancelled: [],
  expired: [],
};
const statuses = Object.keys(allowed) as Status[];
const moves: Move[] = ['send', 'accept', 'decline', 'reroute', 'cancel', 'amend'];

/** Who asks for each move, with a body that is valid on its own. */
const attempt: Record<Move, { token: () => string; payload?: Json }> = {
  send: { token: () => office.physician.token },
  accept: { token: () => practice.therapist.token, payload: {} },
  decline: { token: () => practice.therapist.token, payload: { reason: 'No availability' } },
  reroute: { token: () => office.physician.token, payload: { practiceId: second.id } },
  cancel: { token: () => office.physician.token, payload: { reason: 'Patient moved' } },
  amend: { token: () => office.physician.token, payload: { visitsAuthorized: 99 } },
};

t.test('illegal moves from every status are refused (409 illegal-transition with currentStatus and allowedMoves) and change nothing', async (t) => {
  for (const status of statuses) {
    const referral = await inStatus(status);
    t.equal(referral.status, status, `set up ${a(status)} referral`);
    for (const move of moves.filter((move) => !allowed[status].includes(move))) {
      const { token, payload } = attempt[move];
      if (status === 'draft' && (move === 'accept' || move === 'decline')) {
        // A draft is the office's alone until it is sent: the therapist it names gets the outsider's 404.
        t.test(`${move} a draft referral is refused with 404: the therapist cannot see it yet`, async (t) => {
          assertProblem(t, await request(referral.id, move, token(), payload), 404);
          await assertUnchanged(t, referral);
        });
        continue;
      }
      t.test(`${move} ${a(status)} referral is refused`, async (t) => {
        const response = await request(referral.id, move, token(), payload);
        assertProblem(t, response, 409);
        t.match(response.json(), { code: 'illegal-transition', currentStatus: status, status: 409 });
        t.same(response.json().allowedMoves, allowed[status], `allowedMoves from ${status}`);
        await assertUnchanged(t, referral);
      });
    }
  }
});

t.test('POST /v1/referrals/{id}/send', async (t) => {
  t.test('sends a draft: sent, version 2, and a send event', async (t) => {
    const draft = await inStatus('draft');
    const sent = assertMoved(t, await request(draft.id, 'send', office.physician.token));
    t.match(sent, { status: 'sent', version: 2 });
    t.match(await history(draft.id), [
      { action: 'create', fromStatus: null, toStatus: 'draft', version: 1 },
      { action: 'send', fromStatus: 'draft', toStatus: 'sent', version: 2, actor: { type: 'user', id: office.physician.id, organizationId: office.id } },
    ]);
    const audited = await auditEvents(test, { action: 'referral.send', resourceId: draft.id });
    t.equal(audited.length, 1, 'audited once');
    t.match(audited[0], { outcome: 'success', actorId: office.physician.id, patientId: draft.patientId });
  });

  // Office staff send drafts of their office once they are signed (SPEC §14.1), never before.
  t.test('office staff may send a signed draft of their office', async (t) => {
    const draft = await inStatus('draft');
    t.match(draft.signature, { signedBy: office.physician.id, method: 'physician' }, "the physician's own draft is signed");
    t.equal(assertMoved(t, await request(draft.id, 'send', office.staff.token)).status, 'sent');
  });

  t.test('office staff cannot send an unsigned draft: 409 signature-required, nothing changed; once the prescriber signs it they can', async (t) => {
    const draft = await staffDraft();
    t.match(draft, { status: 'draft', signature: null }, "the staff's own draft is unsigned");
    const refused = await request(draft.id, 'send', office.staff.token);
    assertProblem(t, refused, 409);
    t.equal(refused.json().code, 'signature-required');
    await assertUnchanged(t, draft);
    t.equal((await history(draft.id)).length, 1, 'only the create event');
    const signed = await mustSign(draft.id);
    t.match(signed, { status: 'draft', version: 2, signature: { signedBy: office.physician.id, method: 'physician' } });
    t.match(assertMoved(t, await request(draft.id, 'send', office.staff.token)), { status: 'sent', version: 3 });
  });

  t.test('the therapist side cannot send: 404, nothing changed', async (t) => {
    const draft = await inStatus('draft');
    assertProblem(t, await request(draft.id, 'send', practice.therapist.token), 404);
    await assertUnchanged(t, draft);
  });

  t.test('another office cannot send: 404', async (t) => {
    const draft = await inStatus('draft');
    assertProblem(t, await request(draft.id, 'send', otherOffice.physician.token), 404);
    await assertUnchanged(t, draft);
  });

  t.test('a draft network offer that matches nobody cannot be sent: 409 no-matching-therapist, still a draft', async (t) => {
    const draft = await create({ therapistId: undefined, network: { techniques: ['craniosacral'], near: region, radiusKm: 10 } });
    const response = await request(draft.id, 'send', office.physician.token);
    assertProblem(t, response, 409);
    t.equal(response.json().code, 'no-matching-therapist');
    await assertUnchanged(t, draft);
  });
});

t.test('POST /v1/referrals/{id}/accept', async (t) => {
  t.test('the targeted therapist accepts: accepted, acceptedBy names them and their practice', async (t) => {
    const sent = await inStatus('sent');
    const accepted = assertMoved(t, await request(sent.id, 'accept', practice.therapist.token));
    t.match(accepted, { status: 'accepted', version: 2, acceptedBy: { therapistId: practice.therapist.id, practiceId: practice.id } });
    t.ok(Date.parse(accepted.acceptedBy.at) <= Date.now(), 'acceptedBy.at is a time');
    t.match((await history(sent.id)).at(-1), {
      action: 'accept',
      fromStatus: 'sent',
      toStatus: 'accepted',
      version: 2,
      actor: { type: 'user', id: practice.therapist.id, organizationId: practice.id },
      changes: { therapistId: practice.therapist.id },
    });
  });

  t.test('a practice admin accepts a referral to the practice, naming its therapist', async (t) => {
    const sent = await create({ therapistId: undefined, practiceId: practice.id, send: true });
    assertProblem(t, await request(sent.id, 'accept', practice.admin.token, {}), 400, ['therapistId']);
    assertProblem(t, await request(sent.id, 'accept', practice.admin.token, { therapistId: second.therapist.id }), 400, ['therapistId']);
    const accepted = assertMoved(t, await request(sent.id, 'accept', practice.admin.token, { therapistId: practice.therapist.id }));
    t.match(accepted, { status: 'accepted', acceptedBy: { therapistId: practice.therapist.id, practiceId: practice.id } });
    t.match((await history(sent.id)).at(-1), { action: 'accept', actor: { id: practice.admin.id } });
  });

  t.test('a therapist cannot accept in the name of someone else: 400 naming therapistId', async (t) => {
    const sent = await create({ therapistId: undefined, practiceId: practice.id, send: true });
    assertProblem(t, await request(sent.id, 'accept', practice.therapist.token, { therapistId: second.therapist.id }), 400, ['therapistId']);
    await assertUnchanged(t, sent);
  });

  t.test('a therapist of another practice gets 404; the office cannot accept (404)', async (t) => {
    const sent = await inStatus('sent');
    assertProblem(t, await request(sent.id, 'accept', second.therapist.token, {}), 404);
    assertProblem(t, await request(sent.id, 'accept', office.physician.token, {}), 404);
    assertProblem(t, await request(sent.id, 'accept', office.physician.token, { therapistId: practice.therapist.id }), 404);
    await assertUnchanged(t, sent);
  });
});

t.test('POST /v1/referrals/{id}/decline', async (t) => {
  t.test('the targeted therapist declines with a reason: declined, the reason kept', async (t) => {
    const sent = await inStatus('sent');
    const declined = assertMoved(t, await request(sent.id, 'decline', practice.therapist.token, { reason: 'Fully booked until March' }));
    t.match(declined, { status: 'declined', version: 2, acceptedBy: null });
    t.match((await history(sent.id)).at(-1), {
      action: 'decline',
      fromStatus: 'sent',
      toStatus: 'declined',
      version: 2,
      reason: 'Fully booked until March',
      actor: { type: 'user', id: practice.therapist.id, organizationId: practice.id },
    });
  });

  t.test('a practice admin declines a referral to the practice', async (t) => {
    const sent = await create({ therapistId: undefined, practiceId: practice.id, send: true });
    t.equal(assertMoved(t, await request(sent.id, 'decline', practice.admin.token, { reason: 'No capacity' })).status, 'declined');
  });

  for (const [what, payload] of [['no body', undefined], ['no reason', {}], ['an empty reason', { reason: '' }]] as const) {
    t.test(`decline with ${what} is 400 naming reason, nothing changed`, async (t) => {
      const sent = await inStatus('sent');
      assertProblem(t, await request(sent.id, 'decline', practice.therapist.token, payload), 400, what === 'no body' ? [] : ['reason']);
      await assertUnchanged(t, sent);
    });
  }

  t.test('the office cannot decline: 404', async (t) => {
    const sent = await inStatus('sent');
    assertProblem(t, await request(sent.id, 'decline', office.physician.token, { reason: 'x' }), 404);
    await assertUnchanged(t, sent);
  });
});

t.test('POST /v1/referrals/{id}/reroute', async (t) => {
  t.test('to another therapist: sent to them, who can accept it', async (t) => {
    const declined = await inStatus('declined');
    const rerouted = assertMoved(t, await request(declined.id, 'reroute', office.physician.token, { therapistId: second.therapist.id, reason: 'Closer to home' }));
    t.match(rerouted, { status: 'sent', version: 3, therapistId: second.therapist.id, practiceId: null, network: null });
    t.match((await history(declined.id)).at(-1), {
      action: 'reroute',
      fromStatus: 'declined',
      toStatus: 'sent',
      version: 3,
      reason: 'Closer to home',
      changes: {
        from: { targetKind: 'therapist', therapistId: practice.therapist.id, practiceId: null, network: null },
        to: { targetKind: 'therapist', therapistId: second.therapist.id, practiceId: null, network: null },
      },
    });
    t.equal(assertMoved(t, await request(declined.id, 'accept', second.therapist.token)).status, 'accepted');
  });

  t.test('to a practice: sent to the practice, whose therapist can accept it', async (t) => {
    const declined = await inStatus('declined');
    const rerouted = assertMoved(t, await request(declined.id, 'reroute', office.physician.token, { practiceId: second.id }));
    t.match(rerouted, { status: 'sent', therapistId: null, practiceId: second.id, network: null });
    t.match((await history(declined.id)).at(-1), { action: 'reroute', reason: null, changes: { to: { targetKind: 'practice', practiceId: second.id } } });
    t.equal(assertMoved(t, await request(declined.id, 'accept', second.therapist.token)).status, 'accepted');
  });

  t.test('to the network: an open offer to every matching therapist', async (t) => {
    const declined = await inStatus('declined');
    const network = { techniques: ['trigger_point'], near: region, radiusKm: 10 };
    const rerouted = assertMoved(t, await request(declined.id, 'reroute', office.physician.token, { network }));
    t.match(rerouted, { status: 'sent', therapistId: null, practiceId: null, network });
    for (const therapist of offerTherapists) t.equal((await get(`/v1/referrals/${declined.id}`, therapist.token)).statusCode, 200, 'the offer reaches each matching therapist');
    t.equal(assertMoved(t, await request(declined.id, 'accept', offerTherapists[1]!.token)).status, 'accepted');
  });

  t.test('to a network where nobody matches: 409 no-matching-therapist, still declined', async (t) => {
    const declined = await inStatus('declined');
    const response = await request(declined.id, 'reroute', office.physician.token, { network: { near: { lat: 0, lng: 0 }, radiusKm: 5 } });
    assertProblem(t, response, 409);
    t.equal(response.json().code, 'no-matching-therapist');
    await assertUnchanged(t, declined);
  });

  const badTargets: [string, Json, string[]][] = [
    ['no target', {}, ['therapistId', 'practiceId', 'network']],
    ['two targets', { therapistId: second.therapist.id, practiceId: second.id }, ['therapistId', 'practiceId']],
    ['an unknown therapist', { therapistId: crypto.randomUUID() }, ['therapistId']],
    ['a physician office as practice', { practiceId: office.id }, ['practiceId']],
  ];
  for (const [what, payload, fields] of badTargets) {
    t.test(`reroute with ${what} is 400 naming ${fields.join(', ')}, still declined`, async (t) => {
      const declined = await inStatus('declined');
      assertProblem(t, await request(declined.id, 'reroute', office.physician.token, payload), 400, fields);
      await assertUnchanged(t, declined);
    });
  }

  t.test('the therapist side cannot reroute: 404', async (t) => {
    const declined = await inStatus('declined');
    assertProblem(t, await request(declined.id, 'reroute', practice.therapist.token, { practiceId: second.id }), 404);
    await assertUnchanged(t, declined);
  });
});

t.test('POST /v1/referrals/{id}/cancel', async (t) => {
  for (const status of ['draft', 'sent', 'accepted', 'declined', 'in_progress'] as const) {
    t.test(`cancels ${a(status)} referral, keeping the reason`, async (t) => {
      const referral = await inStatus(status);
      const cancelled = assertMoved(t, await request(referral.id, 'cancel', office.physician.token, { reason: 'Patient moved out of state' }));
      t.match(cancelled, { status: 'cancelled', version: referral.version + 1 });
      t.match((await history(referral.id)).at(-1), {
        action: 'cancel',
        fromStatus: status,
        toStatus: 'cancelled',
        version: referral.version + 1,
        reason: 'Patient moved out of state',
        actor: { type: 'user', id: office.physician.id, organizationId: office.id },
      });
      const audited = await auditEvents(test, { action: 'referral.cancel', resourceId: referral.id });
      t.equal(audited.length, 1, 'audited once');
    });
  }

  for (const [what, payload] of [['no reason', {}], ['an empty reason', { reason: '' }]] as const) {
    t.test(`cancel with ${what} is 400 naming reason, nothing changed`, async (t) => {
      const sent = await inStatus('sent');
      assertProblem(t, await request(sent.id, 'cancel', office.physician.token, payload), 400, ['reason']);
      await assertUnchanged(t, sent);
    });
  }

  t.test('the therapist side cannot cancel: 404', async (t) => {
    const accepted = await inStatus('accepted');
    assertProblem(t, await request(accepted.id, 'cancel', practice.therapist.token, { reason: 'x' }), 404);
    await assertUnchanged(t, accepted);
  });
});

t.test('PATCH /v1/referrals/{id} (amend)', async (t) => {
  for (const status of ['draft', 'sent', 'accepted', 'declined', 'in_progress'] as const) {
    t.test(`extends expiresOn and raises visitsAuthorized of ${a(status)} referral, kept in the history`, async (t) => {
      const referral = await inStatus(status);
      const expiresOn = isoDate(120);
      const amended = assertMoved(t, await request(referral.id, 'amend', office.physician.token, { expiresOn, visitsAuthorized: 20, reason: 'Slow progress' }));
      t.match(amended, { status, version: referral.version + 1, expiresOn, visitsAuthorized: 20, progress: { visitsAuthorized: 20 } });
      t.match((await history(referral.id)).at(-1), {
        action: 'amend',
        fromStatus: status,
        toStatus: status,
        version: referral.version + 1,
        reason: 'Slow progress',
        actor: { type: 'user', id: office.physician.id },
        changes: { expiresOn: { from: referral.expiresOn, to: expiresOn }, visitsAuthorized: { from: referral.visitsAuthorized, to: 20 } },
      });
    });
  }

  t.test('each amendment is kept: two amendments, two events with their own changes', async (t) => {
    const referral = await inStatus('accepted');
    await must(referral.id, 'amend', office.physician.token, { visitsAuthorized: 14 });
    await must(referral.id, 'amend', office.physician.token, { expiresOn: isoDate(100) });
    const amendments = (await history(referral.id)).filter((event) => event.action === 'amend');
    t.equal(amendments.length, 2);
    t.same(amendments[0]!.changes, { visitsAuthorized: { from: 12, to: 14 } });
    t.same(amendments[1]!.changes, { expiresOn: { from: referral.expiresOn, to: isoDate(100) } });
  });

  const rejected: [string, (referral: Json) => Json, string[]][] = [
    ['an expiresOn equal to the current one', (referral) => ({ expiresOn: referral.expiresOn }), ['expiresOn']],
    ['an earlier expiresOn', () => ({ expiresOn: isoDate(30) }), ['expiresOn']],
    ['an expiresOn more than a year after startDate', () => ({ expiresOn: isoDate(400) }), ['expiresOn']],
    ['a visitsAuthorized equal to the current one', (referral) => ({ visitsAuthorized: referral.visitsAuthorized }), ['visitsAuthorized']],
    ['a lower visitsAuthorized', () => ({ visitsAuthorized: 6 }), ['visitsAuthorized']],
    ['a visitsAuthorized over 100', () => ({ visitsAuthorized: 101 }), ['visitsAuthorized']],
    ['a good expiresOn with a lower visitsAuthorized', () => ({ expiresOn: isoDate(120), visitsAuthorized: 6 }), ['visitsAuthorized']],
    ['an expiresOn that is not a date', () => ({ expiresOn: '2027-02-30' }), ['expiresOn']],
    ['a server-owned field', () => ({ status: 'completed' }), ['status']],
    ['a field that cannot be amended', () => ({ techniques: ['swedish'] }), ['techniques']],
  ];
  for (const [what, body, fields] of rejected) {
    t.test(`rejects ${what} with 400 naming ${fields.join(', ')}, nothing changed`, async (t) => {
      const referral = await inStatus('sent');
      assertProblem(t, await request(referral.id, 'amend', office.physician.token, body(referral)), 400, fields);
      const now = await read(referral.id);
      t.match(now, { version: referral.version, expiresOn: referral.expiresOn, visitsAuthorized: referral.visitsAuthorized });
    });
  }

  t.test('rejects an empty amendment with 400', async (t) => {
    const referral = await inStatus('sent');
    assertProblem(t, await request(referral.id, 'amend', office.physician.token, {}), 400);
    await assertUnchanged(t, referral);
  });

  t.test('rejects an amendment that changes nothing (only a reason) with 400', async (t) => {
    const referral = await inStatus('sent');
    const response = await request(referral.id, 'amend', office.physician.token, { reason: 'Nothing really' });
    t.equal(response.statusCode, 400, `answers 400 (got ${response.statusCode})`);
    const now = await read(referral.id);
    t.equal(now.version, referral.version, 'version unchanged');
    t.equal((await history(referral.id)).filter((event) => event.action === 'amend').length, 0, 'no amend event');
  });

  t.test("the therapist side cannot amend: the route's 403 for a role that never orders care", async (t) => {
    const referral = await inStatus('accepted');
    assertProblem(t, await request(referral.id, 'amend', practice.therapist.token, { visitsAuthorized: 30 }), 403);
    await assertUnchanged(t, referral);
  });
});

t.test('GET /v1/referrals/{id}/history', async (t) => {
  t.test('lists every transition in order with action, statuses, version, actor, reason and changes', async (t) => {
    const draft = await create({ therapistId: undefined, practiceId: practice.id });
    await must(draft.id, 'send', office.staff.token);
    await must(draft.id, 'decline', practice.admin.token, { reason: 'No capacity' });
    await must(draft.id, 'reroute', office.physician.token, { practiceId: second.id, reason: 'Second choice' });
    await must(draft.id, 'accept', second.admin.token, { therapistId: second.therapist.id });
    const expiresOn = isoDate(150);
    await must(draft.id, 'amend', office.physician.token, { expiresOn, reason: 'Extend' });
    await visitNote(draft.id, second.therapist.token);
    await visitNote(draft.id, second.therapist.token, true);

    const events = await history(draft.id);
    const user = (who: { id: string }, organizationId: string) => ({ type: 'user', id: who.id, organizationId });
    t.match(events, [
      { action: 'create', fromStatus: null, toStatus: 'draft', version: 1, actor: user(office.physician, office.id), reason: null, changes: null },
      { action: 'send', fromStatus: 'draft', toStatus: 'sent', version: 2, actor: user(office.staff, office.id) },
      { action: 'decline', fromStatus: 'sent', toStatus: 'declined', version: 3, actor: user(practice.admin, practice.id), reason: 'No capacity' },
      {
        action: 'reroute',
        fromStatus: 'declined',
        toStatus: 'sent',
        version: 4,
        actor: user(office.physician, office.id),
        reason: 'Second choice',
        changes: { from: { targetKind: 'practice', practiceId: practice.id }, to: { targetKind: 'practice', practiceId: second.id } },
      },
      { action: 'accept', fromStatus: 'sent', toStatus: 'accepted', version: 5, actor: user(second.admin, second.id), changes: { therapistId: second.therapist.id } },
      { action: 'amend', fromStatus: 'accepted', toStatus: 'accepted', version: 6, reason: 'Extend', changes: { expiresOn: { from: draft.expiresOn, to: expiresOn } } },
      { action: 'start', fromStatus: 'accepted', toStatus: 'in_progress', version: 7, actor: user(second.therapist, second.id) },
      { action: 'complete', fromStatus: 'in_progress', toStatus: 'completed', version: 8, actor: user(second.therapist, second.id) },
    ]);
    t.equal(events.length, 8, 'nothing else');
    t.same(Object.keys(events[5]!.changes), ['expiresOn'], 'the amendment records only what changed');
    const times = events.map((event) => Date.parse(event.occurredAt));
    t.same(times, [...times].sort((a, b) => a - b), 'oldest first');
    t.same(events.map((event) => event.id), [...events.map((event) => event.id)].sort((a, b) => a - b), 'ids ascending');
    t.equal((await read(draft.id)).status, 'completed');
  });

  t.test('both sides read the same history; pages of 2 walk it in order', async (t) => {
    const referral = await inStatus('accepted');
    const full = await history(referral.id);
    t.same(await history(referral.id, practice.therapist.token), full);
    const walked: Json[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = (await get(`/v1/referrals/${referral.id}/history?limit=2${cursor ? `&cursor=${cursor}` : ''}`, office.physician.token)).json();
      walked.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor !== null && walked.length <= full.length);
    t.same(walked, full);
  });

  t.test('outsiders get 404', async (t) => {
    const referral = await inStatus('sent');
    assertProblem(t, await get(`/v1/referrals/${referral.id}/history`, otherOffice.physician.token), 404);
    assertProblem(t, await get(`/v1/referrals/${referral.id}/history`, second.therapist.token), 404);
  });
});


t.test('open network offers', async (t) => {
  const offer = async () => create({ therapistId: undefined, network: { techniques: ['trigger_point'], near: region, radiusKm: 10 }, send: true });
  const [first, middle, last] = offerTherapists as [Member, Member, Member];

  t.test('each therapist declining removes only their own offer until the last one declines', async (t) => {
    const referral = await offer();
    for (const therapist of offerTherapists) t.equal((await get(`/v1/referrals/${referral.id}`, therapist.token)).statusCode, 200, 'offered to each');

    const afterFirst = assertMoved(t, await request(referral.id, 'decline', first.token, { reason: 'Too far' }));
    t.match(afterFirst, { status: 'sent', version: 2 });
    assertProblem(t, await get(`/v1/referrals/${referral.id}`, first.token), 404);
    assertProblem(t, await request(referral.id, 'decline', first.token, { reason: 'again' }), 404);
    assertProblem(t, await request(referral.id, 'accept', first.token), 404);
    t.equal((await get(`/v1/referrals/${referral.id}`, middle.token)).statusCode, 200, 'still offered to the others');

    t.match(assertMoved(t, await request(referral.id, 'decline', middle.token, { reason: 'Booked' })), { status: 'sent', version: 3 });
    t.match(assertMoved(t, await request(referral.id, 'decline', last.token, { reason: 'On leave' })), { status: 'declined', version: 4 });

    t.match(await history(referral.id), [
      { action: 'create' },
      { action: 'send' },
      { action: 'decline_offer', fromStatus: 'sent', toStatus: 'sent', version: 2, reason: 'Too far', actor: { id: first.id } },
      { action: 'decline_offer', fromStatus: 'sent', toStatus: 'sent', version: 3, reason: 'Booked', actor: { id: middle.id } },
      { action: 'decline', fromStatus: 'sent', toStatus: 'declined', version: 4, reason: 'On leave', actor: { id: last.id } },
    ]);
    t.equal((await read(referral.id)).status, 'declined', 'the office sees it declined');
  });

  t.test("a practice admin declines an open offer for all of the practice's therapists", async (t) => {
    const referral = await offer();
    t.equal((await get(`/v1/referrals/${referral.id}`, networkPractice.admin.token)).statusCode, 200, 'the admin sees the offer to their therapists');
    // Every therapist the offer reached is in this practice, so nobody is left and it is declined.
    t.match(assertMoved(t, await request(referral.id, 'decline', networkPractice.admin.token, { reason: 'Practice closed for renovation' })), { status: 'declined', version: 2 });
    for (const therapist of offerTherapists) assertProblem(t, await get(`/v1/referrals/${referral.id}`, therapist.token), 404);
    t.match((await history(referral.id)).at(-1), { action: 'decline', reason: 'Practice closed for renovation', actor: { id: networkPractice.admin.id } });
  });

  t.test('a practice admin accepts an open offer for one of their therapists', async (t) => {
    const referral = await offer();
    const accepted = assertMoved(t, await request(referral.id, 'accept', networkPractice.admin.token, { therapistId: last.id }));
    t.match(accepted, { status: 'accepted', acceptedBy: { therapistId: last.id, practiceId: networkPractice.id } });
    t.equal((await get(`/v1/referrals/${referral.id}`, last.token)).statusCode, 200);
    assertProblem(t, await get(`/v1/referrals/${referral.id}`, first.token), 404);
  });

  t.test('rerouting a declined offer to the network offers it afresh to everyone who matches', async (t) => {
    const referral = await offer();
    for (const therapist of offerTherapists) await must(referral.id, 'decline', therapist.token, { reason: 'No' });
    t.equal(assertMoved(t, await request(referral.id, 'reroute', office.physician.token, { network: { near: region, radiusKm: 10 } })).status, 'sent');
    for (const therapist of offerTherapists) t.equal((await get(`/v1/referrals/${referral.id}`, therapist.token)).statusCode, 200);
  });

  t.test('once one therapist accepts, the others lose the offer (404) and their accept is refused', async (t) => {
    const referral = await offer();
    t.match(assertMoved(t, await request(referral.id, 'accept', middle.token)), { status: 'accepted', acceptedBy: { therapistId: middle.id, practiceId: networkPractice.id } });
    assertProblem(t, await get(`/v1/referrals/${referral.id}`, first.token), 404);
    assertProblem(t, await request(referral.id, 'accept', last.token), 404);
    assertProblem(t, await request(referral.id, 'decline', last.token, { reason: 'x' }), 404);
    t.equal((await get(`/v1/referrals/${referral.id}`, networkPractice.admin.token)).statusCode, 200, "the accepting therapist's practice admin sees it now");
  });
});
