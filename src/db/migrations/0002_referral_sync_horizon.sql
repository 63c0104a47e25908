-- The sync feed's horizon: rows stamped with a transaction id below it can no longer be joined by
-- an earlier-numbered change of this database. It is the oldest transaction still in progress in
-- the current snapshot, ignoring only transactions positively known to run in another database
-- of the cluster (transaction ids are cluster-wide; a busy neighbour must not stall this feed).
-- A transaction that cannot be placed counts as ours, which can delay a row but never skip one.
CREATE FUNCTION referral_sync_horizon() RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT coalesce(min(running.xid::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
  FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
  WHERE NOT EXISTS (
    SELECT 1
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'transactionid'
      AND l.transactionid::text = (running.xid::text::bigint % 4294967296)::text
      AND a.datid IS NOT NULL
      AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
  )
$$;
