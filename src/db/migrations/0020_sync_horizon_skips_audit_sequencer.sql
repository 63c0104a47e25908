-- The sync horizon (0002, 0012) also leaves out the audit sequencer's transactions. They write only
-- the audit log's tree, checkpoints and webhook events to subscribers, never a row a sync feed
-- reads (referrals, event_feed), so no feed can skip anything of theirs; yet while one ran, every
-- referral committed after it began was held back from the referral feeds (a create, then a read:
-- 7 reads in 426 missed the new referral). The sequencer names its transactions with
-- application_name (modules/audit/audit-sequencer.ts).
CREATE OR REPLACE FUNCTION sync_neighbour_xids() RETURNS text[] LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(array_agg(l.transactionid::text), '{}')
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'transactionid'
    AND l.mode = 'ExclusiveLock'
    AND l.granted
    AND (
      (a.datid IS NOT NULL AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
      OR a.application_name = 'massage-referral-network/audit-sequencer'
    )
$$;
