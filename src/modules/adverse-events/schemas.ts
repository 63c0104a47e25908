// Shapes of the adverse events a therapist reports on a referral (SPEC §14.10).
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { IsoDate, Page, PageQuery, Timestamp, Uuid } from '../../lib/schemas.js';
import { adverseEventSeverities, enumOf, principalKinds } from '../../lib/vocabulary.js';

export const AdverseEventSeverity = component('AdverseEventSeverity', enumOf(adverseEventSeverities, {
  description: 'How bad the reaction was; a severe one with treatmentPaused puts the referral on hold until the prescriber resumes it',
}));

export const CreateAdverseEvent = component('CreateAdverseEvent', Type.Object(
  {
    occurredOn: { ...IsoDate, description: 'The day it happened: not in the future, not before the referral was accepted' },
    description: Type.String({ minLength: 1, maxLength: 5000, description: 'What happened' }),
    severity: AdverseEventSeverity,
    actionTaken: Type.String({ minLength: 1, maxLength: 2000, description: 'What the therapist did about it' }),
    treatmentPaused: Type.Boolean({ description: 'Whether the therapist paused treatment; with severity severe the referral goes on hold' }),
  },
  {
    additionalProperties: false,
  },
));
export type CreateAdverseEvent = Static<typeof CreateAdverseEvent>;

export const AdverseEvent = component('AdverseEvent', Type.Object({
  id: Uuid,
  referralId: Uuid,
  occurredOn: IsoDate,
  description: Type.String(),
  severity: AdverseEventSeverity,
  actionTaken: Type.String(),
  treatmentPaused: Type.Boolean(),
  reportedBy: Type.Object({ type: enumOf(principalKinds), id: Uuid, organizationId: Uuid }),
  createdAt: Timestamp,
  acknowledgedAt: Type.Union([Timestamp, Type.Null()], { description: 'When someone at the office acknowledged it; null until then' }),
  acknowledgedBy: Type.Union([Uuid, Type.Null()], { description: 'The office user or API client who acknowledged it first' }),
  escalatedAt: Type.Union([Timestamp, Type.Null()], { description: 'When urgent.unacknowledged was sent for it, if it was' }),
}));
export type AdverseEvent = Static<typeof AdverseEvent>;

export const AdverseEventParams = Type.Object({ id: Uuid, eventId: Uuid }, { additionalProperties: false });
export type AdverseEventParams = Static<typeof AdverseEventParams>;

export const AdverseEventListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const AdverseEventPage = Page(AdverseEvent);
