CREATE INDEX "referrals_open_network_sync_idx" ON "referrals" USING btree ("sync_xid","id") WHERE "referrals"."target_kind" = 'network' and "referrals"."status" = 'sent';--> statement-breakpoint
CREATE INDEX "referrals_practice_target_sync_idx" ON "referrals" USING btree ("target_practice_id","sync_xid","id") WHERE "referrals"."target_kind" = 'practice';--> statement-breakpoint
CREATE INDEX "referrals_therapist_beyond_target_sync_idx" ON "referrals" USING btree ("accepted_therapist_id","sync_xid","id") WHERE "referrals"."target_therapist_id" is distinct from "referrals"."accepted_therapist_id" and ("referrals"."target_kind" <> 'practice' or "referrals"."target_practice_id" is distinct from "referrals"."accepted_practice_id");--> statement-breakpoint
CREATE INDEX "referrals_practice_beyond_target_sync_idx" ON "referrals" USING btree ("accepted_practice_id","sync_xid","id") WHERE "referrals"."target_practice_id" is distinct from "referrals"."accepted_practice_id";--> statement-breakpoint
-- The sync horizon, cheaper: plpgsql keeps its plans (a SQL function with a CTE is planned at every
-- call), pg_locks and pg_stat_activity are read once per call rather than once per running
-- transaction, and not at all when none is running.
CREATE OR REPLACE FUNCTION referral_sync_horizon() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
  snapshot pg_snapshot := pg_current_snapshot();
  horizon bigint;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_snapshot_xip(snapshot)) THEN
    RETURN pg_snapshot_xmax(snapshot)::text::bigint;
  END IF;
  WITH foreign_xids AS MATERIALIZED (
    SELECT l.transactionid::text AS xid
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'transactionid'
      AND a.datid IS NOT NULL
      AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
  )
  SELECT min(running.xid::text::bigint) INTO horizon
  FROM pg_snapshot_xip(snapshot) AS running(xid)
  WHERE NOT EXISTS (SELECT FROM foreign_xids f WHERE f.xid = (running.xid::text::bigint % 4294967296)::text);
  RETURN coalesce(horizon, pg_snapshot_xmax(snapshot)::text::bigint);
END $$;
--> statement-breakpoint
-- The audit chain, linked as before but with the head read once per transaction (its row lock is
-- held from then to the commit, so nobody else can move it) and written once per statement: a
-- page of fifty read events no longer updates the head row fifty times.
CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_id bigint;
  last_hash text;
BEGIN
  IF current_setting('audit_chain.xid', true) IS DISTINCT FROM pg_current_xact_id()::text THEN
    SELECT h.last_id, h.last_hash INTO last_id, last_hash FROM audit_chain_head h WHERE singleton FOR UPDATE;
    PERFORM set_config('audit_chain.xid', pg_current_xact_id()::text, true);
  ELSE
    last_id := current_setting('audit_chain.last_id')::bigint;
    last_hash := current_setting('audit_chain.last_hash');
  END IF;
  NEW.id := last_id + 1;
  NEW.prev_hash := last_hash;
  NEW.hash := audit_event_hash(NEW);
  PERFORM set_config('audit_chain.last_id', NEW.id::text, true);
  PERFORM set_config('audit_chain.last_hash', NEW.hash, true);
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE FUNCTION audit_events_chain_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('audit_chain.xid', true) IS NOT DISTINCT FROM pg_current_xact_id_if_assigned()::text THEN
    UPDATE audit_chain_head
    SET last_id = current_setting('audit_chain.last_id')::bigint, last_hash = current_setting('audit_chain.last_hash')
    WHERE singleton;
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER audit_events_chain_head AFTER INSERT ON "audit_events" FOR EACH STATEMENT EXECUTE FUNCTION audit_events_chain_head();
