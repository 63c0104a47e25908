// A referral's message thread as other modules and routes use it (app.messages): posting under the
// referral's lock with its events and audit, and reading messages as the caller may see them. The
// /v1 routes and the FHIR façade both go through it, so a message is posted and shown by one set of rules.
import { notFound, renamedNotFound } from '../../lib/errors.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';
import type { Principal } from '../auth/policy.js';
import type { ReferralWorkflow } from '../referrals/index.js';
import { toMessage, type MessagesRepository } from './messages-repository.js';
import type { CreateMessage, Message } from './schemas.js';

export type ThreadReferral = Awaited<ReturnType<ReferralWorkflow['readParticipating']>>;

export interface ThreadPage {
  referral: ThreadReferral;
  /** Up to limit + 1 messages, oldest first: one more than asked tells there is a next page. */
  messages: (Message & { seq: number })[];
}

export class MessageThread {
  constructor(
    private readonly repository: MessagesRepository,
    private readonly referrals: ReferralWorkflow,
    private readonly units: UnitsOfWork,
  ) {}

  /** Posts to the thread if the caller takes part in the referral's care; else the outsider's 404. */
  async post(context: AuditContext, principal: Principal, referralId: string, input: CreateMessage): Promise<Message> {
    const message = await this.units.run(context, async (unit) => {
      // The referral's row lock, the one every change of the referral takes, is taken before the
      // message is numbered: messages of one thread and their events are then written in one
      // order, so partners receive message.created in thread order. The same read checks that the
      // caller takes part, and the event names today's participants.
      const referral = await this.referrals.lockParticipating(principal, referralId, unit.tx);
      if (!referral) return undefined;
      // The author's read marker stays put: their own messages never count as unread, and
      // moving it would silently mark read what others wrote in between.
      const row = await this.repository.insert(
        {
          referralId: referral.id,
          authorType: principal.kind,
          authorId: principal.id,
          authorOrganizationId: principal.organizationId!,
          body: input.body,
          priority: input.priority ?? 'routine',
        },
        unit.tx,
      );
      const resource = { type: 'message', id: row.id, url: `${apiPrefix}/referrals/${referral.id}/messages` } as const;
      unit.emit({ type: 'message.created', referral, resource });
      // Besides message.created, so that a partner can route urgent news apart without reading every message.
      if (row.priority === 'urgent') unit.emit({ type: 'message.urgent', referral, resource });
      unit.audit({ action: 'message.create', httpStatus: 201, resourceType: 'message', resourceId: row.id, patientId: referral.patientId });
      return toMessage(row);
    });
    // The outsider's 404 is made after the transaction: it reads the referral's patient for the audit.
    if (!message) throw await this.referrals.notFound(referralId);
    return message;
  }

  /** A page of the thread, oldest first, after the message numbered `afterSeq`; the outsider's 404 for whoever takes no part. */
  async listOf(principal: Principal, referralId: string, page: { afterSeq?: number | undefined; limit: number }): Promise<ThreadPage> {
    const referral = await this.referrals.readParticipating(principal, referralId);
    const rows = await this.repository.list({ referralId: referral.id, afterSeq: page.afterSeq, limit: page.limit });
    return { referral, messages: rows.map((row) => ({ ...toMessage(row), seq: row.seq })) };
  }

  /**
   * One message, if the caller takes part in its referral's care. Anyone else gets the 404 of a
   * missing message, audited against the message and (when it exists) its patient.
   */
  async byId(principal: Principal, messageId: string): Promise<{ message: Message; referral: ThreadReferral }> {
    const row = await this.repository.findById(messageId);
    if (!row) throw notFound('message', messageId, 'Message');
    try {
      const referral = await this.referrals.readParticipating(principal, row.referralId);
      return { message: toMessage(row), referral };
    } catch (error) {
      throw renamedNotFound(error, 'message', messageId, 'Message');
    }
  }
}

