// The three OAuth grants: checks credentials behind the sign-in throttle, rotates refresh tokens, audits every outcome.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import type { UserRole } from '../../lib/vocabulary.js';
import { oauthError } from '../../lib/errors.js';
import type { AccessTokenClaims } from './authentication.js';
import type { AuditContext, AuditLog } from '../audit/audit-log.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import { AssertionRefused, ClientAssertions } from './client-assertion.js';
import { CredentialsRepository } from './credentials-repository.js';
import type { Passwords } from './passwords.js';
import { clientActingRole, type OrganizationKind } from './policy.js';
import type { RemoteJwks } from './remote-jwks.js';
import type { TokenResponse } from './schemas.js';
import { SignInThrottle } from './sign-in-throttle.js';
import { tokenEndpointUrl } from './smart-configuration.js';
import { grantSmartScopes, isSmartScope } from './smart-scopes.js';

type ApiClientForSignIn = NonNullable<Awaited<ReturnType<CredentialsRepository['findApiClient']>>>;

/** Signs an access token with these claims; the lifetime is ACCESS_TOKEN_TTL_SECONDS unless given. */
export type AccessTokenSigner = (claims: AccessTokenClaims, expiresInSeconds?: number) => string;

// SMART Backend Services asks for short-lived tokens; a client signs a new assertion when it needs one.
const assertionTokenTtlSeconds = 300;

const invalidCredentials = () => oauthError('invalid_grant', 'The email or password is incorrect');
// Worded for the email typed, whether or not it belongs to an account: its count is what refuses.
const tooManyFailures = (retryAfterSeconds: number) =>
  oauthError('invalid_grant', 'Too many failed sign-ins for this email: try again after the time in Retry-After', 400, {
    'retry-after': String(retryAfterSeconds),
  });

export class TokenService {
  private readonly credentials: CredentialsRepository;
  private readonly throttle: SignInThrottle;
  private readonly assertions: ClientAssertions<ApiClientForSignIn>;

  constructor(
    db: Database,
    private readonly auditLog: AuditLog,
    private readonly units: UnitsOfWork,
    private readonly passwords: Passwords,
    private readonly signAccessToken: AccessTokenSigner,
    private readonly config: Config,
    remoteJwks: RemoteJwks,
    private readonly log?: FastifyBaseLogger,
  ) {
    this.credentials = new CredentialsRepository(db);
    this.throttle = new SignInThrottle(db, config, log);
    this.assertions = new ClientAssertions((clientId) => this.credentials.findApiClient({ clientId }), remoteJwks, tokenEndpointUrl(config.publicBaseUrl));
  }

  /**
   * Known and unknown emails, and inactive accounts, take the same path: one throttle count, one
   * account lookup, one password hash (the decoy when there is no account), one audit row and the
   * same slow-down, so neither the answer nor its timing tells whether an account exists.
   */
  async passwordGrant(
    { email, password, clientAddress }: { email: string; password: string; clientAddress: string },
    context: AuditContext,
  ): Promise<TokenResponse> {
    // Counted before the password is checked, so concurrent guesses cannot outrun the count.
    const admission = await this.throttle.admit({ email, clientAddress });
    // Looked up even when refused, so a refusal is audited against the account it was aimed at.
    const user = await this.credentials.findUserForSignIn({ email });
    const actor = user && { type: 'user' as const, id: user.id, organizationId: user.organizationId, role: user.role };
    const recordFailure = () =>
      this.auditLog.record(context, {
        action: 'auth.login_failed',
        outcome: 'denied',
        httpStatus: 400,
        ...(actor ? { actor, resourceType: 'user', resourceId: actor.id } : {}),
      });

    if (!admission.admitted) {
      await recordFailure();
      throw tooManyFailures(admission.retryAfterSeconds);
    }
    const passwordMatches = await this.passwords.verifyOrDecoy(password, user?.passwordHash);
    if (!user || !actor || !passwordMatches || !user.active) {
      await recordFailure();
      if (admission.failureDelayMs > 0) await sleep(admission.failureDelayMs);
      throw invalidCredentials();
    }

    return this.units.run(context, async (unit) => {
      const { tx } = unit;
      await this.throttle.succeeded(admission.keys, tx);
      const refreshToken = await this.credentials.issueRefreshToken(
        { userId: user.id, ttlSeconds: this.config.jwt.refreshTokenTtlSeconds },
        tx,
      );
      unit.audit({ action: 'auth.login', httpStatus: 200, actor, resourceType: 'user', resourceId: user.id });
      return this.tokenResponse(this.userClaims(user), refreshToken);
    });
  }

  async clientCredentialsGrant(
    clientId: string,
    clientSecret: string,
    requestedScope: string | undefined,
    context: AuditContext,
  ): Promise<TokenResponse> {
    const client = await this.credentials.findApiClient({ clientId });
    // A client without a secret (private_key_jwt) costs the same hash work as one with a wrong secret.
    const secretMatches = client?.secretHash ? await this.passwords.verify(clientSecret, client.secretHash) : (await this.passwords.burnVerification(clientSecret), false);
    if (!client || !secretMatches || !client.active || client.revokedAt) {
      await this.recordClientFailure(context, client);
      throw oauthError('invalid_client', 'The client credentials are invalid', 401);
    }
    const scopes = requestedScope ? requestedScope.split(' ').filter(Boolean) : client.scopes;
    const unknownScope = scopes.find((scope) => !client.scopes.includes(scope));
    if (unknownScope) throw oauthError('invalid_scope', `The client is not granted the scope ${unknownScope}`);

    const claims = this.clientClaims(client, scopes);
    await this.auditLog.record(context, this.clientTokenEntry(client, claims));
    return { ...this.tokenResponse(claims), scope: claims.scope };
  }

  /**
   * client_credentials with a client assertion (RFC 7523, SMART Backend Services). The assertion
   * is checked (client-assertion.ts), the scopes granted, and only then its jti taken, in the
   * transaction that audits the token: a replayed assertion is refused, and a refused request
   * leaves its jti unused.
   */
  async clientAssertionGrant(
    { assertion, clientId, requestedScope }: { assertion: string; clientId: string | undefined; requestedScope: string | undefined },
    context: AuditContext,
  ): Promise<TokenResponse> {
    let verified;
    try {
      verified = await this.assertions.verify(assertion, clientId);
    } catch (error) {
      if (!(error instanceof AssertionRefused)) throw error;
      throw await this.refuseAssertion(context, error);
    }
    const { client } = verified;
    const requested = requestedScope ? requestedScope.split(' ').filter(Boolean) : [];
    const internalRequested = requested.filter((scope) => !isSmartScope(scope));
    const unknownScope = internalRequested.find((scope) => !client.scopes.includes(scope));
    if (unknownScope) throw oauthError('invalid_scope', `The client is not granted the scope ${unknownScope}`);
    const smartRequested = requested.filter(isSmartScope);
    const smart = smartRequested.length > 0 ? grantSmartScopes(smartRequested, client.scopes) : undefined;
    const internal = requested.length === 0 ? client.scopes : [...new Set([...(smart?.internalScopes ?? []), ...internalRequested])];

    const claims: AccessTokenClaims = { ...this.clientClaims(client, internal), ...(smart ? { fhir_scope: smart.smartScopes.join(' ') } : {}) };
    const taken = await this.units.run(context, async (unit) => {
      if (!(await this.credentials.claimAssertionJti({ apiClientId: client.id, jti: verified.jti, expiresAt: verified.expiresAt }, unit.tx))) return false;
      unit.audit(this.clientTokenEntry(client, claims));
      return true;
    });
    // A second use of one assertion may be a stolen one: audited apart, as a reused refresh token is.
    if (!taken) throw await this.refuseAssertion(context, new AssertionRefused('jti replayed', 'The client assertion was used before: sign a new one with a new jti', client), 'auth.client_assertion_replay');

    const expiresIn = Math.min(assertionTokenTtlSeconds, this.config.jwt.accessTokenTtlSeconds);
    const scope = [...(smart?.smartScopes ?? []), ...(requested.length === 0 ? client.scopes : internalRequested)].join(' ');
    return { access_token: this.signAccessToken(claims, expiresIn), token_type: 'Bearer', expires_in: expiresIn, scope };
  }

  /** Audits and logs a refused assertion (its reason, never the assertion) and makes the invalid_client answer. */
  private async refuseAssertion(context: AuditContext, refusal: AssertionRefused, action = 'auth.client_failed') {
    this.log?.info({ requestId: context.requestId, apiClientId: refusal.client?.id, reason: refusal.reason }, 'client assertion refused');
    await this.recordClientFailure(context, refusal.client, action);
    return oauthError('invalid_client', refusal.description, 401);
  }

  private recordClientFailure(context: AuditContext, client: { id: string } | undefined, action = 'auth.client_failed') {
    return this.auditLog.record(context, {
      action,
      outcome: 'denied',
      httpStatus: 401,
      ...(client ? { resourceType: 'api_client', resourceId: client.id } : {}),
    });
  }

  private clientClaims(client: ApiClientForSignIn, scopes: readonly string[]): AccessTokenClaims {
    return {
      sub: client.id,
      typ: 'api_client',
      org: client.organizationId,
      org_kind: client.organizationKind,
      role: clientActingRole(client.organizationKind),
      scope: scopes.join(' '),
    };
  }

  private clientTokenEntry(client: ApiClientForSignIn, claims: AccessTokenClaims) {
    return {
      action: 'auth.client_token',
      outcome: 'success' as const,
      httpStatus: 200,
      actor: { type: 'api_client' as const, id: client.id, organizationId: client.organizationId, role: claims.role },
      resourceType: 'api_client',
      resourceId: client.id,
    };
  }

  async refreshTokenGrant(token: string, context: AuditContext): Promise<TokenResponse> {
    const stored = await this.credentials.findRefreshToken({ token });
    if (!stored) throw oauthError('invalid_grant', 'The refresh token is invalid');

    const reuse = async () => {
      // A used or revoked token coming back means it may be stolen: end the whole session family.
      await this.units.run(context, async (unit) => {
        await this.credentials.revokeFamily({ familyId: stored.familyId }, unit.tx);
        unit.audit({ action: 'auth.refresh_reuse', outcome: 'denied', httpStatus: 400, resourceType: 'user', resourceId: stored.userId });
      });
      return oauthError('invalid_grant', 'The refresh token was already used or revoked; the session has been ended');
    };

    if (stored.rotatedAt) throw await reuse();
    if (stored.revokedAt) {
      // Signed out or deactivated: refused, but not a sign of theft.
      await this.auditLog.record(context, { action: 'auth.refresh_revoked', outcome: 'denied', httpStatus: 400, resourceType: 'user', resourceId: stored.userId });
      throw oauthError('invalid_grant', 'The refresh token was revoked');
    }
    if (stored.expiresAt <= new Date()) throw oauthError('invalid_grant', 'The refresh token has expired');

    const result = await this.units.run(context, async (unit) => {
      const { tx } = unit;
      if (!(await this.credentials.markRotated({ id: stored.id }, tx))) return undefined;
      const user = await this.credentials.findUserForToken({ userId: stored.userId }, tx);
      if (!user?.active) throw oauthError('invalid_grant', 'The account is no longer active');
      const refreshToken = await this.credentials.issueRefreshToken(
        { userId: user.id, familyId: stored.familyId, ttlSeconds: this.config.jwt.refreshTokenTtlSeconds },
        tx,
      );
      unit.audit({
        action: 'auth.refresh',
        httpStatus: 200,
        actor: { type: 'user', id: user.id, organizationId: user.organizationId, role: user.role },
        resourceType: 'user',
        resourceId: user.id,
      });
      return this.tokenResponse(this.userClaims(user), refreshToken);
    });
    // Another request rotated it between our read and our update: the same token was presented twice.
    if (!result) throw await reuse();
    return result;
  }

  /** Ends the session family of a refresh token, if it belongs to the caller; unknown tokens are ignored (RFC 7009). */
  async revoke(token: string, userId: string, context: AuditContext): Promise<void> {
    const stored = await this.credentials.findRefreshToken({ token });
    if (!stored || stored.userId !== userId) return;
    await this.units.change(
      context,
      (tx) => this.credentials.revokeFamily({ familyId: stored.familyId }, tx),
      () => ({ action: 'auth.revoke', httpStatus: 200, resourceType: 'user', resourceId: userId }),
    );
  }

  private userClaims(user: { id: string; role: UserRole; organizationId: string | null; organizationKind: OrganizationKind | null }): AccessTokenClaims {
    return { sub: user.id, typ: 'user', org: user.organizationId, org_kind: user.organizationKind, role: user.role, scope: '' };
  }

  private tokenResponse(claims: AccessTokenClaims, refreshToken?: string): TokenResponse {
    return {
      access_token: this.signAccessToken(claims),
      token_type: 'Bearer',
      expires_in: this.config.jwt.accessTokenTtlSeconds,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  }
}
