ALTER TABLE "referrals" ADD COLUMN "sent_at" timestamp with time zone;--> statement-breakpoint
-- A referral is sent when its status first becomes 'sent', whichever way it gets there.
CREATE OR REPLACE FUNCTION referrals_stamp_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.sync_xid := pg_current_xact_id()::text::bigint;
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
  END IF;
  IF NEW.status = 'sent' AND NEW.sent_at IS NULL THEN
    NEW.sent_at := now();
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
-- Referrals sent before this column existed: the time of their first send in their history. The
-- stamp trigger is off meanwhile, so that they neither reappear in sync feeds nor look changed.
ALTER TABLE "referrals" DISABLE TRIGGER referrals_stamp_sync;--> statement-breakpoint
UPDATE "referrals" r SET "sent_at" = e.first_sent
  FROM (SELECT "referral_id", min("occurred_at") AS first_sent FROM "referral_events" WHERE "action" = 'send' GROUP BY "referral_id") e
  WHERE e."referral_id" = r."id";--> statement-breakpoint
UPDATE "referrals" SET "sent_at" = "created_at" WHERE "sent_at" IS NULL AND "status" NOT IN ('draft', 'cancelled');--> statement-breakpoint
ALTER TABLE "referrals" ENABLE TRIGGER referrals_stamp_sync;
