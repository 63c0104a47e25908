// Delivers the outbox: keeps up to `concurrency` deliveries in flight, claiming from the queue
// when NOTIFY, a finished delivery or the poll says there may be more, and finishes each with its
// attempt, its endpoint's health and its audit event. Several workers can run side by side.
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.js';
import type { Database, DatabaseHandle } from '../../db/database.js';
import { GroupCommit } from '../../lib/group-commit.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { SecretBox } from '../../lib/secret-box.js';
import { systemAuditContext } from '../audit/audit-log.js';
import type { OrganizationKind } from '../auth/policy.js';
import { DeliveryQueue, type ClaimedDelivery, type FinishedDelivery } from './delivery-queue.js';
import { WebhookOutbox } from './outbox.js';
import { EndpointHealth } from './endpoint-health.js';
import { deliveryChannel } from './outbox.js';
import { judgeAnswer } from './retry-policy.js';
import { WebhookSender } from './sender.js';
import { signatureHeaders } from './signing-secrets.js';
import { contentTypes, type WebhookFormats } from './webhook-formats.js';
import { guardedLookup, systemResolver, type Resolver } from '../../lib/outbound/target-guard.js';

export interface DeliveryWorkerOptions {
  config: Config['webhooks'];
  /** Tests: answers DNS instead of the system resolver. */
  resolver?: Resolver | undefined;
  log: FastifyBaseLogger;
  /** Opens the stored (sealed) signing secrets. */
  secretBox: SecretBox;
  /** Which of the referrals an organization still takes part in: the referrals module's rule. */
  referralsTakenPartIn: (organization: { id: string; kind: OrganizationKind }, referralIds: readonly string[]) => Promise<Set<string>>;
  /** Finishing deliveries is a change like any other: attempts, endpoint health and audit events commit together. */
  units: UnitsOfWork;
  /** Renders the events the worker writes itself (webhook_endpoint.disabled) in the other formats. */
  formats: WebhookFormats;
}

export class DeliveryWorker {
  private readonly queue: DeliveryQueue;
  private readonly health: EndpointHealth;
  private readonly lookup;
  private sender: WebhookSender | undefined;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private readonly finishes = new GroupCommit<FinishedDelivery>((finished) => this.finishAll(finished));
  /** Deliveries claimed and not yet finished, by id: their attempt count is the claim's fence. */
  private readonly claimsInFlight = new Map<string, number>();
  private leaseRenewal: NodeJS.Timeout | undefined;

  constructor(
    db: Database,
    private readonly database: DatabaseHandle,
    private readonly options: DeliveryWorkerOptions,
  ) {
    this.queue = new DeliveryQueue(db, database, options.config.leaseSeconds);
    this.health = new EndpointHealth(options.config.disableAfterSeconds, new WebhookOutbox(database.wakeUps, options.formats, options.log));
    this.lookup = guardedLookup(options.resolver ?? systemResolver, options.config.allowPrivateTargets);
  }

  async start(): Promise<void> {
    this.running = true;
    // NOTIFY from a committing change wakes the loop at once; the poll is the fallback.
    this.unlisten = await this.database.listen(deliveryChannel, () => this.wake?.());
    this.loopDone = this.loop();
    // Short leases, renewed while a delivery is in flight: a killed worker's deliveries come back
    // within a lease, where one long enough to outlast the slowest receiver held them for a minute.
    this.leaseRenewal = setInterval(() => void this.renewLeases(), (this.options.config.leaseSeconds * 1000) / 3).unref();
  }

  private async renewLeases(): Promise<void> {
    try {
      await this.queue.renewLeases([...this.claimsInFlight].map(([id, attempts]) => ({ id, attempts })));
    } catch (error) {
      // The next renewal tries again; a lease that runs out meanwhile only means a second attempt.
      this.options.log.warn({ err: error }, 'renewing webhook delivery leases failed');
    }
  }

  /** Stops claiming, lets the deliveries in flight finish (each ends within the timeout), then closes the connections. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loopDone;
    clearInterval(this.leaseRenewal);
    await this.unlisten?.().catch(() => {});
    const sender = this.sender;
    this.sender = undefined;
    await sender?.close();
  }

  /**
   * Keeps up to `concurrency` deliveries in flight: claims more whenever a quarter of the slots
   * have come free (or all of them), so one slow receiver never holds up the rest.
   */
  private async loop(): Promise<void> {
    const { concurrency, pollMs } = this.options.config;
    const refillAt = Math.max(1, Math.ceil(concurrency / 4));
    const inFlight = new Set<Promise<void>>();
    // A lease runs out only when a worker died or hung: looking for those once a poll is enough,
    // and spares a statement on every refill of a busy queue.
    let expiredLeasesLookedForAt = 0;
    while (this.running) {
      const free = concurrency - inFlight.size;
      let claimed: ClaimedDelivery[] = [];
      if (free >= refillAt || inFlight.size === 0) {
        let cleared = new Set<ClaimedDelivery>();
        try {
          const withExpiredLeases = performance.now() - expiredLeasesLookedForAt >= pollMs;
          if (withExpiredLeases) expiredLeasesLookedForAt = performance.now();
          claimed = await this.queue.claim({ limit: free, withExpiredLeases });
          cleared = await this.clearedToSend(claimed);
        } catch (error) {
          // Claimed but not sent: their leases run out and another claim takes them.
          this.options.log.error({ err: error }, 'claiming webhook deliveries failed');
          claimed = [];
        }
        for (const delivery of claimed) {
          const attempt: Promise<void> = this.deliver(delivery, cleared.has(delivery))
            .catch((error: unknown) => this.options.log.error({ err: error }, 'webhook delivery failed'))
            .finally(() => {
              inFlight.delete(attempt);
              this.wake?.();
            });
          inFlight.add(attempt);
        }
      }
      if (claimed.length === 0 && this.running) {
        // A finished delivery, a NOTIFY or the poll, whichever comes first.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
    await Promise.all(inFlight);
  }

  /** Claims up to `concurrency` due deliveries and sends them; returns how many it claimed. */
  async runOnce(): Promise<number> {
    const claimed = await this.queue.claim({ limit: this.options.config.concurrency });
    const cleared = await this.clearedToSend(claimed);
    await Promise.all(claimed.map((delivery) => this.deliver(delivery, cleared.has(delivery))));
    return claimed.length;
  }

  /**
   * The claimed deliveries whose endpoint's organization still takes part in the event's referral
   * (access is checked when the attempt is made, not only when the event was written): one
   * question per organization for the whole batch, not one per delivery.
   */
  private async clearedToSend(claimed: ClaimedDelivery[]): Promise<Set<ClaimedDelivery>> {
    const cleared = new Set<ClaimedDelivery>();
    const askingByOrganization = new Map<string, { kind: OrganizationKind; deliveries: ClaimedDelivery[] }>();
    for (const delivery of claimed) {
      const { event, endpoint, organizationKind } = delivery;
      if (!event || !endpoint || !organizationKind) continue;
      if (!event.referralId || event.type === 'ping') {
        cleared.add(delivery);
        continue;
      }
      const asking = askingByOrganization.get(endpoint.organizationId) ?? { kind: organizationKind, deliveries: [] };
      asking.deliveries.push(delivery);
      askingByOrganization.set(endpoint.organizationId, asking);
    }
    for (const [organizationId, { kind, deliveries }] of askingByOrganization) {
      const takenPartIn = await this.options.referralsTakenPartIn({ id: organizationId, kind }, deliveries.map(({ event }) => event!.referralId!));
      for (const delivery of deliveries) if (takenPartIn.has(delivery.event!.referralId!)) cleared.add(delivery);
    }
    return cleared;
  }

  /** One attempt, finished: resolves once its outcome is durable. */
  private async deliver(claimed: ClaimedDelivery, clearedToSend: boolean): Promise<void> {
    const { id, attempts } = claimed.delivery;
    this.claimsInFlight.set(id, attempts);
    try {
      await this.finishes.add({ delivery: claimed.delivery, ...(await this.attempt(claimed, clearedToSend)) });
    } finally {
      this.claimsInFlight.delete(id);
    }
  }

  private async attempt({ delivery, event, endpoint }: ClaimedDelivery, clearedToSend: boolean): Promise<Omit<FinishedDelivery, 'delivery'>> {
    // Given up without an attempt: there is nothing, or no one, to send it to.
    const givenUp = (error: string) => ({ verdict: { status: 'dead' as const, error }, result: undefined });
    if (!event || !endpoint) return givenUp('the event or its endpoint no longer exists');
    if (endpoint.status !== 'active' || endpoint.deletedAt) return givenUp('endpoint disabled or deleted');
    if (!clearedToSend) return givenUp('the organization no longer takes part in this referral');
    // An event written before its endpoint chose FHIR (or one that could not be rendered) has no
    // FHIR body: it goes as it was written, in the standard format, and says so in its content type.
    const format = endpoint.format === 'fhir' && event.fhirBody !== null ? 'fhir' : 'standard';
    const body = format === 'fhir' ? event.fhirBody! : JSON.stringify(event.payload);
    // Secrets are stored sealed; opened only here, to sign.
    const headers = signatureHeaders(this.options.secretBox, endpoint, { eventId: event.id, body, now: new Date() });
    this.sender ??= new WebhookSender({ lookup: this.lookup, timeoutMs: this.options.config.timeoutMs });
    const result = await this.sender.send({ url: endpoint.url, headers, body, contentType: contentTypes[format] });
    return { verdict: judgeAnswer(result, { schedule: this.options.config.retryScheduleSeconds, attemptsMade: delivery.attempts }), result };
  }

  /**
   * The outcomes of deliveries that finished together, in one transaction: their attempts, their
   * new state, the endpoints' health and the audit events in a handful of statements.
   */
  private async finishAll(finished: FinishedDelivery[]): Promise<void> {
    await this.options.units.run(systemAuditContext('webhook-delivery'), async (unit) => {
      // Issued together, so postgres.js pipelines them in one round trip (they touch different rows).
      await Promise.all([this.queue.finish({ finished }, unit.tx), this.health.record({ finished }, unit.tx)]);
      for (const { delivery, verdict, result } of finished) {
        unit.audit({
          action: 'webhook.attempt',
          outcome: verdict.status === 'succeeded' ? 'success' : 'error',
          httpStatus: result?.statusCode ?? undefined,
          resourceType: 'webhook_delivery',
          resourceId: delivery.id,
        });
      }
    });
  }
}
