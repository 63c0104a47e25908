// The events feed's bench data: events seeded with set-based SQL into Sam's practice's feed (thin
// payloads about Sam's referrals, as the outbox writes them), and cursors at random depths sealed
// for Sam as the service seals them (it runs with the bench's DATA_ENCRYPTION_KEY).
import type { Sql } from 'postgres';
import { SecretBox } from '../src/lib/secret-box.js';
import { sealCursor } from '../src/modules/webhooks/feed-cursor.js';
import type { DemoIds } from './seed.js';

const chunkSize = 100_000;

/** Adds feed entries for Sam's practice until it holds `total`, in chunks of one transaction each. */
export async function seedFeedEvents(sql: Sql, ids: DemoIds, referralIds: string[], total: number): Promise<void> {
  const [{ existing }] = (await sql`select count(*)::int as existing from event_feed where organization_id = ${ids.harborId}`) as unknown as [{ existing: number }];
  for (let start = existing + 1; start <= total; start += chunkSize) {
    const end = Math.min(total, start + chunkSize - 1);
    await sql`
      with treating as materialized (select ${sql.array(referralIds)}::uuid[] as ids),
      events as (
        insert into webhook_events (type, referral_id, payload)
        select 'message.created', r.id,
          jsonb_build_object('type', 'message.created', 'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'data', jsonb_build_object('resource', 'message', 'id', gen_random_uuid(), 'referralId', r.id, 'status', 'accepted',
              'organizations', jsonb_build_array(${ids.officeId}::text, ${ids.harborId}::text), 'url', '/v1/referrals/' || r.id || '/messages'))
        from generate_series(${start}::int, ${end}::int) as i
        -- The array is cast once (materialized): from the sixth chunk on, PostgreSQL runs the prepared
        -- statement with a generic plan, which cast the 2,000 ids again for every row (0.7 ms a row;
        -- seeding 1,000,000 events took 16 minutes).
        cross join treating
        cross join lateral (select treating.ids[1 + i % ${referralIds.length}] as id) as r
        returning id, referral_id)
      insert into event_feed (organization_id, event_id, referral_id, type)
      select ${ids.harborId}, id, referral_id, 'message.created' from events`;
  }
  await sql`vacuum (analyze) event_feed, webhook_events`;
  await sql`checkpoint`;
}

/** Positions spread over Sam's practice's feed, sealed for Sam. */
export async function feedCursors(sql: Sql, ids: DemoIds, encryptionKey: string, count: number): Promise<string[]> {
  const box = new SecretBox(Buffer.from(encryptionKey, 'base64'));
  const sam = { kind: 'user' as const, id: ids.samId, organizationId: ids.harborId, organizationKind: 'therapy_practice' as const, role: 'therapist' as const, scopes: [] };
  const rows = await sql<{ sync_xid: string; event_id: string }[]>`
    select sync_xid::text, event_id from event_feed tablesample system (10) where organization_id = ${ids.harborId} limit ${count}`;
  const picked = rows.length > 0 ? rows : await sql<{ sync_xid: string; event_id: string }[]>`
    select sync_xid::text, event_id from event_feed where organization_id = ${ids.harborId} order by random() limit ${count}`;
  return picked.map((row) => sealCursor(box, sam, { syncXid: BigInt(row.sync_xid), eventId: row.event_id }));
}

/** A multipart upload of one PDF of `bytes`, as a therapist app would send it. */
export function documentUpload(bytes: number): { body: Buffer; contentType: string } {
  const boundary = '----bench-document-upload';
  const pdf = Buffer.alloc(bytes, 0x20);
  Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1').copy(pdf);
  Buffer.from('\n%%EOF\n').copy(pdf, bytes - 7);
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nimaging\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nLumbar MRI report\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="mri.pdf"\r\nContent-Type: application/pdf\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { body: Buffer.concat([head, pdf, tail]), contentType: `multipart/form-data; boundary=${boundary}` };
}
