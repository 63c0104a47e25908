// The world of the resource-limits test (resource-limits.test.ts): an office, two practices, and a
// row or two in every list (more patients than the largest page), so that each list hands out a
// real cursor of its own and a page size is a real test.
import { sql } from 'drizzle-orm';
import { referralBody as fixtureReferralBody, visitNoteBody } from '../fixtures/referral-bodies.js';
import { documentForm, sampleFile } from '../fixtures/documents.js';
import { createOffice, createPractice, type Json, type TestApp } from '../helper.js';
import { evaluationReportBody, progressReportBody, renewalRequestBody } from './clinical-bodies.js';

const dayMs = 86_400_000;
export const isoDate = (offsetDays = 0) => new Date(Date.now() + offsetDays * dayMs).toISOString().slice(0, 10);

export async function buildResourceLimitsWorld(test: TestApp) {
  const networkAdmin = await test.loginAsAdmin();
  const office = await createOffice(test, networkAdmin);
  const practice = await createPractice(test, networkAdmin);
  const secondPractice = await createPractice(test, networkAdmin);

  // Every referral here goes to the practice's therapist unless it says otherwise.
  const referralBody = (overrides: Json = {}): Json => fixtureReferralBody({ therapistId: practice.therapist.id, ...overrides });
  const visitNote = visitNoteBody;

  // Every list holds at least two rows, so each can hand out a real cursor of its own.
  const referral = await test.create('/v1/referrals', office.physician.token, referralBody({ send: true }));
  await test.create('/v1/referrals', office.physician.token, referralBody({ send: true }));
  const accepted = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/accept`, token: practice.therapist.token });
  if (accepted.statusCode !== 200) throw new Error(`accept failed: ${accepted.statusCode} ${accepted.body}`);
  const report = await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNote());
  await test.create(`/v1/referrals/${referral.id}/progress-reports`, practice.therapist.token, visitNote());
  // Two reports to the prescriber, and two renewal requests: the first denied, as one is pending at a time.
  const clinicalReport = await test.create(`/v1/referrals/${referral.id}/reports`, practice.therapist.token, evaluationReportBody());
  await test.create(`/v1/referrals/${referral.id}/reports`, practice.therapist.token, progressReportBody());
  const denied = await test.create(`/v1/referrals/${referral.id}/renewal-requests`, practice.therapist.token, renewalRequestBody());
  const deny = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/renewal-requests/${denied.id}/deny`, token: office.physician.token, payload: { reason: 'Re-evaluate first' } });
  if (deny.statusCode !== 200) throw new Error(`deny failed: ${deny.statusCode} ${deny.body}`);
  const renewalRequest = await test.create(`/v1/referrals/${referral.id}/renewal-requests`, practice.therapist.token, renewalRequestBody({ reportId: clinicalReport.id }));
  // Two documents and two appointments (SPEC §14.5, §14.6); every step above is an event of the feed (SPEC §14.7).
  for (const title of ['Lumbar MRI report', 'Referral letter']) {
    const form = documentForm(sampleFile.pdf(), { title });
    const shared = await test.request({ method: 'POST', url: `/v1/referrals/${referral.id}/documents`, token: office.physician.token, headers: { 'content-type': form.contentType }, payload: form.payload });
    if (shared.statusCode !== 201) throw new Error(`upload failed: ${shared.statusCode} ${shared.body}`);
  }
  for (const hours of [48, 96]) {
    await test.create(`/v1/referrals/${referral.id}/appointments`, practice.therapist.token, { startsAt: new Date(Date.now() + hours * 3_600_000).toISOString(), minutes: 60 });
  }
  // Two adverse events, mild: a severe one that paused treatment would hold the referral (SPEC §14.10).
  for (const description of ['Soreness after the first visit', 'Headache after the second']) {
    await test.create(`/v1/referrals/${referral.id}/adverse-events`, practice.therapist.token, {
      occurredOn: isoDate(),
      description,
      severity: 'mild',
      actionTaken: 'Lighter pressure next visit',
      treatmentPaused: false,
    });
  }
  await test.create(`/v1/referrals/${referral.id}/messages`, office.physician.token, { body: 'First message' });
  await test.create(`/v1/referrals/${referral.id}/messages`, practice.therapist.token, { body: 'Second message' });
  for (const name of ['EHR one', 'EHR two']) {
    await test.create(`/v1/organizations/${office.id}/api-clients`, office.admin.token, { name, scopes: ['patients:read'] });
  }
  const endpoint = await test.create('/v1/webhook-endpoints', office.admin.token, { url: 'https://ehr.example/hooks/a', eventTypes: ['referral.completed'] });
  await test.create('/v1/webhook-endpoints', office.admin.token, { url: 'https://ehr.example/hooks/b', eventTypes: ['referral.completed'] });
  for (let ping = 0; ping < 2; ping++) {
    const response = await test.request({ method: 'POST', url: `/v1/webhook-endpoints/${endpoint.id}/test`, token: office.admin.token });
    if (response.statusCode !== 202) throw new Error(`ping failed: ${response.statusCode} ${response.body}`);
  }
  // More patients than the largest page, so "never more than the documented maximum" is a real test.
  // Written straight to the table: 200 API calls would cost a test budget the probes need.
  await test.app.database.rows(sql`
    insert into patients (organization_id, given_name, family_name, birth_date, sex, created_by)
    select ${office.id}::uuid, 'Bulk', 'Patient ' || n, date '1970-01-01', 'unknown', ${office.physician.id}::uuid from generate_series(1, 210) as n`);

  async function rowCount(
    table:
      | 'patients'
      | 'referrals'
      | 'messages'
      | 'progress_reports'
      | 'clinical_reports'
      | 'clinical_report_signatures'
      | 'renewal_requests'
      | 'organizations'
      | 'users'
      | 'documents'
      | 'document_chunks'
      | 'appointments'
      | 'adverse_events',
  ): Promise<number> {
    const [row] = await test.app.database.rows<{ n: number }>(sql`select count(*)::int as n from ${sql.identifier(table)}`);
    return row!.n;
  }

  return { networkAdmin, office, practice, secondPractice, referralBody, visitNote, referral, report, clinicalReport, renewalRequest, endpoint, rowCount };
}
