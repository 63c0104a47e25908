// The typed client (clients/typescript) against a listening app: a refused token is renewed once
// with the refresh grant (one renewal for requests refused together, as a refresh token presented
// twice ends the session) and the request sent again under the same Idempotency-Key; problem details
// are thrown as ApiProblem with the request id.
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { ApiProblem, createApiClient, followEvents, ok, Session, type CreateReferral, type FeedEvent } from '../clients/typescript/src/index.js';
import { referralBody } from './fixtures/referral-bodies.js';
import { buildTestApp, createOffice, createPractice, defaultPassword } from './helper.js';

const test = await buildTestApp(t);
await test.app.listen({ port: 0, host: '127.0.0.1' });
const baseUrl = `http://127.0.0.1:${(test.app.server.address() as AddressInfo).port}`;
const adminToken = await test.loginAsAdmin();
const office = await createOffice(test, adminToken);
const practice = await createPractice(test, adminToken);

/** A fetch that records what was sent, and spoils the bearer token of the next `spoil` API requests, as if it had expired. */
function recordingFetch() {
  const sent: { url: string; authorization: string | null; idempotencyKey: string | null; grant?: string }[] = [];
  const state = { spoil: 0 };
  const fetch = async (request: Request) => {
    const path = new URL(request.url).pathname;
    if (path !== '/v1/auth/token' && state.spoil > 0) {
      state.spoil--;
      request.headers.set('authorization', 'Bearer expired.or.forged');
    }
    const grant = path === '/v1/auth/token' ? ((await request.clone().json()) as { grant_type: string }).grant_type : undefined;
    sent.push({ url: path, authorization: request.headers.get('authorization'), idempotencyKey: request.headers.get('idempotency-key'), ...(grant && { grant }) });
    return globalThis.fetch(request);
  };
  return { fetch, sent, state };
}

t.test('clients/typescript › a refused token is refreshed once and the POST sent again under its Idempotency-Key', async (t) => {
  const { fetch, sent, state } = recordingFetch();
  const session = new Session(baseUrl, { username: office.physician.email, password: defaultPassword }, { fetch });
  const api = createApiClient({ baseUrl, auth: session, fetch });
  ok(await api.GET('/v1/me'));
  const firstRefreshToken = session.refreshToken;

  state.spoil = 1;
  const created = ok(await api.POST('/v1/referrals', { body: referralBody({ therapistId: practice.therapist.id }) as CreateReferral }));
  t.equal(created.status, 'draft', 'the referral is created');
  const attempts = sent.filter((request) => request.url === '/v1/referrals');
  t.equal(attempts.length, 2, 'sent twice: refused, then with a renewed token');
  t.ok(attempts[0]!.idempotencyKey, 'the POST carries an Idempotency-Key');
  t.equal(attempts[1]!.idempotencyKey, attempts[0]!.idempotencyKey, 'the same one both times');
  t.not(attempts[1]!.authorization, attempts[0]!.authorization, 'with another token');
  t.same(sent.filter((request) => request.grant).map((request) => request.grant), ['password', 'refresh_token'], 'renewed with the refresh token grant');
  t.ok(session.refreshToken && session.refreshToken !== firstRefreshToken, 'the refresh token rotated');

  const lastRefreshToken = session.refreshToken!;
  await session.signOut();
  const ended = await new Session(baseUrl, { refreshToken: lastRefreshToken }).accessToken().catch((error: unknown) => error);
  t.ok(ended instanceof ApiProblem && ended.code === 'invalid_grant', 'signing out revokes the refresh token at the service');
});

t.test('clients/typescript › a partner EHR signs in with client credentials', async (t) => {
  const registered = await test.create(`/v1/organizations/${office.id}/api-clients`, adminToken, { name: 'Client SDK EHR', scopes: ['referrals:read'] });
  const api = createApiClient({ baseUrl, auth: { clientId: registered.clientId, clientSecret: registered.clientSecret } });
  const me = ok(await api.GET('/v1/me'));
  t.equal(me.kind, 'api_client', 'it acts as the client');
});

t.test('clients/typescript › followEvents yields the feed in order and hands over the cursor once an answer is handled', async (t) => {
  const physician = createApiClient({ baseUrl, auth: { username: office.physician.email, password: defaultPassword } });
  const sent = ok(await physician.POST('/v1/referrals', { body: referralBody({ therapistId: practice.therapist.id, send: true }) as CreateReferral }));
  const therapist = createApiClient({ baseUrl, auth: { username: practice.therapist.email, password: defaultPassword } });
  const cursors: string[] = [];
  const seen: FeedEvent[] = [];
  for await (const event of followEvents(therapist, { types: ['referral.sent'], wait: 0, limit: 1, untilIdle: true, onCursor: (cursor) => cursors.push(cursor) })) {
    t.equal(cursors.length, seen.length, 'the cursor of an answer is handed over only after its events');
    seen.push(event);
  }
  t.ok(seen.some((event) => event.type === 'referral.sent' && event.data.referralId === sent.id), 'the referral sent to the therapist is among the events');
  t.equal(cursors.length, seen.length + 1, 'one cursor per answer, the empty last one included');
  const again = [];
  for await (const event of followEvents(therapist, { after: cursors.at(-1), wait: 0, untilIdle: true })) again.push(event);
  t.same(again, [], 'nothing after the last cursor');
});

t.test('clients/typescript › requests refused together share one renewal', async (t) => {
  const { fetch, sent, state } = recordingFetch();
  const api = createApiClient({ baseUrl, auth: { username: practice.therapist.email, password: defaultPassword }, fetch });
  ok(await api.GET('/v1/me'));
  state.spoil = 3;
  const answers = await Promise.all([api.GET('/v1/me'), api.GET('/v1/referrals'), api.GET('/v1/events')]);
  t.ok(answers.every((answer) => answer.response.ok), 'every request succeeds once sent again');
  t.same(sent.filter((request) => request.grant).map((request) => request.grant), ['password', 'refresh_token'], 'one refresh for the three: the session lives on');
  ok(await api.GET('/v1/me'));
});

t.test('clients/typescript › problem details are thrown as ApiProblem', async (t) => {
  const api = createApiClient({ baseUrl, auth: { username: office.physician.email, password: defaultPassword } });
  const error = await api.GET('/v1/referrals/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } }).catch((error: unknown) => error);
  t.ok(error instanceof ApiProblem, 'an ApiProblem');
  const problem = error as ApiProblem;
  t.equal(problem.status, 404, 'with the status');
  t.match(problem.requestId, /\S/, 'carrying the request id to quote');
  t.equal(problem.requestId, problem.problem.requestId, 'the one the service logged');

  const refused = createApiClient({ baseUrl, auth: { username: office.physician.email, password: 'not-the-password' } });
  const signIn = await refused.GET('/v1/me').catch((error: unknown) => error);
  t.ok(signIn instanceof ApiProblem && signIn.status === 400 && signIn.code === 'invalid_grant', 'a failed sign-in too, with its OAuth error code');
});
