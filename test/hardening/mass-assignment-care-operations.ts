// The mass-assignment test's cases for the care team's shared records (mass-assignment.test.ts):
// documents shared on a referral (SPEC §14.6), uploaded as multipart/form-data, whose type, size,
// hash and uploader the server tells from the bytes and the caller; appointments (SPEC §14.5),
// whose booking, author and times are the server's, and whose only changeable member is the status;
// and urgent news (SPEC §14.10): adverse events, whose reporter, acknowledgement and escalation are
// the server's, as is the hold a severe one puts on the referral, and the acknowledgement of an
// urgent message or an adverse event, which takes no body and so no member at all.
import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import { adverseEvents, appointments, documents, messages } from '../../src/db/schema.js';
import { sampleFile, type Part } from '../fixtures/documents.js';
import type { Json } from '../helper.js';
import type { Op, Owned } from './mass-assignment-operations.js';
import { byId, type MassAssignmentWorld, type Rec } from './mass-assignment-world.js';

export function careOperations(world: MassAssignmentWorld): Op[] {
  const { db, planted, mark, isoDate, office, practice, post, getJson, acceptedReferral, foreign, referralRows, referralApi, test } = world;

  const documentsUrl = (referralId: string) => `/v1/referrals/${referralId}/documents`;
  const appointmentsUrl = (referralId: string) => `/v1/referrals/${referralId}/appointments`;
  const inTwoDays = () => new Date(Date.now() + 48 * 3_600_000).toISOString();

  /** Document rows of the referral and of the foreign referral a planted referralId names. */
  async function documentRows(referralId: string): Promise<Rec[]> {
    return [...byId('documents')(await db.select().from(documents).where(inArray(documents.referralId, [referralId, foreign.referral]))), ...(await referralRows(referralId))];
  }
  /** Documents as the API shows them, the uploader's members as the columns they come from; and one found under a planted id. */
  async function documentsApi(referralId: string, injected: Rec): Promise<Rec[]> {
    const listed: Json[] = (await getJson(`${documentsUrl(referralId)}?limit=200`, office.physician.token))?.data ?? [];
    const planted = typeof injected.id === 'string' ? await getJson(`${documentsUrl(referralId)}/${injected.id}`, office.physician.token) : undefined;
    return [
      ...[...listed, ...(planted ? [planted] : [])].map((document) => ({
        ...document,
        uploaderType: document.uploadedBy?.type,
        uploadedBy: document.uploadedBy?.id,
        uploaderOrganizationId: document.uploadedBy?.organizationId,
      })),
      ...(await referralApi(referralId, office.physician.token)),
    ];
  }

  async function appointmentRows(referralId: string): Promise<Rec[]> {
    return [...byId('appointments')(await db.select().from(appointments).where(inArray(appointments.referralId, [referralId, foreign.referral]))), ...(await referralRows(referralId))];
  }
  async function appointmentsApi(referralId: string): Promise<Rec[]> {
    const listed: Json[] = (await getJson(`${appointmentsUrl(referralId)}?limit=200`, practice.therapist.token))?.data ?? [];
    return [...listed, ...(await referralApi(referralId, office.physician.token))];
  }

  const adverseEventsUrl = (referralId: string) => `/v1/referrals/${referralId}/adverse-events`;
  const adverseEventBody = (marker: string): Json => ({ occurredOn: isoDate(0), description: marker, severity: 'mild', actionTaken: 'Lighter pressure next visit', treatmentPaused: false });
  async function adverseEventRows(referralId: string): Promise<Rec[]> {
    return [
      ...byId('adverse_events')(await db.select().from(adverseEvents).where(inArray(adverseEvents.referralId, [referralId, foreign.referral]))),
      ...(await referralRows(referralId)),
    ];
  }
  /** Adverse events as the API shows them, the reporter's members as the columns they come from. */
  async function adverseEventsApi(referralId: string): Promise<Rec[]> {
    const listed: Json[] = (await getJson(`${adverseEventsUrl(referralId)}?limit=200`, office.physician.token))?.data ?? [];
    return [
      ...listed.map((event) => ({ ...event, reporterType: event.reportedBy?.type, reportedBy: event.reportedBy?.id, reporterOrganizationId: event.reportedBy?.organizationId })),
      ...(await referralApi(referralId, office.physician.token)),
    ];
  }
  const plantedEventId = randomUUID();
  /** What the server stamps on an adverse event, and what a report may move on the referral. */
  const adverseEventOwned: Owned[] = [
    { field: 'id', value: randomUUID() },
    { field: 'referralId', value: foreign.referral },
    {
      field: 'reportedBy',
      value: { type: 'api_client', id: foreign.user, organizationId: foreign.org },
      also: { reporterType: 'api_client', reportedBy: foreign.user, reporterOrganizationId: foreign.org },
    },
    { field: 'reporterType', value: 'api_client' },
    { field: 'reporterOrganizationId', value: foreign.org },
    { field: 'createdAt', value: planted },
    { field: 'acknowledgedAt', value: planted },
    { field: 'acknowledgedBy', value: foreign.user },
    { field: 'escalatedAt', value: planted },
    // Only a severe event with treatment paused holds the referral: a mild one, whatever it says, does not.
    { field: 'hold', value: { since: planted, adverseEventId: plantedEventId }, also: { holdSince: planted, holdAdverseEventId: plantedEventId } },
    { field: 'holdSince', value: planted },
  ];
  // The thread's rows alone: the referral's own priority (routine) is not the message's.
  const messageRows = async (referralId: string): Promise<Rec[]> => byId('messages')(await db.select().from(messages).where(inArray(messages.referralId, [referralId, foreign.referral])));
  async function threadApi(referralId: string): Promise<Rec[]> {
    const thread: Json[] = (await getJson(`/v1/referrals/${referralId}/messages?limit=200`, office.physician.token))?.data ?? [];
    return thread.map((message) => ({ ...message, authorId: message.author.id, authorType: message.author.type, authorOrganizationId: message.author.organizationId }));
  }

  /** What the server stamps on a booking, and what it moves on the referral. */
  const bookingOwned: Owned[] = [
    { field: 'id', value: randomUUID() },
    { field: 'referralId', value: foreign.referral },
    { field: 'createdBy', value: foreign.user },
    { field: 'createdAt', value: planted },
    { field: 'updatedAt', value: planted },
    // The referral's view of its visits (SPEC §14.5): the server's count and the next booked start.
    { field: 'noShows', value: 7 },
    { field: 'nextAppointmentAt', value: '2099-01-02T03:04:05.000Z' },
  ];

  // A PDF of a few KiB: planted values must not be what the server tells from it.
  const file = sampleFile.pdf();
  const declaredType: Owned = { field: 'contentType', value: 'image/tiff' };

  return [
    {
      method: 'POST',
      path: '/v1/referrals/{id}/documents',
      creates: true,
      multipart: { declared: { contentType: declaredType } },
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'referralId', value: foreign.referral },
        // Told by the bytes, whatever the file is named or declared as.
        declaredType,
        { field: 'sizeBytes', value: 1 },
        { field: 'sha256', value: '0'.repeat(64) },
        {
          field: 'uploadedBy',
          value: { type: 'api_client', id: foreign.user, organizationId: foreign.org },
          also: { uploaderType: 'api_client', uploadedBy: foreign.user, uploaderOrganizationId: foreign.org },
        },
        { field: 'uploaderType', value: 'api_client' },
        { field: 'uploaderOrganizationId', value: foreign.org },
        { field: 'contentUrl', value: 'https://attacker.example/planted.pdf' },
        { field: 'createdAt', value: planted },
        // A document is born visible: its retraction is a DELETE by the uploading organization.
        { field: 'retractedAt', value: planted },
        { field: 'retractedBy', value: foreign.user },
        { field: 'retractionReason', value: 'planted' },
      ],
      async setup() {
        const referral = await acceptedReferral();
        return {
          url: documentsUrl(referral.id),
          token: office.physician.token,
          valid: () => undefined,
          form: (): Part[] => [
            { name: 'category', value: 'imaging' },
            { name: 'title', value: mark('document') },
            { name: 'file', filename: 'scan.pdf', contentType: 'application/pdf', data: file },
          ],
          rows: () => documentRows(referral.id),
          api: (_response, injected) => documentsApi(referral.id, injected),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/appointments',
      creates: true,
      owned: [...bookingOwned, { field: 'status', value: 'attended' }],
      async setup() {
        const referral = await acceptedReferral();
        return {
          url: appointmentsUrl(referral.id),
          token: practice.therapist.token,
          valid: () => ({ startsAt: inTwoDays(), minutes: 60 }),
          rows: () => appointmentRows(referral.id),
          api: () => appointmentsApi(referral.id),
        };
      },
    },
    {
      method: 'PATCH',
      path: '/v1/referrals/{id}/appointments/{appointmentId}',
      owned: [
        ...bookingOwned,
        // What was booked stays as booked: only what became of it changes.
        { field: 'startsAt', value: planted },
        { field: 'minutes', value: 7 },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const booked = await test.create(appointmentsUrl(referral.id), practice.therapist.token, { startsAt: inTwoDays(), minutes: 60 });
        return {
          url: `${appointmentsUrl(referral.id)}/${booked.id}`,
          token: practice.therapist.token,
          // A visit not begun yet: cancelled, then the same status again (no change), attempt after attempt.
          valid: () => ({ status: 'cancelled_by_practice' }),
          rows: () => appointmentRows(referral.id),
          api: () => appointmentsApi(referral.id),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/adverse-events',
      creates: true,
      owned: adverseEventOwned,
      async setup() {
        const referral = await acceptedReferral();
        return {
          url: adverseEventsUrl(referral.id),
          token: practice.therapist.token,
          valid: () => adverseEventBody(mark('adverse')),
          rows: () => adverseEventRows(referral.id),
          api: () => adverseEventsApi(referral.id),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/adverse-events/{eventId}/acknowledge',
      owned: [
        ...adverseEventOwned,
        // What was reported stays as reported: acknowledging changes only who acknowledged it, and when.
        { field: 'severity', value: 'severe' },
        { field: 'treatmentPaused', value: true },
        { field: 'description', value: 'planted' },
        { field: 'occurredOn', value: '2001-02-03' },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const event = await post(adverseEventsUrl(referral.id), practice.therapist.token, adverseEventBody(mark('to-acknowledge')), 201);
        return {
          url: `${adverseEventsUrl(referral.id)}/${event.id}/acknowledge`,
          token: office.physician.token,
          valid: () => undefined,
          rows: () => adverseEventRows(referral.id),
          api: () => adverseEventsApi(referral.id),
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/referrals/{id}/messages/{messageId}/acknowledge',
      owned: [
        { field: 'id', value: randomUUID() },
        { field: 'referralId', value: foreign.referral },
        { field: 'acknowledgedAt', value: planted },
        { field: 'acknowledgedBy', value: foreign.user },
        { field: 'escalatedAt', value: planted },
        // A message never changes but for its flags: not its text, urgency or author.
        { field: 'body', value: 'planted' },
        { field: 'priority', value: 'routine' },
        { field: 'authorId', value: foreign.user },
        { field: 'createdAt', value: planted },
      ],
      async setup() {
        const referral = await acceptedReferral();
        const message = await post(`/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: mark('urgent'), priority: 'urgent' }, 201);
        return {
          url: `/v1/referrals/${referral.id}/messages/${message.id}/acknowledge`,
          token: office.physician.token,
          valid: () => undefined,
          rows: () => messageRows(referral.id),
          api: () => threadApi(referral.id),
        };
      },
    },
  ];
}
