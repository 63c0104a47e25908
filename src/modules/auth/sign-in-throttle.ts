// The sign-in throttle: every password sign-in is counted, before its password is checked, against
// the typed email from the client's address and against the typed email from everywhere. Keyed on
// what was typed, never on an account, so unknown emails are throttled exactly like known ones.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import ipaddr from 'ipaddr.js';
import type { Config } from '../../config.js';
import type { Database, Executor } from '../../db/database.js';
import { SignInThrottleRepository } from './sign-in-throttle-repository.js';

/** The longest a failed sign-in is held back, however many failures came before it. */
const maxFailureDelayMs = 5_000;
// Rows whose window has passed count for nothing; a bounded batch keeps each purge short.
const purgeBatchSize = 1_000;
const maxPurgeIntervalMs = 60_000;

interface ThrottleKeys {
  fromAddress: string;
  everywhere: string;
}

export type Admission =
  | { admitted: true; keys: ThrottleKeys; failureDelayMs: number }
  | { admitted: false; retryAfterSeconds: number };

/** Hashed, so whatever was typed into the email field (a password, say) is never stored. */
const keyOf = (...parts: string[]) => createHash('sha256').update(parts.join('\n')).digest('base64url');

/**
 * The part of a client address that stands for one client: IPv4 as is (an IPv4-mapped IPv6 address
 * too), IPv6 by its /64, the block one subscriber usually holds, so rotating through it gains nothing.
 */
export function clientOf(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  return parsed.kind() === 'ipv6' ? `${ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/64`).toString()}/64` : parsed.toString();
}

export class SignInThrottle {
  private readonly repository: SignInThrottleRepository;
  private readonly settings: Config['login'];
  private nextPurgeAt = 0;
  private purging = false;

  constructor(
    db: Database,
    config: Config,
    private readonly log: FastifyBaseLogger | undefined,
  ) {
    this.repository = new SignInThrottleRepository(db);
    this.settings = config.login;
  }

  /**
   * Counts the attempt and says whether its password may be checked. The address's count comes
   * first, and only an attempt it admits is counted against the email everywhere: one address
   * refused for an email cannot push that email toward its ceiling and lock it out elsewhere.
   */
  async admit({ email, clientAddress }: { email: string; clientAddress: string }): Promise<Admission> {
    const typed = email.trim().toLowerCase();
    const keys = { fromAddress: keyOf('address', clientOf(clientAddress), typed), everywhere: keyOf('account', typed) };
    const admission = await this.count(keys);
    await this.purgeWhenDue();
    return admission;
  }

  private async count(keys: ThrottleKeys): Promise<Admission> {
    const windowSeconds = this.settings.lockoutSeconds;
    const fromAddress = await this.repository.countAttempt({ key: keys.fromAddress, windowSeconds });
    if (fromAddress.failures > this.settings.maxFailures) return { admitted: false, retryAfterSeconds: fromAddress.secondsLeft };
    const everywhere = await this.repository.countAttempt({ key: keys.everywhere, windowSeconds });
    if (everywhere.failures > this.settings.accountMaxFailures) return { admitted: false, retryAfterSeconds: everywhere.secondsLeft };
    return { admitted: true, keys, failureDelayMs: this.failureDelayMs(fromAddress.failures) };
  }

  /**
   * The password was right: this address's failures for the email are forgiven (the user has shown
   * they know it), while failures from elsewhere stand; only this attempt is taken back from them.
   */
  async succeeded(keys: ThrottleKeys, executor: Executor): Promise<void> {
    await this.repository.clear({ key: keys.fromAddress }, executor);
    await this.repository.withdrawOne({ key: keys.everywhere }, executor);
  }

  /** Each failure from an address doubles the wait of the next, up to a bound, known email or not. */
  private failureDelayMs(failures: number): number {
    return Math.min(this.settings.failureDelayMs * 2 ** (failures - 1), maxFailureDelayMs);
  }

  /**
   * Deletes rows whose window has passed, at most once a minute (or once a window, when shorter)
   * per process, and again at once while full batches keep coming. Done by sign-in attempts, the
   * only thing that adds rows, so it runs wherever the table grows.
   */
  private async purgeWhenDue(): Promise<void> {
    if (this.purging || Date.now() < this.nextPurgeAt) return;
    this.purging = true;
    const intervalMs = Math.min(this.settings.lockoutSeconds * 1000, maxPurgeIntervalMs);
    try {
      const purged = await this.repository.purgePassedWindows({ windowSeconds: this.settings.lockoutSeconds, limit: purgeBatchSize });
      this.nextPurgeAt = purged === purgeBatchSize ? 0 : Date.now() + intervalMs;
    } catch (error) {
      // Old rows only take space: the sign-in goes on, and the purge is tried again later.
      this.nextPurgeAt = Date.now() + intervalMs;
      this.log?.warn({ code: (error as { code?: string }).code }, 'sign-in throttle purge failed');
    } finally {
      this.purging = false;
    }
  }
}
