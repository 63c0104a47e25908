// The words of the domain, each listed once: the TypeBox schemas (and so the OpenAPI enums), the
// drizzle column types and the checks in code all take their values from here, so a new role, kind
// or status is added in one place. The order of each list is the order the OpenAPI document shows.
import { Type, type Static, type TEnum, type TSchemaOptions } from 'typebox';

/** A TypeBox schema taking exactly these values: an `enum` in JSON Schema and in the OpenAPI document. */
export function enumOf<const Values extends readonly string[]>(values: Values, options?: TSchemaOptions): TEnum<[...Values]> {
  return Type.Enum<[...Values]>([...values], options);
}

// Lower-case hex in 8-4-4-4-12 groups; ajv-formats' own uuid format also takes a urn:uuid: prefix.
const uuidGroups = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** A UUID in either case, as PostgreSQL's uuid type reads it. */
export const uuidPattern = new RegExp(`^${uuidGroups}$`, 'i');
/** A UUID exactly as the database writes it (lower case), e.g. in the tokens we issue. */
export const canonicalUuidPattern = new RegExp(`^${uuidGroups}$`);

/** National Provider Identifier: ten digits (the check digit is verified in lib/npi.ts). */
export const npiPattern = /^\d{10}$/;

export const organizationKinds = ['physician_office', 'therapy_practice'] as const;
export const OrganizationKind = enumOf(organizationKinds);
export type OrganizationKind = Static<typeof OrganizationKind>;

export const officeRoles = ['physician', 'office_staff', 'office_admin'] as const;
export const practiceRoles = ['therapist', 'practice_admin'] as const;
/** The roles of a care organization's people; network admins belong to none. */
export const staffRoles = [...officeRoles, ...practiceRoles] as const;
export const userRoles = [...staffRoles, 'network_admin'] as const;
export const UserRole = enumOf(userRoles);
export type UserRole = Static<typeof UserRole>;
export const StaffRole = enumOf(staffRoles);
export type StaffRole = Static<typeof StaffRole>;

/** The roles a user of each kind of organization may have. */
export const staffRolesOf: Record<OrganizationKind, readonly StaffRole[]> = {
  physician_office: officeRoles,
  therapy_practice: practiceRoles,
};

/** Who acts: a signed-in user or a partner's API client. */
export const principalKinds = ['user', 'api_client'] as const;
export type PrincipalKind = (typeof principalKinds)[number];
/**
 * How an API client proves who it is at the token endpoint: a secret (client_secret_basic or
 * _post), or an assertion signed with a key whose public half it registered (RFC 7523,
 * SMART Backend Services).
 */
export const apiClientAuthMethods = ['client_secret', 'private_key_jwt'] as const;
export type ApiClientAuthMethod = (typeof apiClientAuthMethods)[number];
export const ApiClientAuthMethod = enumOf(apiClientAuthMethods);
/** Who an audit event names: also nobody signed in, or the service itself. */
export const auditActorTypes = [...principalKinds, 'anonymous', 'system'] as const;
export const auditOutcomes = ['success', 'denied', 'error'] as const;
/** Who moved a referral: the service itself expires referrals. */
export const referralActorTypes = [...principalKinds, 'system'] as const;

export const sexes = ['female', 'male', 'other', 'unknown'] as const;

export const referralStatuses = ['draft', 'sent', 'accepted', 'declined', 'in_progress', 'completed', 'cancelled', 'expired'] as const;
export const ReferralStatus = enumOf(referralStatuses);
export type ReferralStatus = Static<typeof ReferralStatus>;
/** The statuses whose referral expires once its expiry date has passed. */
export const expirableStatuses = ['sent', 'accepted', 'in_progress'] as const satisfies readonly ReferralStatus[];
export const referralPriorities = ['routine', 'urgent'] as const;
export const referralTargetKinds = ['therapist', 'practice', 'network'] as const;
/** How a referral's order was signed (SPEC §14.1): by the prescriber through the API, or vouched for by the office's EHR. */
export const signatureMethods = ['physician', 'ehr_attested'] as const;
export type SignatureMethod = (typeof signatureMethods)[number];

/** The reports a therapist sends the prescriber (SPEC §14.3): the evaluation is the plan of care. */
export const reportKinds = ['evaluation', 'progress', 'discharge'] as const;
export type ReportKind = (typeof reportKinds)[number];
export const goalStatuses = ['met', 'progressing', 'not_met', 'new'] as const;
export const reportRecommendations = ['continue', 'modify', 'discharge'] as const;
/** A therapist's request for more visits or time (SPEC §14.4), decided by the prescriber. */
export const renewalStatuses = ['pending', 'approved', 'denied'] as const;
export const dischargeReasons = ['goals_met', 'plateau', 'patient_declined', 'no_show', 'moved', 'referred_out', 'other'] as const;
export type ReferralTargetKind = (typeof referralTargetKinds)[number];
/** A visit booked for a referral (SPEC §14.5) and what became of it. */
export const appointmentStatuses = ['scheduled', 'attended', 'no_show', 'cancelled_by_patient', 'cancelled_by_practice'] as const;
export type AppointmentStatus = (typeof appointmentStatuses)[number];
/** A message may be flagged urgent (SPEC §14.10): it stays flagged until the other side acknowledges it. */
export const messagePriorities = ['routine', 'urgent'] as const;
export type MessagePriority = (typeof messagePriorities)[number];
/** How bad an adverse event a therapist reports was (SPEC §14.10); a severe one may put treatment on hold. */
export const adverseEventSeverities = ['mild', 'moderate', 'severe'] as const;
export type AdverseEventSeverity = (typeof adverseEventSeverities)[number];
/** What a shared file is (SPEC §14.6). */
export const documentCategories = ['prescription', 'imaging', 'intake', 'insurance', 'report', 'other'] as const;
export type DocumentCategory = (typeof documentCategories)[number];
/** The only file types a document may be, as told by its bytes. */
export const documentContentTypes = ['application/pdf', 'image/png', 'image/jpeg', 'image/tiff'] as const;
export type DocumentContentType = (typeof documentContentTypes)[number];

/** What happened to a referral, told by the module that made it happen (lib/domain-events.ts). */
export const referralEventTypes = [
  'referral.sent',
  'referral.accepted',
  'referral.declined',
  'referral.cancelled',
  'referral.amended',
  'referral.expired',
  'referral.completed',
  'progress_report.created',
  'message.created',
  'report.submitted',
  'report.signed',
  'report.overdue',
  'renewal.requested',
  'renewal.decided',
  'document.added',
  'appointment.scheduled',
  'appointment.no_show',
  'referral.not_scheduled',
  'message.urgent',
  'adverse_event.reported',
  'urgent.unacknowledged',
  'referral.resumed',
] as const;
/** What happened in an organization, not to one referral: told to that organization alone. */
export const organizationEventTypes = ['license.expiring'] as const;
export type OrganizationEventType = (typeof organizationEventTypes)[number];
/** What happened to the whole network: told to every endpoint that subscribed to it, of any organization. */
export const networkEventTypes = ['audit.checkpoint'] as const;
export type NetworkEventType = (typeof networkEventTypes)[number];
export const domainEventTypes = [...referralEventTypes, ...organizationEventTypes, ...networkEventTypes] as const;
export type ReferralEventType = (typeof referralEventTypes)[number];
export type DomainEventType = (typeof domainEventTypes)[number];
/** What a webhook delivers: the domain events, and news of the endpoint itself. */
export const webhookEventTypes = [...domainEventTypes, 'webhook_endpoint.disabled', 'ping'] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];
export const webhookEndpointStatuses = ['active', 'disabled'] as const;
/** How an endpoint's events are written: the thin {type, timestamp, data} payload, or a FHIR R4 Bundle (issue 18). */
export const webhookFormats = ['standard', 'fhir'] as const;
export type WebhookFormat = (typeof webhookFormats)[number];
export const deliveryStatuses = ['pending', 'delivering', 'succeeded', 'dead'] as const;
