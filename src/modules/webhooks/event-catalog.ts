// Every webhook event type: when it is sent, to whom, and the kind of payload it carries. The
// OpenAPI document's webhooks section and the README's catalog are written from it; a new type in
// lib/vocabulary.ts without an entry here fails the type check.
import type { WebhookEventType } from '../../lib/vocabulary.js';
import type { WebhookEventKind } from './event-schemas.js';

export interface CatalogEntry {
  /** When it is sent. */
  when: string;
  /** Whose endpoints (and events feeds) it is told to. */
  audience: string;
  kind: WebhookEventKind;
  /** What `data.resource` names. */
  resource: string;
}

const participants = 'the office and the practice side taking part';
const referralEvent = (when: string, resource = 'referral', audience = participants): CatalogEntry => ({ when, audience, kind: 'ReferralWebhookEvent', resource });

export const eventCatalog = {
  'referral.sent': referralEvent('A referral is sent (or rerouted to a new target)'),
  'referral.accepted': referralEvent('The therapist side accepts a referral'),
  'referral.declined': referralEvent('The therapist side declines a referral'),
  'referral.cancelled': referralEvent('A referral is cancelled'),
  'referral.amended': referralEvent('The prescriber amends a referral'),
  'referral.expired': referralEvent('A referral expires unanswered or runs past its end date'),
  'referral.completed': referralEvent('The therapist side completes a referral'),
  'progress_report.created': referralEvent('A visit note is posted', 'progress_report'),
  'message.created': referralEvent('A message is posted to the thread', 'message'),
  'report.submitted': referralEvent('A report to the prescriber is submitted', 'report'),
  'report.signed': referralEvent('The prescriber signs a report', 'report'),
  'report.overdue': referralEvent('A visit passed the report cadence without a report'),
  'renewal.requested': referralEvent('The therapist side asks for more visits or time', 'renewal_request'),
  'renewal.decided': referralEvent('The prescriber approves or denies a renewal', 'renewal_request'),
  'document.added': referralEvent('A document is shared on a referral', 'document'),
  'appointment.scheduled': referralEvent('A visit is booked', 'appointment'),
  'appointment.no_show': referralEvent('The patient did not come to a booked visit', 'appointment'),
  'referral.not_scheduled': referralEvent('An accepted referral has no visit booked in time'),
  'message.urgent': referralEvent('An urgent message is posted', 'message'),
  'adverse_event.reported': referralEvent('The therapist side reports an adverse event', 'adverse_event'),
  'urgent.unacknowledged': referralEvent('An urgent message or severe adverse event went unacknowledged in time', 'message or adverse_event', 'the prescribing office'),
  'referral.resumed': referralEvent('The prescriber resumes treatment held after a severe adverse event'),
  'license.expiring': { when: "A therapist's license runs out within 30 days", audience: 'the practice', kind: 'LicenseExpiringEvent', resource: 'user' },
  'audit.checkpoint': {
    when: 'The audit log signed a checkpoint, at most one every AUDIT_CHECKPOINT_WEBHOOK_SECONDS; never fed to GET /v1/events',
    audience: 'every endpoint subscribed to it, of any organization',
    kind: 'AuditCheckpointEvent',
    resource: 'audit_checkpoint',
  },
  'webhook_endpoint.disabled': { when: 'Another endpoint of the organization was disabled', audience: 'the organization', kind: 'WebhookEndpointDisabledEvent', resource: 'webhook_endpoint' },
  ping: { when: 'POST /v1/webhook-endpoints/{id}/test', audience: 'the endpoint tested', kind: 'PingEvent', resource: 'webhook_endpoint' },
} satisfies Record<WebhookEventType, CatalogEntry>;
