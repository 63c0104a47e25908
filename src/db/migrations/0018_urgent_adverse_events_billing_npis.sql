CREATE TABLE "adverse_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"referral_id" uuid NOT NULL,
	"occurred_on" date NOT NULL,
	"description" text NOT NULL,
	"severity" text NOT NULL,
	"action_taken" text NOT NULL,
	"treatment_paused" boolean NOT NULL,
	"reporter_type" text NOT NULL,
	"reported_by" uuid NOT NULL,
	"reporter_organization_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" uuid,
	"escalated_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "organizations" DROP CONSTRAINT "organizations_npi_office_check";--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "priority" text DEFAULT 'routine' NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "acknowledged_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "acknowledged_by" uuid;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "escalated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "hold_since" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "hold_adverse_event_id" uuid;--> statement-breakpoint
ALTER TABLE "adverse_events" ADD CONSTRAINT "adverse_events_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "adverse_events_referral_idx" ON "adverse_events" USING btree ("referral_id","created_at","id");--> statement-breakpoint
CREATE INDEX "adverse_events_unacknowledged_idx" ON "adverse_events" USING btree ("created_at") WHERE "adverse_events"."acknowledged_at" is null and "adverse_events"."escalated_at" is null;--> statement-breakpoint
CREATE INDEX "messages_urgent_unacknowledged_idx" ON "messages" USING btree ("created_at") WHERE "messages"."priority" = 'urgent' and "messages"."acknowledged_at" is null and "messages"."escalated_at" is null;--> statement-breakpoint
-- Reported, acknowledged or escalated, an adverse event is news in the referral's thread (0017).
CREATE TRIGGER adverse_events_touch_referral AFTER INSERT OR UPDATE ON adverse_events FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER messages_acknowledged_touch_referral AFTER UPDATE OF acknowledged_at ON messages FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();
--> statement-breakpoint
-- Messages still never change (0001); what an urgent one gains is its acknowledgement and its
-- escalation, each set once.
DROP TRIGGER messages_append_only ON messages;--> statement-breakpoint
CREATE FUNCTION messages_flags_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND (to_jsonb(NEW) - 'acknowledged_at' - 'acknowledged_by' - 'escalated_at') = (to_jsonb(OLD) - 'acknowledged_at' - 'acknowledged_by' - 'escalated_at')
     AND (OLD.acknowledged_at IS NULL OR NEW.acknowledged_at IS NOT DISTINCT FROM OLD.acknowledged_at)
     AND (OLD.escalated_at IS NULL OR NEW.escalated_at IS NOT DISTINCT FROM OLD.escalated_at) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'messages never change; only an acknowledgement or escalation is recorded, once' USING ERRCODE = 'insufficient_privilege';
END $$;
--> statement-breakpoint
CREATE TRIGGER messages_append_only BEFORE UPDATE OR DELETE ON messages FOR EACH ROW EXECUTE FUNCTION messages_flags_only();
