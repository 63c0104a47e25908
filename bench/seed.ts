// Seeds referrals with set-based SQL (thousands of rows per statement, not one request per row)
// on top of the demo network, and picks the ids and cursors the scenarios use.
import type { Sql } from 'postgres';
import { encodeCursor } from '../src/lib/pagination.js';
import { demoCredentials } from '../src/seed/demo-network.js';

export interface DemoIds {
  officeId: string;
  physicianId: string;
  harborId: string;
  samId: string;
  joId: string;
  alexId: string;
  eastsideId: string;
}

export async function demoIds(sql: Sql): Promise<DemoIds> {
  const rows = await sql<{ email: string; id: string; organization_id: string }[]>`
    select email, id, organization_id from users where email in ${sql(Object.values(demoCredentials.users))}`;
  const byEmail = (email: string) => {
    const row = rows.find((candidate) => candidate.email === email);
    if (!row) throw new Error(`the demo network lacks ${email}`);
    return row;
  };
  const { users } = demoCredentials;
  return {
    officeId: byEmail(users.physician).organization_id,
    physicianId: byEmail(users.physician).id,
    harborId: byEmail(users.harborTherapist).organization_id,
    samId: byEmail(users.harborTherapist).id,
    joId: byEmail(users.harborTherapist2).id,
    alexId: byEmail(users.eastsideTherapist).id,
    eastsideId: byEmail(users.eastsideTherapist).organization_id,
  };
}

const chunkSize = 50_000;

/**
 * Adds referrals until the office has `total`, in chunks of one transaction each (so the sync feed
 * has many transactions, as in real use). One in ten goes to Sam, one in ten to Jo, one in ten to
 * Sam's practice as a whole, the rest to Alex at another practice; a third are accepted.
 */
export async function seedReferrals(sql: Sql, ids: DemoIds, total: number): Promise<void> {
  const [{ existing }] = (await sql`select count(*)::int as existing from referrals`) as unknown as [{ existing: number }];
  const patientCount = Math.max(1000, Math.ceil(total / 10));
  await sql`
    insert into patients (id, organization_id, given_name, family_name, birth_date, sex, identifiers, created_by)
    select md5('bench-patient-' || i)::uuid, ${ids.officeId}, 'Bench', 'Patient ' || i, date '1960-01-01' + (i % 15000),
           case when i % 2 = 0 then 'female' else 'male' end,
           jsonb_build_array(jsonb_build_object('system', 'urn:riverside:mrn', 'value', 'BENCH-' || i)), ${ids.physicianId}
    from generate_series(1, ${patientCount}) as i
    on conflict (id) do nothing`;
  for (let start = existing + 1; start <= total; start += chunkSize) {
    const end = Math.min(total, start + chunkSize - 1);
    await sql`
      insert into referrals (organization_id, patient_id, prescriber_id, created_by, status, diagnoses, reason, goals,
        precautions, contraindications, techniques, body_regions, frequency_per_week, duration_weeks, session_minutes,
        visits_authorized, start_date, expires_on, priority, insurance, target_kind, target_therapist_id, target_practice_id,
        accepted_therapist_id, accepted_practice_id, accepted_at, sent_at)
      select ${ids.officeId}, md5('bench-patient-' || (1 + i % ${patientCount}))::uuid, ${ids.physicianId}, ${ids.physicianId},
        case when i % 3 = 0 then 'accepted' else 'sent' end,
        '[{"code":"M54.50","display":"Low back pain, unspecified"}]'::jsonb,
        'Chronic low back pain with lumbar paraspinal trigger points',
        array['Pain at or below 3/10', 'Return to full work duties'], array['No deep pressure over L4-L5'], '',
        array['trigger_point', 'myofascial_release'], array['lower_back'], 2, 6, 60, 12,
        current_date - 30, current_date + 60, 'routine',
        '{"payer":"Acme Health","memberId":"AH123456789","cptCodes":["97124","97140"]}'::jsonb,
        t.kind, t.therapist, t.practice,
        case when i % 3 = 0 then coalesce(t.therapist, ${ids.samId}::uuid) end,
        case when i % 3 = 0 then t.practice end,
        case when i % 3 = 0 then now() end, now()
      from generate_series(${start}::int, ${end}::int) as i
      cross join lateral (
        select case i % 10 when 2 then 'practice' else 'therapist' end as kind,
               case i % 10 when 0 then ${ids.samId}::uuid when 1 then ${ids.joId}::uuid when 2 then null else ${ids.alexId}::uuid end as therapist,
               case when i % 10 <= 2 then ${ids.harborId}::uuid else ${ids.eastsideId}::uuid end as practice
      ) as t`;
  }
  // As a table in steady use would be: vacuumed, analysed, and its pages written out, so that the
  // measured runs do not share the machine with autovacuum and a checkpoint of the seed.
  await sql`vacuum (analyze) referrals, patients`;
  await sql`checkpoint`;
}

/** Accepted referrals of Sam's with room for many visits: the targets of notes and messages. */
export async function seedTreating(sql: Sql, ids: DemoIds, count: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    insert into referrals (organization_id, patient_id, prescriber_id, created_by, status, diagnoses, reason, goals,
      precautions, contraindications, techniques, body_regions, frequency_per_week, duration_weeks, session_minutes,
      visits_authorized, start_date, expires_on, priority, target_kind, target_therapist_id, target_practice_id,
      accepted_therapist_id, accepted_practice_id, accepted_at, sent_at)
    select ${ids.officeId}, md5('bench-patient-' || (1 + i % 1000))::uuid, ${ids.physicianId}, ${ids.physicianId}, 'accepted',
      '[{"code":"G44.209","display":"Tension-type headache"}]'::jsonb, 'Tension headache with cervical trigger points',
      array['Fewer than 2 headaches a week'], array[]::text[], '', array['trigger_point'], array['neck'], 2, 6, 60, 100000,
      current_date - 30, current_date + 60, 'routine', 'therapist', ${ids.samId}, ${ids.harborId}, ${ids.samId}, ${ids.harborId}, now(), now()
    from generate_series(1, ${count}) as i
    returning id`;
  return rows.map((row) => row.id);
}

export async function officeReferralIds(sql: Sql, ids: DemoIds, count: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from referrals where organization_id = ${ids.officeId} order by random() limit ${count}`;
  return rows.map((row) => row.id);
}

/** Positions spread over the whole of Sam's feed, as a client that paged that far would hold. */
export async function samFeedCursors(sql: Sql, ids: DemoIds, count: number): Promise<string[]> {
  const rows = await sql<{ sync_xid: string; id: string }[]>`
    select sync_xid::text, id from referrals
    where status <> 'draft' and (target_therapist_id = ${ids.samId} or target_practice_id = ${ids.harborId} and target_kind = 'practice'
      or accepted_therapist_id = ${ids.samId})
    order by random() limit ${count}`;
  return rows.map((row) => encodeCursor([row.sync_xid, row.id]));
}
