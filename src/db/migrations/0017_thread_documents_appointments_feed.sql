CREATE TABLE "appointments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"referral_id" uuid NOT NULL,
	"starts_at" timestamp with time zone NOT NULL,
	"minutes" integer NOT NULL,
	"status" text DEFAULT 'scheduled' NOT NULL,
	"created_by" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "appointments_minutes_check" CHECK ("appointments"."minutes" between 5 and 480)
);
--> statement-breakpoint
CREATE TABLE "document_chunks" (
	"upload_id" uuid NOT NULL,
	"part" integer NOT NULL,
	"bytes" bytea NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "documents" (
	"id" uuid PRIMARY KEY NOT NULL,
	"referral_id" uuid NOT NULL,
	"category" text NOT NULL,
	"title" text NOT NULL,
	"content_type" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"sha256" text NOT NULL,
	"uploader_type" text NOT NULL,
	"uploaded_by" uuid NOT NULL,
	"uploader_organization_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retracted_at" timestamp with time zone,
	"retracted_by" uuid,
	"retraction_reason" text,
	CONSTRAINT "documents_size_check" CHECK ("documents"."size_bytes" >= 0)
);
--> statement-breakpoint
CREATE TABLE "event_feed" (
	"organization_id" uuid NOT NULL,
	"sync_xid" bigint DEFAULT (pg_current_xact_id()::text::bigint) NOT NULL,
	"event_id" uuid NOT NULL,
	"referral_id" uuid,
	"type" text NOT NULL,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "scheduling_alerts" (
	"referral_id" uuid PRIMARY KEY NOT NULL,
	"sent_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "activity_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "appointments" ADD CONSTRAINT "appointments_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "documents" ADD CONSTRAINT "documents_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "documents" ADD CONSTRAINT "documents_uploader_organization_id_organizations_id_fk" FOREIGN KEY ("uploader_organization_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "event_feed" ADD CONSTRAINT "event_feed_event_id_webhook_events_id_fk" FOREIGN KEY ("event_id") REFERENCES "public"."webhook_events"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "scheduling_alerts" ADD CONSTRAINT "scheduling_alerts_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "appointments_referral_idx" ON "appointments" USING btree ("referral_id","starts_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "document_chunks_key" ON "document_chunks" USING btree ("upload_id","part");--> statement-breakpoint
CREATE INDEX "document_chunks_created_idx" ON "document_chunks" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "documents_referral_idx" ON "documents" USING btree ("referral_id","created_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "event_feed_key" ON "event_feed" USING btree ("organization_id","sync_xid","event_id");--> statement-breakpoint
CREATE INDEX "event_feed_occurred_idx" ON "event_feed" USING btree ("occurred_at");--> statement-breakpoint
-- A referral's updated_at and sync position move when anything happens in its thread (SPEC §14.7),
-- so that apps syncing with updatedSince or the sync cursor never miss a new message, note,
-- addendum, report, signature, renewal request, document or appointment. Done here rather than by
-- each module, so that no writer can forget it; skipped when the transaction already touched it.
CREATE FUNCTION touch_referral_activity(referral uuid) RETURNS void LANGUAGE sql AS $$
  UPDATE referrals SET activity_at = now(), updated_at = now()
  WHERE id = referral AND activity_at IS DISTINCT FROM now()
$$;
--> statement-breakpoint
CREATE FUNCTION touch_referral_of_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM touch_referral_activity(NEW.referral_id);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION touch_referral_of_visit_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM touch_referral_activity((SELECT referral_id FROM progress_reports WHERE id = NEW.report_id));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION touch_referral_of_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM touch_referral_activity((SELECT referral_id FROM clinical_reports WHERE id = NEW.report_id));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER messages_touch_referral AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER progress_reports_touch_referral AFTER INSERT ON progress_reports FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER clinical_reports_touch_referral AFTER INSERT ON clinical_reports FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER renewal_requests_touch_referral AFTER INSERT OR UPDATE ON renewal_requests FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER documents_touch_referral AFTER INSERT OR UPDATE ON documents FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER appointments_touch_referral AFTER INSERT OR UPDATE ON appointments FOR EACH ROW EXECUTE FUNCTION touch_referral_of_row();--> statement-breakpoint
CREATE TRIGGER progress_report_addenda_touch_referral AFTER INSERT ON progress_report_addenda FOR EACH ROW EXECUTE FUNCTION touch_referral_of_visit_note();--> statement-breakpoint
CREATE TRIGGER clinical_report_signatures_touch_referral AFTER INSERT ON clinical_report_signatures FOR EACH ROW EXECUTE FUNCTION touch_referral_of_report();--> statement-breakpoint
-- A document never changes once written; the one update allowed is its retraction, once.
CREATE FUNCTION documents_retract_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.retracted_at IS NULL AND NEW.retracted_at IS NOT NULL
     AND (to_jsonb(NEW) - 'retracted_at' - 'retracted_by' - 'retraction_reason') = (to_jsonb(OLD) - 'retracted_at' - 'retracted_by' - 'retraction_reason') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'documents never change; only a retraction is recorded, once' USING ERRCODE = 'insufficient_privilege';
END $$;
--> statement-breakpoint
CREATE TRIGGER documents_written_once BEFORE UPDATE OR DELETE ON documents FOR EACH ROW EXECUTE FUNCTION documents_retract_only();
