// The mass-assignment test's referral cases (mass-assignment.test.ts): creating and amending a
// referral, each lifecycle move, visit notes and their addenda, messages and read markers.
import { randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import { messageReadMarkers, messages, patients, progressReportAddenda, progressReports, referralEvents, referrals } from '../../src/db/schema.js';
import type { Json } from '../helper.js';
import type { Op, Owned } from './mass-assignment-operations.js';
import { byId, keyed, type MassAssignmentWorld } from './mass-assignment-world.js';

export function referralOperations(world: MassAssignmentWorld): Op[] {
  const { db, planted, mark, isoDate, office, practice, otherPractice, colleague, post, getJson, referralBody, newReferral, unsignedDraft, acceptedReferral, noteBody, foreign, referralRows, signatureParts, referralApi } = world;

  const plantedEventId = randomUUID();
  const referralOwned = (status: string): Owned[] => [
    { field: 'id', value: randomUUID() },
    { field: 'status', value: status },
    { field: 'version', value: 42 },
    { field: 'organizationId', value: foreign.org },
    { field: 'createdBy', value: foreign.user },
    { field: 'sentAt', value: planted },
    {
      field: 'acceptedBy',
      value: { therapistId: foreign.therapist, practiceId: foreign.practice, at: planted },
      also: { acceptedTherapistId: foreign.therapist, acceptedPracticeId: foreign.practice, acceptedAt: planted },
    },
    { field: 'progress', value: { visitsUsed: 7, visitsAuthorized: 99, visitsRemaining: 92 }, also: { visitsUsed: 7, visitsAuthorized: 99 } },
    { field: 'acceptedTherapistId', value: foreign.therapist },
    { field: 'acceptedPracticeId', value: foreign.practice },
    { field: 'acceptedAt', value: planted },
    { field: 'visitsUsed', value: 7 },
    { field: 'actorId', value: foreign.user },
    { field: 'createdAt', value: planted },
    { field: 'updatedAt', value: planted },
    // Only the server signs, for the prescriber (SPEC §14.1): neither the whole signature nor any part of it is taken.
    {
      field: 'signature',
      value: { signedBy: foreign.user, signedAt: planted, method: 'ehr_attested', attestation: 'forged' },
      also: { signedBy: foreign.user, signedAt: planted, signatureMethod: 'ehr_attested', attestation: 'forged' },
    },
    { field: 'signedBy', value: foreign.user },
    { field: 'signedAt', value: planted },
    // The link back from a later course, and the report cadence's state, are the server's (SPEC §14.3, §14.4).
    { field: 'continuedByReferralId', value: foreign.referral },
    { field: 'lastReportedVisit', value: 77 },
    { field: 'reportDue', value: { afterVisit: 99, overdue: true } },
    // A hold comes only from a severe adverse event, and goes only by the prescriber's resume (SPEC §14.10).
    // (One member, its parts checked in their columns: a 400 names at most 25 fields, and an amendment plants 24 besides.)
    { field: 'hold', value: { since: planted, adverseEventId: plantedEventId }, also: { holdSince: planted, holdAdverseEventId: plantedEventId } },
  ];

  /** A referral move (send, accept, …) on a fresh referral in the given state. */
  function moveOp(move: string, status: string, prepare: () => Promise<Json>, token: () => string, body?: () => Json, extra: Owned[] = []): Op {
    return {
      method: 'POST',
      path: `/v1/referrals/{id}/${move}`,
      consumes: true,
      owned: [...referralOwned(status), { field: 'patientId', value: foreign.patient }, { field: 'prescriberId', value: foreign.user }, ...extra],
      async setup() {
        const referral = await prepare();
        return {
          url: `/v1/referrals/${referral.id}/${move}`,
          token: token(),
          valid: () => body?.(),
          rows: () => referralRows(referral.id),
          api: () => referralApi(referral.id, office.physician.token),
        };
      },
    };
  }

  return [
    {
      method: 'POST',
      path: '/v1/referrals',
      creates: true,
      nested: [['patient'], ['patient', 'identifiers', 0], ['diagnoses', 0], ['insurance']],
      owned: [
        ...referralOwned('completed'),
        { field: 'prescriberId', value: foreign.user, legit: true },
        { field: 'patientId', value: foreign.patient, legit: true, omit: ['patient'] },
        // A new course continues one of the office's own (SPEC §14.4): another office's course is refused by name.
        { field: 'continuesReferralId', value: foreign.referral, legit: true },
      ],
      async setup() {
        return {
          url: '/v1/referrals',
          // The office admin drafts in the physician's name, and so creates it unsigned (SPEC §14.1):
          // a planted signature, whole or in part, is all that could sign it.
          token: office.admin.token,
          valid: () => referralBody(mark('new-referral'), { prescriberId: office.physician.id }),
          rows: async () => [
            ...byId('referrals')((await db.select().from(referrals)).map((row) => ({ ...row, ...signatureParts(row.signature) }))),
            ...byId('patients')(await db.select().from(patients)),
            ...byId('referral_events')(await db.select().from(referralEvents)),
          ],
          async api(response, injected) {
            const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
            return (await Promise.all(ids.map((id) => referralApi(id, office.physician.token)))).flat();
          },
        };
      },
    },
    {
      method: 'PATCH',
      path: '/v1/referrals/{id}',
      owned: [
        ...referralOwned('completed'),
        { field: 'patientId', value: foreign.patient },
        { field: 'prescriberId', value: foreign.user },
        { field: 'practiceId', value: foreign.practice, columns: ['targetPracticeId', 'practiceId'] },
      ],
      async setup() {
        const referral = await newReferral(true);
        let days = 91;
        return {
          url: `/v1/referrals/${referral.id}`,
          token: office.physician.token,
          // Each amendment must extend the expiry further.
          valid: () => ({ expiresOn: isoDate(++days) }),
          rows: () => referralRows(referral.id),
          api: () => referralApi(referral.id, office.physician.token),
        };
      },
    },
    moveOp('send', 'accepted', () => newReferral(false), () => office.physician.token),
    // The prescriber signs and sends the admin's draft: the signature is theirs, stamped now, by the method of who signs.
    moveOp('sign', 'completed', () => unsignedDraft(), () => office.physician.token, () => ({ attestation: true, send: true }), [
      { field: 'method', value: 'ehr_attested', columns: ['signatureMethod'] },
    ]),
    moveOp('accept', 'completed', () => newReferral(true), () => practice.therapist.token, () => ({}), [
      // A therapist accepts as themself; naming a colleague must not make the colleague the acceptor.
      { field: 'therapistId', value: colleague.id, legit: true, columns: ['acceptedTherapistId'] },
    ]),
    moveOp('decline', 'accepted', () => newReferral(true), () => practice.therapist.token, () => ({ reason: mark('decline') })),
    // The prescriber lifts the hold a severe adverse event put on treatment (SPEC §14.10); the hold's own members are the server's.
    moveOp(
      'resume',
      'completed',
      async () => {
        const referral = await acceptedReferral();
        await post(
          `/v1/referrals/${referral.id}/adverse-events`,
          practice.therapist.token,
          { occurredOn: isoDate(0), description: 'Bruising; treatment paused', severity: 'severe', actionTaken: 'Stopped pressure work', treatmentPaused: true },
          201,
        );
        return referral;
      },
      () => office.physician.token,
      () => ({ attestation: true, comment: mark('resume') }),
    ),
    moveOp('cancel', 'completed', () => newReferral(true), () => office.physician.token, () => ({ reason: mark('cancel') })),
    moveOp(
      'reroute',
      'accepted',
      async () => {
        const referral = await newReferral(true);
        return post(`/v1/referrals/${referral.id}/decline`, practice.therapist.token, { reason: 'No availability' });
      },
      () => office.physician.token,
      () => ({ practiceId: otherPractice.id, reason: mark('reroute') }),
    ),
    {
      method: 'POST',
      path: '/v1/referrals/{id}/progress-reports',
      creates: true,
      nested: [['rangeOfMotion', 0], ['outcomeMeasures', 0], ['billing', 0]],
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'visitNumber', value: 77 },
        { field: 'authorId', value: foreign.therapist },
        { field: 'referralId', value: foreign.referral },
        { field: 'signedAt', value: planted },
        { field: 'createdAt', value: planted },
        { field: 'status', value: 'completed' },
        { field: 'visitsUsed', value: 9 },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const listUrl = `/v1/referrals/${referral.id}/progress-reports`;
        return {
          url: listUrl,
          token: practice.therapist.token,
          valid: () => noteBody(mark('note')),
          rows: async () => [
            ...byId('progress_reports')(await db.select().from(progressReports).where(eq(progressReports.referralId, referral.id))),
            ...(await referralRows(referral.id)),
          ],
          async api() {
            const notes = (await getJson(listUrl, practice.therapist.token))?.data ?? [];
            return [...notes, ...(await referralApi(referral.id, practice.therapist.token))];
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/progress-reports/{reportId}/addenda',
      creates: true,
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'authorId', value: foreign.therapist },
        { field: 'reportId', value: randomUUID() },
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const listUrl = `/v1/referrals/${referral.id}/progress-reports`;
        const report = await post(listUrl, practice.therapist.token, noteBody(mark('note')), 201);
        return {
          url: `${listUrl}/${report.id}/addenda`,
          token: practice.therapist.token,
          valid: () => ({ text: mark('addendum') }),
          rows: async () => byId('addenda')(await db.select().from(progressReportAddenda).where(eq(progressReportAddenda.reportId, report.id))),
          async api() {
            const notes = (await getJson(listUrl, practice.therapist.token))?.data ?? [];
            return notes.flatMap((note: Json) => note.addenda);
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/messages',
      creates: true,
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'authorId', value: foreign.user },
        { field: 'authorType', value: 'api_client' },
        { field: 'authorOrganizationId', value: foreign.org },
        {
          field: 'author',
          value: { type: 'api_client', id: foreign.user, organizationId: foreign.org },
          also: { authorType: 'api_client', authorId: foreign.user, authorOrganizationId: foreign.org },
        },
        { field: 'referralId', value: foreign.referral },
        { field: 'seq', value: 999_999 },
        { field: 'createdAt', value: planted },
        // An urgent message's flags are the other side's to set, by acknowledging, and the worker's (SPEC §14.10).
        { field: 'acknowledgedAt', value: planted },
        { field: 'acknowledgedBy', value: foreign.user },
        { field: 'escalatedAt', value: planted },
      ],
      async setup() {
        const referral = await newReferral(true);
        const url = `/v1/referrals/${referral.id}/messages`;
        return {
          url,
          token: office.physician.token,
          valid: () => ({ body: mark('message') }),
          rows: async () => byId('messages')(await db.select().from(messages).where(inArray(messages.referralId, [referral.id, foreign.referral]))),
          async api() {
            const thread = (await getJson(`${url}?limit=200`, office.physician.token))?.data ?? [];
            return thread.map((message: Json) => ({ ...message, authorId: message.author.id, authorType: message.author.type, authorOrganizationId: message.author.organizationId }));
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/messages/read',
      owned: [
        { field: 'readerId', value: foreign.user },
        { field: 'referralId', value: foreign.referral },
        { field: 'lastReadSeq', value: 999_999 },
        { field: 'updatedAt', value: planted },
      ],
      async setup() {
        const referral = await newReferral(true);
        await post(`/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: 'Question about the referral' }, 201);
        return {
          url: `/v1/referrals/${referral.id}/messages/read`,
          token: office.physician.token,
          valid: () => ({}),
          rows: async () =>
            keyed('read_markers', (row) => `${row.referralId}/${row.readerId}`)(
              await db.select().from(messageReadMarkers).where(inArray(messageReadMarkers.referralId, [referral.id, foreign.referral])),
            ),
          api: async () => [],
        };
      },
    },
  ];
}
