// Liveness and readiness (SPEC §11): public, outside /v1; ready means database reachable and migrations applied.
import t from 'tap';
import { buildTestApp } from './helper.js';


const test = await buildTestApp(t);

t.test('GET /health/live is 200 {status: ok} without a token', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/live' });
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/json/);
  t.same(response.json(), { status: 'ok' });
});

t.test('GET /health/ready is 200 with the database and migrations checks passing', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/ready' });
  t.equal(response.statusCode, 200);
  t.same(response.json(), { status: 'ok', checks: { database: true, migrations: true } });
});

t.test('health checks ignore an invalid bearer token', async (t) => {
  const response = await test.request({ method: 'GET', url: '/health/ready', token: 'not.a.jwt' });
  t.equal(response.statusCode, 200);
});

t.test('with the database closed, /health/ready is 503 {status: unavailable} and /health/live stays 200', async (t) => {
  const broken = await buildTestApp(t);
  await broken.app.database.close();
  const ready = await broken.request({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 503);
  t.match(ready.json(), { status: 'unavailable', checks: { database: false } });
  t.notMatch(ready.body, /select|sql|pglite|postgres/i, 'no database detail in the body');
  const live = await broken.request({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200);
});
