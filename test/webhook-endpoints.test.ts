// Webhook endpoints for partner EHRs (SPEC §8, issue 4), managed by organization admins: register,
// read, list, change, disable, delete, each refused to anyone else and audited; and the SSRF guard,
// at registration and again when the worker connects to a name that resolves inside.
//
// DNS answers come from an injected resolver, and an address the guard must refuse is only ever
// handed to the worker after the guard's own lookup has been seen to refuse it, so no test sends a
// packet anywhere but loopback. The deliveries themselves: webhook-events and webhook-delivery-log.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import t, { type Test } from 'tap';
import { countRows } from './fixtures/database.js';
import { fakeDns, guardVerdict } from './fixtures/fake-dns.js';
import { createOffice, createPractice, type Member } from './fixtures/network.js';
import { startTcpListener } from './fixtures/partner-ehr.js';
import { assertProblem } from './fixtures/problems.js';
import { expectStatus, isoTimestampPattern as isoTimestamp, uuidPattern as uuid } from './fixtures/responses.js';
import {
  assertRetryIn,
  buildWebhookApp,
  deliveriesOf,
  drain,
  endpointsUrl,
  endpointUrl,
  makeDue,
  registerEndpoint,
  specEventTypes,
} from './fixtures/webhooks.js';
import { auditEvents, type Json, type TestResponse } from './helper.js';

const dayMs = 86_400_000;
/** A 400 problem naming each of the fields. */
const assertInvalid = (t: Test, response: TestResponse, fields: (string | RegExp)[], what: string) => assertProblem(t, response, 400, fields, what);
const randomSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

// Private targets refused (production rules); a failed attempt is retried 5 s, then 60 s later.
const guardedDns = fakeDns();
const guarded = await buildWebhookApp(t, { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false', WEBHOOK_RETRY_SCHEDULE: '0,5,60', WEBHOOK_TIMEOUT_MS: '2000' }, guardedDns.resolve);

// Every organization is made before any test runs: the app closes when the tests end.
const admin = await guarded.loginAsAdmin();
const adminId: string = (await guarded.request({ method: 'GET', url: '/v1/me', token: admin })).json().id;
const [office, practice, otherOffice] = await Promise.all([createOffice(guarded, admin), createPractice(guarded, admin), createOffice(guarded, admin)]);

const endpointFields = (body: Json) => {
  const { secret: _secret, ...rest } = body;
  return rest;
};

t.test('endpoint management by organization admins', async (t) => {
  const readEndpoint = (id: string, token: string) => guarded.request({ method: 'GET', url: endpointUrl(id), token });
  const listEndpoints = (token: string, query = '') => guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=200${query}`, token });

  await t.test('an office admin registers an endpoint for the office: 201 with a whsec_ secret that only this answer shows', async (t) => {
    const payload = { url: 'https://ehr.riverside.example/hooks/massage', eventTypes: ['referral.accepted', 'progress_report.created'], description: 'Riverside EHR' };
    const before = Date.now();
    const response = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload });
    const body = expectStatus(t, response, 201, 'register');
    t.equal(response.headers.location, endpointUrl(body.id), 'Location names the endpoint');
    t.match(body.id, uuid);
    t.match(body.createdAt, isoTimestamp);
    t.ok(Date.parse(body.createdAt) >= before - 1000 && Date.parse(body.createdAt) <= Date.now() + 1000, 'created now');
    t.same(body, {
      id: body.id,
      organizationId: office.id,
      url: payload.url,
      description: payload.description,
      eventTypes: payload.eventTypes,
      format: 'standard',
      status: 'active',
      disabledReason: null,
      failingSince: null,
      lastSuccessAt: null,
      previousSecretExpiresAt: null,
      createdAt: body.createdAt,
      updatedAt: body.updatedAt,
      secret: body.secret,
    }, 'the endpoint in full, active, of the office');
    t.match(body.secret, /^whsec_[A-Za-z0-9+/]+={0,2}$/, 'the secret is whsec_ + base64');
    t.equal(Buffer.from(body.secret.slice('whsec_'.length), 'base64').length, 32, 'a 256-bit key');
    t.doesNotThrow(() => new Webhook(body.secret), 'standardwebhooks takes the secret');

    const read = await readEndpoint(body.id, office.admin.token);
    const shown = expectStatus(t, read, 200, 'read it back');
    t.same(shown, endpointFields(body), 'the same endpoint, without the secret');
    t.notOk(read.body.includes(body.secret.slice(6)), 'the secret appears nowhere in a read');
    const listed = await listEndpoints(office.admin.token);
    t.same(expectStatus(t, listed, 200, 'list').data.find((endpoint: Json) => endpoint.id === body.id), endpointFields(body), 'listed without the secret');
    t.notOk(listed.body.includes(body.secret.slice(6)), 'the secret appears nowhere in a listing');

    const audit = await auditEvents(guarded, { action: 'webhook_endpoint.create', resourceId: body.id });
    t.same(
      audit.map((event) => [event.actorId, event.outcome, event.httpStatus, event.resourceType]),
      [[office.admin.id, 'success', 201, 'webhook_endpoint']],
      'the registration is audited',
    );
    t.notOk(JSON.stringify(audit).includes(body.secret.slice(6)), 'the audit event does not hold the secret');
  });

  await t.test('a practice admin registers one for the practice', async (t) => {
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://ehr.harbor.example/webhooks', eventTypes: ['referral.sent'] },
    });
    const body = expectStatus(t, response, 201, 'register');
    t.match(body, { organizationId: practice.id, url: 'https://ehr.harbor.example/webhooks', eventTypes: ['referral.sent'], description: '', status: 'active' });
    t.match(body.secret, /^whsec_/);
  });

  await t.test('a network admin registers one for the organization it names, and must name one', async (t) => {
    const payload = { url: 'https://ehr.network.example/hooks', eventTypes: ['referral.sent', 'referral.expired'], organizationId: otherOffice.id };
    const body = expectStatus(t, await guarded.request({ method: 'POST', url: endpointsUrl, token: admin, payload }), 201, 'register for another office');
    t.match(body, { organizationId: otherOffice.id, url: payload.url, eventTypes: payload.eventTypes });
    t.match(body.secret, /^whsec_/);
    t.same(expectStatus(t, await readEndpoint(body.id, otherOffice.admin.token), 200, "the office's own admin reads it"), endpointFields(body));

    const unnamed = await guarded.request({ method: 'POST', url: endpointsUrl, token: admin, payload: { url: payload.url, eventTypes: payload.eventTypes } });
    assertInvalid(t, unnamed, ['organizationId'], 'without organizationId');
  });

  await t.test('listings: each admin sees only the own organization\'s endpoints; the network admin any organization\'s', async (t) => {
    const own = async (token: string) => (expectStatus(t, await listEndpoints(token), 200, 'list').data as Json[]).map((endpoint) => endpoint.organizationId);
    const officeSees = await own(office.admin.token);
    t.ok(officeSees.length >= 1 && officeSees.every((id) => id === office.id), 'the office admin: only the office\'s');
    const practiceSees = await own(practice.admin.token);
    t.ok(practiceSees.length >= 1 && practiceSees.every((id) => id === practice.id), 'the practice admin: only the practice\'s');
    const otherSees = await own(otherOffice.admin.token);
    t.ok(otherSees.length >= 1 && otherSees.every((id) => id === otherOffice.id), 'the other office\'s admin: only its own');

    const all = expectStatus(t, await listEndpoints(admin), 200, 'the network admin lists all').data as Json[];
    t.same(new Set(all.map((endpoint) => endpoint.organizationId)), new Set([office.id, practice.id, otherOffice.id]), 'all three organizations');
    t.notOk(all.some((endpoint) => 'secret' in endpoint), 'no secret in the listing');
    const one = expectStatus(t, await listEndpoints(admin, `&organizationId=${practice.id}`), 200, 'one organization').data as Json[];
    t.ok(one.length >= 1 && one.every((endpoint) => endpoint.organizationId === practice.id), 'filtered by organizationId');

    const page = expectStatus(t, await guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=1`, token: admin }), 200, 'a page of one');
    t.equal(page.data.length, 1);
    t.type(page.nextCursor, 'string', 'with a cursor to the next page');
    const next = expectStatus(t, await guarded.request({ method: 'GET', url: `${endpointsUrl}?limit=200&cursor=${encodeURIComponent(page.nextCursor)}`, token: admin }), 200, 'the next page');
    t.same([page.data[0].id, ...next.data.map((endpoint: Json) => endpoint.id)], all.map((endpoint) => endpoint.id), 'the pages together are the whole list, in order');
  });

  await t.test('validation: a URL that is not https, and event types that are empty, unknown or ping, are 400s naming the field', async (t) => {
    const token = office.admin.token;
    const valid = { url: 'https://ehr.riverside.example/hooks', eventTypes: ['referral.sent'] };
    const count = () => countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const before = await count();
    const cases: [string, Json, (string | RegExp)[]][] = [
      ['an http URL', { ...valid, url: 'http://ehr.riverside.example/hooks' }, ['url']],
      ['a relative URL', { ...valid, url: '/hooks' }, ['url']],
      ['a URL with credentials', { ...valid, url: 'https://user:pass@ehr.riverside.example/hooks' }, ['url']],
      ['an ftp URL', { ...valid, url: 'ftp://ehr.riverside.example/hooks' }, ['url']],
      ['no event types', { ...valid, eventTypes: [] }, ['eventTypes']],
      ['an unknown event type', { ...valid, eventTypes: ['referral.exploded'] }, [/^eventTypes/]],
      ['ping, which every endpoint gets on demand', { ...valid, eventTypes: ['ping'] }, [/^eventTypes/]],
      ['the same event type twice', { ...valid, eventTypes: ['referral.sent', 'referral.sent'] }, [/^eventTypes/]],
      ['no URL', { eventTypes: ['referral.sent'] }, ['url']],
      ['a status, which the server owns', { ...valid, status: 'active' }, ['status']],
    ];
    for (const [what, payload, fields] of cases) {
      assertInvalid(t, await guarded.request({ method: 'POST', url: endpointsUrl, token, payload }), fields, what);
    }
    t.equal(await count(), before, 'nothing was registered');
  });

  await t.test('PATCH changes the URL, event types and description; disabling sets status disabled and re-enabling sets it active again', async (t) => {
    const endpoint = await registerEndpoint(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/v1/hooks', eventTypes: ['referral.sent'] });
    const patch = (payload: Json, token = office.admin.token) => guarded.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token, payload });

    const changed = expectStatus(t, await patch({ url: 'https://ehr.riverside.example/v2/hooks', eventTypes: ['referral.accepted', 'message.created'], description: 'v2' }), 200, 'change');
    t.same(changed, {
      ...endpointFields(endpoint),
      url: 'https://ehr.riverside.example/v2/hooks',
      eventTypes: ['referral.accepted', 'message.created'],
      description: 'v2',
      updatedAt: changed.updatedAt,
    }, 'the changes and nothing else');
    t.notOk('secret' in changed, 'no secret in the answer');
    t.ok(Date.parse(changed.updatedAt) >= Date.parse(endpoint.updatedAt), 'updatedAt moves on');
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), changed, 'as read back');

    assertInvalid(t, await patch({ url: 'http://ehr.riverside.example/hooks' }), ['url'], 'an http URL');
    assertInvalid(t, await patch({ eventTypes: [] }), ['eventTypes'], 'no event types');
    assertInvalid(t, await patch({ eventTypes: ['referral.exploded'] }), [/^eventTypes/], 'an unknown event type');
    assertInvalid(t, await patch({ status: 'deleted' }), ['status'], 'an unknown status');
    expectStatus(t, await patch({}), 400, 'an empty change');
    assertInvalid(t, await patch({ secret: randomSecret() }), ['secret'], 'a secret, which the server makes');

    const disabled = expectStatus(t, await patch({ status: 'disabled' }), 200, 'disable');
    t.match(disabled, { status: 'disabled', disabledReason: String }, 'disabled, with a reason');
    const enabled = expectStatus(t, await patch({ status: 'active' }), 200, 're-enable');
    t.match(enabled, { status: 'active', disabledReason: null, failingSince: null }, 'active again, the reason cleared');
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), enabled);

    const byNetworkAdmin = expectStatus(t, await patch({ description: 'set by the network admin' }, admin), 200, 'the network admin changes it');
    t.equal(byNetworkAdmin.description, 'set by the network admin');
    t.same(
      (await auditEvents(guarded, { action: 'webhook_endpoint.update', resourceId: endpoint.id, outcome: 'success' })).map((event) => event.actorId),
      [office.admin.id, office.admin.id, office.admin.id, adminId],
      'every accepted change is audited',
    );
  });

  await t.test('DELETE answers 204; then the endpoint is gone: 404 to read, change, rotate, ping or delete it, and not listed', async (t) => {
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://ehr.harbor.example/old', eventTypes: ['referral.sent'] },
    });
    const endpoint = expectStatus(t, response, 201, 'register');
    const removed = await guarded.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token: practice.admin.token });
    t.equal(removed.statusCode, 204, 'deleted: 204');
    t.equal(removed.body, '', 'with no body');

    for (const [method, url, payload] of [
      ['GET', endpointUrl(endpoint.id), undefined],
      ['PATCH', endpointUrl(endpoint.id), { description: 'back?' }],
      ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined],
      ['POST', `${endpointUrl(endpoint.id)}/test`, undefined],
      ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined],
      ['DELETE', endpointUrl(endpoint.id), undefined],
    ] as const) {
      const answer = await guarded.request({ method, url, token: practice.admin.token, ...(payload ? { payload } : {}) });
      t.equal(answer.statusCode, 404, `${method} ${url.replace(endpoint.id, '{id}')}: 404`);
    }
    const listed = expectStatus(t, await listEndpoints(practice.admin.token), 200, 'list').data as Json[];
    t.notOk(listed.some((row) => row.id === endpoint.id), 'no longer listed');
    t.same(
      (await auditEvents(guarded, { action: 'webhook_endpoint.delete', resourceId: endpoint.id, outcome: 'success' })).map((event) => [event.actorId, event.httpStatus]),
      [[practice.admin.id, 200]],
      'the deletion is audited once',
    );
  });

  await t.test('an admin of another organization gets 404 for every operation on the endpoint, each audited as denied', async (t) => {
    const endpoint = await registerEndpoint(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/private', eventTypes: ['referral.sent'] });
    for (const outsider of [practice.admin, otherOffice.admin]) {
      const operations = [
        ['GET', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.read'],
        ['PATCH', endpointUrl(endpoint.id), { description: 'mine now' }, 'webhook_endpoint.update'],
        ['DELETE', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.delete'],
        ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined, 'webhook_endpoint.rotate_secret'],
        ['POST', `${endpointUrl(endpoint.id)}/test`, undefined, 'webhook_endpoint.test'],
        ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined, 'webhook_delivery.list'],
        ['POST', `${endpointUrl(endpoint.id)}/recover`, { from: new Date(Date.now() - dayMs).toISOString() }, 'webhook_endpoint.recover'],
      ] as const;
      for (const [method, url, payload, action] of operations) {
        const response = await guarded.request({ method, url, token: outsider.token, ...(payload ? { payload } : {}) });
        const body = expectStatus(t, response, 404, `${method} ${url.replace(endpoint.id, '{id}')} by an outsider`);
        t.match(body, { status: 404, detail: 'Webhook endpoint not found' }, 'the not-found problem, naming nothing');
        const denied = await auditEvents(guarded, { action, resourceId: endpoint.id, actorId: outsider.id, outcome: 'denied' });
        t.same(denied.map((event) => [event.resourceType, event.httpStatus]), [['webhook_endpoint', 404]], `${action} by the outsider is audited as denied`);
      }
      const listed = expectStatus(t, await listEndpoints(outsider.token), 200, 'the outsider lists').data as Json[];
      t.notOk(listed.some((row) => row.id === endpoint.id), 'not in the outsider\'s listing');
    }
    const unchanged = expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'the owner reads it');
    t.same(unchanged, endpointFields(endpoint), 'unchanged, not deleted, not rotated');
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_events where type = 'ping'`), 0, 'no ping was queued');
  });

  await t.test('an admin of another organization cannot register an endpoint for the organization: refused and audited as denied', async (t) => {
    const before = await countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const response = await guarded.request({
      method: 'POST',
      url: endpointsUrl,
      token: practice.admin.token,
      payload: { url: 'https://attacker.example/hooks', eventTypes: [...specEventTypes], organizationId: office.id },
    });
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_endpoints`), before, 'nothing was registered');
    t.not(response.statusCode, 201, 'refused');
    t.ok([403, 404].includes(response.statusCode), `refused as outside the caller's scope: 403 or 404 (got ${response.statusCode}: ${response.body.slice(0, 200)})`);
    const denied = await auditEvents(guarded, { action: 'webhook_endpoint.create', actorId: practice.admin.id, outcome: 'denied' });
    t.equal(denied.length, 1, 'the denied attempt is audited (SPEC §7: every denied attempt)');
  });

  await t.test('physicians, office staff and therapists are refused by the route policy with 403, each audited as denied', async (t) => {
    const endpoint = await registerEndpoint(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/staff', eventTypes: ['referral.sent'] });
    const people: [string, Member][] = [
      ['a physician', office.physician],
      ['office staff', office.staff],
      ['a therapist', practice.therapist],
    ];
    for (const [who, person] of people) {
      const operations = [
        ['POST', endpointsUrl, { url: 'https://ehr.riverside.example/mine', eventTypes: ['referral.sent'] }, 'webhook_endpoint.create', undefined],
        ['GET', endpointsUrl, undefined, 'webhook_endpoint.list', undefined],
        ['GET', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.read', endpoint.id],
        ['PATCH', endpointUrl(endpoint.id), { description: 'x' }, 'webhook_endpoint.update', endpoint.id],
        ['DELETE', endpointUrl(endpoint.id), undefined, 'webhook_endpoint.delete', endpoint.id],
        ['POST', `${endpointUrl(endpoint.id)}/rotate-secret`, undefined, 'webhook_endpoint.rotate_secret', endpoint.id],
        ['POST', `${endpointUrl(endpoint.id)}/test`, undefined, 'webhook_endpoint.test', endpoint.id],
        ['GET', `${endpointUrl(endpoint.id)}/deliveries`, undefined, 'webhook_delivery.list', endpoint.id],
      ] as const;
      for (const [method, url, payload, action, resourceId] of operations) {
        const response = await guarded.request({ method, url, token: person.token, ...(payload ? { payload } : {}) });
        expectStatus(t, response, 403, `${who}: ${method} ${url.replace(endpoint.id, '{id}')}`);
        const denied = await auditEvents(guarded, { action, actorId: person.id, outcome: 'denied', ...(resourceId ? { resourceId } : {}) });
        t.same(denied.map((event) => event.httpStatus), [403], `${who}: ${action} audited as denied`);
      }
    }
    t.same(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read'), endpointFields(endpoint), 'the endpoint is untouched');
  });

  await t.test('SSRF at registration: http, loopback, private, link-local, unique-local, mapped and localhost targets are 400s naming url', async (t) => {
    const endpoint = await registerEndpoint(t, guarded, office.admin.token, { url: 'https://ehr.riverside.example/ssrf', eventTypes: ['referral.sent'] });
    const before = await countRows(guarded, sql`select count(*) as n from webhook_endpoints`);
    const refused = [
      'http://ehr.riverside.example/hooks',
      'https://127.0.0.1/hooks',
      'https://127.1.2.3:8443/hooks',
      'https://10.0.0.5/hooks',
      'https://172.16.0.1/hooks',
      'https://192.168.1.10/hooks',
      'https://169.254.169.254/latest/meta-data',
      'https://0.0.0.0/hooks',
      'https://[::1]/hooks',
      'https://[fd00::1]/hooks',
      'https://[fe80::1]/hooks',
      'https://[::ffff:127.0.0.1]/hooks',
      'https://[::ffff:10.0.0.5]/hooks',
      'https://localhost/hooks',
      'https://api.localhost/hooks',
    ];
    for (const url of refused) {
      const created = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload: { url, eventTypes: ['referral.sent'] } });
      assertInvalid(t, created, ['url'], `register ${url}`);
      const changed = await guarded.request({ method: 'PATCH', url: endpointUrl(endpoint.id), token: office.admin.token, payload: { url } });
      assertInvalid(t, changed, ['url'], `change to ${url}`);
    }
    t.equal(await countRows(guarded, sql`select count(*) as n from webhook_endpoints`), before, 'nothing was registered');
    t.equal(expectStatus(t, await readEndpoint(endpoint.id, office.admin.token), 200, 'read').url, 'https://ehr.riverside.example/ssrf', 'the URL did not change');
    t.same(guardedDns.calls, [], 'registration refused them without resolving anything');
  });
});

// =============================================================================================
// SSRF at connect time (private targets refused): a public-looking name that resolves inside.

t.test('SSRF at connect time: a name that resolves to a non-public address is refused before connecting, and retried on schedule', async (t) => {
  const host = 'hooks.partner.example';
  const listener = await startTcpListener(t);
  const answers: [string, number][] = [
    ['127.0.0.1', 4],
    ['10.0.0.1', 4],
    ['::ffff:192.168.1.1', 6],
    ['fe80::1', 6],
  ];

  for (const [address, family] of answers) {
    await t.test(`${host} resolving to ${address}: the attempt fails naming the blocked target, without a connection`, async (t) => {
      const answer = [{ address, family }];
      // Safety first: the worker's own guard must refuse this answer before the worker is given it.
      const refusal = await guardVerdict(host, answer);
      t.ok(refusal, `the guard's lookup refuses ${address}`);
      t.equal(refusal?.code, 'EBLOCKEDTARGET');
      if (!refusal) return t.fail(`not handing ${address} to the worker: it would connect`);

      const url = `https://${host}:${listener.port}/webhooks`;
      const created = await guarded.request({ method: 'POST', url: endpointsUrl, token: office.admin.token, payload: { url, eventTypes: ['referral.sent'] } });
      const endpoint = expectStatus(t, created, 201, 'the name is accepted at registration');
      t.teardown(async () => {
        await guarded.request({ method: 'DELETE', url: endpointUrl(endpoint.id), token: office.admin.token });
      });
      guardedDns.answers.set(host, answer);
      guardedDns.calls.length = 0;

      const ping = expectStatus(t, await guarded.request({ method: 'POST', url: `${endpointUrl(endpoint.id)}/test`, token: office.admin.token }), 202, 'ping');
      const firstTry = Date.now();
      t.equal(await drain(guarded), 1, 'the worker tried the one delivery');
      const firstDone = Date.now();
      t.ok(guardedDns.calls.includes(host), 'the name was resolved when the worker connected');
      t.equal(listener.connections, 0, 'nothing connected to the loopback listener');

      const [delivery] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(delivery, { eventId: ping.eventId, eventType: 'ping', status: 'pending', attempts: 1, lastStatusCode: null }, 'pending, for a retry');
      t.match(delivery!.lastError, /EBLOCKEDTARGET/, 'the error says the target was blocked');
      t.ok(delivery!.lastError.includes(host), `the error names ${host} (${delivery!.lastError})`);
      // Issue 12: the owners learn the target was refused, never what their name resolved to inside.
      t.notOk(delivery!.lastError.includes(address), `the error does not echo the blocked address ${address} (${delivery!.lastError})`);
      t.equal(delivery!.attemptLog.length, 1, 'one attempt logged');
      t.match(delivery!.attemptLog[0], { statusCode: null, responseExcerpt: null, error: delivery!.lastError }, 'the attempt: no status, the blocked error');
      t.ok(delivery!.attemptLog[0].latencyMs < 1000, `refused at once, without waiting for a connection (${delivery!.attemptLog[0].latencyMs} ms)`);
      assertRetryIn(t, delivery!.nextAttemptAt, firstTry, firstDone, 5, 'the second attempt per the schedule: 5 s ± 10% later');
      const audited = await auditEvents(guarded, { action: 'webhook.attempt', resourceId: delivery!.id });
      t.same(audited.map((event) => [event.outcome, event.resourceType, event.actorType]), [['error', 'webhook_delivery', 'system']], 'the attempt is audited as an error');

      if (address !== '127.0.0.1') return;
      // The loopback answer goes through the whole schedule: 0, 5 s, 60 s, then dead.
      await makeDue(guarded, [delivery!.id]);
      const secondTry = Date.now();
      await drain(guarded);
      const secondDone = Date.now();
      const [second] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(second, { status: 'pending', attempts: 2 }, 'pending again after the second attempt');
      assertRetryIn(t, second!.nextAttemptAt, secondTry, secondDone, 60, 'the third attempt: 60 s ± 10% later');
      await makeDue(guarded, [delivery!.id]);
      await drain(guarded);
      const [dead] = await deliveriesOf(guarded, endpoint.id, office.admin.token);
      t.match(dead, { status: 'dead', attempts: 3, lastStatusCode: null }, 'dead after the last attempt of the schedule');
      t.equal(dead!.attemptLog.length, 3, 'three attempts logged');
      t.ok(dead!.attemptLog.every((attempt: Json) => /EBLOCKEDTARGET/.test(attempt.error) && attempt.statusCode === null), 'each refused by the guard');
      t.equal((await auditEvents(guarded, { action: 'webhook.attempt', resourceId: delivery!.id })).length, 3, 'each attempt audited');
      t.equal(listener.connections, 0, 'still no connection to the loopback listener');
      t.equal(await drain(guarded), 0, 'nothing more is tried');
    });
  }
});
