-- The sync horizon (0002, 0006) leaves out the running transactions of other databases on the
-- server, since every snapshot lists them. It read pg_locks inside the feed's own statement, after
-- that statement's snapshot was taken: a neighbour's transaction that ended in between was still in
-- the snapshot but no longer in pg_locks, so it counted as ours and held the horizon back, and a
-- referral one read had shown was missing from the next (10 reads in 472 while a neighbour database
-- was busy). The neighbours' transactions are now read by a statement of their own that ends before
-- the feed's begins. A transaction in the feed's snapshot that began before that read is in it, so
-- it is told apart exactly; one that began after it is held back as if ours, which only delays.
-- Only a transaction's lock on its own id counts (ExclusiveLock, granted): a neighbour waiting for
-- one of ours on a shared catalog must not make ours look foreign.
CREATE FUNCTION sync_neighbour_xids() RETURNS text[] LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(array_agg(l.transactionid::text), '{}')
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'transactionid'
    AND l.mode = 'ExclusiveLock'
    AND l.granted
    AND a.datid IS NOT NULL
    AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
$$;
--> statement-breakpoint
-- Older than every transaction of this database running in the caller's snapshot: STABLE, so it
-- sees the snapshot of the statement that calls it. neighbour_xids comes from sync_neighbour_xids(),
-- called by an earlier statement.
CREATE FUNCTION sync_horizon(neighbour_xids text[]) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
  snapshot pg_snapshot := pg_current_snapshot();
  horizon bigint;
BEGIN
  SELECT min(running.xid::text::bigint) INTO horizon
  FROM pg_snapshot_xip(snapshot) AS running(xid)
  WHERE NOT ((running.xid::text::bigint % 4294967296)::text = ANY (neighbour_xids));
  RETURN coalesce(horizon, pg_snapshot_xmax(snapshot)::text::bigint);
END $$;
--> statement-breakpoint
DROP FUNCTION referral_sync_horizon();
