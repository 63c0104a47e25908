import t from 'tap';
import { buildTestApp, createOffice, createPractice } from './helper.js';

t.test('smoke › an office and a practice can be created and signed in', async (t) => {
  const test = await buildTestApp(t);
  const admin = await test.loginAsAdmin();
  const office = await createOffice(test, admin);
  const practice = await createPractice(test, admin);
  const me = await test.request({ method: 'GET', url: '/v1/me', token: office.physician.token });
  t.equal(me.statusCode, 200);
  t.equal(me.json().organization.id, office.id);
  const foreign = await test.request({ method: 'GET', url: `/v1/organizations/${practice.id}`, token: office.physician.token });
  t.equal(foreign.statusCode, 404);
  t.equal(foreign.headers['content-type'], 'application/problem+json; charset=utf-8');
});
