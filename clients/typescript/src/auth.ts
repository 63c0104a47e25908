// Signing in and staying signed in through POST /v1/auth/token: the password grant for people,
// client credentials for partner EHRs, and the refresh token grant, whose token rotates on use.
import createClient, { type Client } from 'openapi-fetch';
import { ApiProblem, problemDetails } from './problem.js';
import type { paths, TokenRequest } from './schema.js';

export type Credentials =
  | { username: string; password: string }
  | { clientId: string; clientSecret: string; scope?: string }
  /** A session kept from an earlier run: it lasts as long as its refresh token. */
  | { refreshToken: string };

// An access token this close to its expiry is renewed before use rather than after a 401.
const renewBeforeMs = 30_000;

export class Session {
  private readonly tokens: Client<paths>;
  private current: { accessToken: string; expiresAt: number } | undefined;
  private refresh: string | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    baseUrl: string,
    private readonly credentials: Credentials,
    options: { fetch?: (request: Request) => Promise<Response> } = {},
  ) {
    // A client of its own, without the bearer middleware: a token request never waits on a token.
    this.tokens = createClient<paths>({ baseUrl, ...(options.fetch && { fetch: options.fetch }) });
    this.tokens.use(problemDetails);
    if ('refreshToken' in credentials) this.refresh = credentials.refreshToken;
  }

  /** The refresh token to keep for a later run. It changes on every renewal: keep the latest. */
  get refreshToken(): string | undefined {
    return this.refresh;
  }

  /** The access token to send, signing in first when there is none or it is about to expire. */
  async accessToken(): Promise<string> {
    const current = this.current;
    if (current && current.expiresAt - Date.now() > renewBeforeMs) return current.accessToken;
    return this.renew(current?.accessToken);
  }

  /** A token to replace `rejected` (refused with 401, or expiring): one renewal for every request that saw it fail. */
  renew(rejected: string | undefined): Promise<string> {
    if (this.current && this.current.accessToken !== rejected) return Promise.resolve(this.current.accessToken);
    // One token request at a time: a refresh token presented twice counts as stolen, and the
    // service then ends the whole session (reuse detection).
    this.pending ??= this.obtain().finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** Ends the session at the service (its refresh token is revoked) and here. */
  async signOut(): Promise<void> {
    if (this.refresh !== undefined) {
      const headers = { authorization: `Bearer ${await this.accessToken()}` };
      await this.tokens.POST('/v1/auth/revoke', { body: { token: this.refresh }, headers });
    }
    this.current = undefined;
    this.refresh = undefined;
  }

  private async obtain(): Promise<string> {
    const credentials = this.credentials;
    if (this.refresh !== undefined) {
      try {
        return await this.grant({ grant_type: 'refresh_token', refresh_token: this.refresh });
      } catch (error) {
        // The session ended at the service (expired, signed out, password changed): sign in
        // again when the credentials allow it.
        const ended = error instanceof ApiProblem && error.code === 'invalid_grant';
        if (!ended || 'refreshToken' in credentials) throw error;
        this.refresh = undefined;
      }
    }
    if ('username' in credentials) return this.grant({ grant_type: 'password', username: credentials.username, password: credentials.password });
    if ('clientId' in credentials) {
      return this.grant({
        grant_type: 'client_credentials',
        client_id: credentials.clientId,
        client_secret: credentials.clientSecret,
        ...(credentials.scope !== undefined && { scope: credentials.scope }),
      });
    }
    throw new Error('The session has ended: sign in again');
  }

  private async grant(body: TokenRequest): Promise<string> {
    const { data } = await this.tokens.POST('/v1/auth/token', { body });
    if (!data) throw new Error('The token endpoint gave no token');
    this.current = { accessToken: data.access_token, expiresAt: Date.now() + data.expires_in * 1000 };
    // Rotation: the refresh token just presented is spent, only the new one works.
    if (data.refresh_token !== undefined) this.refresh = data.refresh_token;
    return data.access_token;
  }
}
