// The typed client of the massage referral network API: openapi-fetch over the types generated from
// openapi/openapi.json (schema.d.ts), plus what every call needs: the bearer token (renewed once on
// a 401), an Idempotency-Key on every POST, and problem details thrown as ApiProblem.
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { Session, type Credentials } from './auth.js';
import { problemDetails } from './problem.js';
import type { paths, webhooks } from './schema.js';

export type * from './schema.js';
export { Session, type Credentials } from './auth.js';
export { followEvents, type FeedEventType, type FollowOptions } from './events.js';
export { ApiProblem } from './problem.js';

// Not ApiClient: that is the schema of a partner EHR's client registration.
export type Api = Client<paths>;

/** What a webhook endpoint receives, by event type: `WebhookEvent<'referral.sent'>`, or any of them. */
export type WebhookEvent<Type extends keyof webhooks = keyof webhooks> = webhooks[Type]['post']['requestBody']['content']['application/json'];

export interface ApiOptions {
  baseUrl: string;
  /** Who calls: credentials to sign in with, or a Session to share between clients. Nothing for the public operations. */
  auth?: Credentials | Session;
  fetch?: (request: Request) => Promise<Response>;
}

export function createApiClient(options: ApiOptions): Api {
  const fetch = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const client = createClient<paths>({ baseUrl: options.baseUrl, fetch });
  // Answers pass through middleware in reverse: the bearer retry first, problems thrown last.
  client.use(problemDetails, idempotencyKeys);
  if (options.auth) {
    client.use(bearer(options.auth instanceof Session ? options.auth : new Session(options.baseUrl, options.auth, { fetch })));
  }
  return client;
}

/**
 * The body of a successful answer (typed as possibly undefined by openapi-fetch). Problem details
 * were thrown already; another error answer (a proxy's 502 page, a FHIR OperationOutcome) is thrown here.
 */
export function ok<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (!result.response.ok) throw new Error(`${result.response.status} ${result.response.statusText} from ${result.response.url}`);
  return result.data as T;
}

// The service keeps a POST's answer under its key for 24 hours, so a repeat (our own retry after a
// 401, or a caller's after a lost answer) is replayed rather than applied twice. A caller that may
// repeat a call from scratch gives a key of its own, derived from what the call means.
const idempotencyKeys: Middleware = {
  onRequest({ request }) {
    if (request.method === 'POST' && !request.headers.has('idempotency-key')) request.headers.set('idempotency-key', crypto.randomUUID());
  },
};

function bearer(session: Session): Middleware {
  // A request's body is read once when sent: a copy is kept to send again with a renewed token.
  const copies = new WeakMap<Request, { copy: Request; token: string }>();
  return {
    async onRequest({ request }) {
      const token = await session.accessToken();
      request.headers.set('authorization', `Bearer ${token}`);
      copies.set(request, { copy: request.clone(), token });
    },
    async onResponse({ request, response, options }) {
      const sent = copies.get(request);
      // Once only: a second 401 is the answer (the account was deactivated, say).
      if (response.status !== 401 || !sent) return undefined;
      sent.copy.headers.set('authorization', `Bearer ${await session.renew(sent.token)}`);
      return options.fetch(sent.copy);
    },
  };
}
