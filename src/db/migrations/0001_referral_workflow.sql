CREATE TABLE "audit_chain_head" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"last_id" bigint NOT NULL,
	"last_hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "idempotency_records" (
	"caller_key" text NOT NULL,
	"key" text NOT NULL,
	"request_hash" text NOT NULL,
	"state" text NOT NULL,
	"status_code" integer,
	"response_headers" jsonb,
	"response_body" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "message_read_markers" (
	"referral_id" uuid NOT NULL,
	"reader_id" uuid NOT NULL,
	"last_read_seq" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "messages_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"referral_id" uuid NOT NULL,
	"author_type" text NOT NULL,
	"author_id" uuid NOT NULL,
	"author_organization_id" uuid NOT NULL,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "progress_report_addenda" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"report_id" uuid NOT NULL,
	"author_id" uuid NOT NULL,
	"text" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "progress_reports" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"referral_id" uuid NOT NULL,
	"visit_number" integer NOT NULL,
	"author_id" uuid NOT NULL,
	"visit_date" date NOT NULL,
	"subjective" text NOT NULL,
	"objective" text NOT NULL,
	"assessment" text NOT NULL,
	"plan" text NOT NULL,
	"pain_before" integer NOT NULL,
	"pain_after" integer NOT NULL,
	"range_of_motion" jsonb NOT NULL,
	"outcome_measures" jsonb NOT NULL,
	"techniques_applied" text[] NOT NULL,
	"minutes" integer NOT NULL,
	"billing" jsonb NOT NULL,
	"final" boolean NOT NULL,
	"signed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "referral_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "referral_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"referral_id" uuid NOT NULL,
	"action" text NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"version" integer NOT NULL,
	"actor_type" text NOT NULL,
	"actor_id" uuid,
	"actor_organization_id" uuid,
	"reason" text,
	"changes" jsonb,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "referral_offers" (
	"referral_id" uuid NOT NULL,
	"therapist_id" uuid NOT NULL,
	"declined_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "referrals" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"organization_id" uuid NOT NULL,
	"patient_id" uuid NOT NULL,
	"prescriber_id" uuid NOT NULL,
	"created_by" uuid NOT NULL,
	"status" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"diagnoses" jsonb NOT NULL,
	"reason" text NOT NULL,
	"goals" text[] NOT NULL,
	"precautions" text[] NOT NULL,
	"contraindications" text NOT NULL,
	"techniques" text[] NOT NULL,
	"body_regions" text[] NOT NULL,
	"frequency_per_week" integer NOT NULL,
	"duration_weeks" integer NOT NULL,
	"session_minutes" integer NOT NULL,
	"visits_authorized" integer NOT NULL,
	"start_date" date NOT NULL,
	"expires_on" date NOT NULL,
	"priority" text NOT NULL,
	"insurance" jsonb,
	"target_kind" text NOT NULL,
	"target_therapist_id" uuid,
	"target_practice_id" uuid,
	"network_offer" jsonb,
	"accepted_therapist_id" uuid,
	"accepted_practice_id" uuid,
	"accepted_at" timestamp with time zone,
	"visits_used" integer DEFAULT 0 NOT NULL,
	"first_pain" jsonb,
	"latest_pain" jsonb,
	"latest_outcomes" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sync_xid" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "referrals_version_check" CHECK ("referrals"."version" >= 1),
	CONSTRAINT "referrals_visits_check" CHECK ("referrals"."visits_used" between 0 and "referrals"."visits_authorized"),
	CONSTRAINT "referrals_dates_check" CHECK ("referrals"."expires_on" > "referrals"."start_date")
);
--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "id" DROP IDENTITY;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "id" SET DEFAULT 0;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "prev_hash" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "hash" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "message_read_markers" ADD CONSTRAINT "message_read_markers_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "progress_report_addenda" ADD CONSTRAINT "progress_report_addenda_report_id_progress_reports_id_fk" FOREIGN KEY ("report_id") REFERENCES "public"."progress_reports"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "progress_report_addenda" ADD CONSTRAINT "progress_report_addenda_author_id_users_id_fk" FOREIGN KEY ("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "progress_reports" ADD CONSTRAINT "progress_reports_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "progress_reports" ADD CONSTRAINT "progress_reports_author_id_users_id_fk" FOREIGN KEY ("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referral_events" ADD CONSTRAINT "referral_events_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referral_offers" ADD CONSTRAINT "referral_offers_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referral_offers" ADD CONSTRAINT "referral_offers_therapist_id_users_id_fk" FOREIGN KEY ("therapist_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_patient_id_patients_id_fk" FOREIGN KEY ("patient_id") REFERENCES "public"."patients"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_prescriber_id_users_id_fk" FOREIGN KEY ("prescriber_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_target_therapist_id_users_id_fk" FOREIGN KEY ("target_therapist_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_target_practice_id_organizations_id_fk" FOREIGN KEY ("target_practice_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_accepted_therapist_id_users_id_fk" FOREIGN KEY ("accepted_therapist_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_accepted_practice_id_organizations_id_fk" FOREIGN KEY ("accepted_practice_id") REFERENCES "public"."organizations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "idempotency_records_key" ON "idempotency_records" USING btree ("caller_key","key");--> statement-breakpoint
CREATE INDEX "idempotency_records_created_at_idx" ON "idempotency_records" USING btree ("created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "message_read_markers_key" ON "message_read_markers" USING btree ("referral_id","reader_id");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_referral_seq_idx" ON "messages" USING btree ("referral_id","seq");--> statement-breakpoint
CREATE INDEX "progress_report_addenda_report_idx" ON "progress_report_addenda" USING btree ("report_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "progress_reports_visit_key" ON "progress_reports" USING btree ("referral_id","visit_number");--> statement-breakpoint
CREATE INDEX "referral_events_referral_idx" ON "referral_events" USING btree ("referral_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "referral_offers_pkey_idx" ON "referral_offers" USING btree ("referral_id","therapist_id");--> statement-breakpoint
CREATE INDEX "referral_offers_therapist_idx" ON "referral_offers" USING btree ("therapist_id","referral_id");--> statement-breakpoint
CREATE INDEX "referrals_organization_sync_idx" ON "referrals" USING btree ("organization_id","sync_xid","id");--> statement-breakpoint
CREATE INDEX "referrals_target_therapist_sync_idx" ON "referrals" USING btree ("target_therapist_id","sync_xid","id");--> statement-breakpoint
CREATE INDEX "referrals_target_practice_sync_idx" ON "referrals" USING btree ("target_practice_id","sync_xid","id");--> statement-breakpoint
CREATE INDEX "referrals_accepted_therapist_sync_idx" ON "referrals" USING btree ("accepted_therapist_id","sync_xid","id");--> statement-breakpoint
CREATE INDEX "referrals_accepted_practice_sync_idx" ON "referrals" USING btree ("accepted_practice_id","sync_xid","id");--> statement-breakpoint
CREATE INDEX "referrals_patient_idx" ON "referrals" USING btree ("patient_id");--> statement-breakpoint
CREATE INDEX "referrals_open_expiry_idx" ON "referrals" USING btree ("expires_on") WHERE "referrals"."status" in ('sent', 'accepted', 'in_progress');--> statement-breakpoint
CREATE INDEX "audit_events_occurred_at_idx" ON "audit_events" USING btree ("occurred_at");--> statement-breakpoint
-- Hand-written below: what drizzle-kit cannot express (triggers and functions).
-- Rows that must never change once written refuse updates, deletes and truncation.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: rows are never updated or deleted', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;--> statement-breakpoint
-- The hash of one audit event: every column and the previous hash, each quoted so that no two
-- different rows can render the same text.
CREATE FUNCTION audit_event_hash(e audit_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(concat_ws('|',
    quote_nullable(e.prev_hash), quote_nullable(e.id), quote_nullable((extract(epoch FROM e.occurred_at) * 1000000)::bigint),
    quote_nullable(e.actor_type), quote_nullable(e.actor_id), quote_nullable(e.actor_organization_id), quote_nullable(e.actor_role),
    quote_nullable(e.action), quote_nullable(e.resource_type), quote_nullable(e.resource_id), quote_nullable(e.patient_id),
    quote_nullable(e.outcome), quote_nullable(e.http_status), quote_nullable(e.request_id), quote_nullable(e.client_address),
    quote_nullable(e.user_agent)), 'UTF8')), 'hex')
$$;--> statement-breakpoint
-- Links each new event to the last one. The head row's lock is held until commit, so concurrent
-- writers take turns and ids come out gapless in chain order; a rolled-back writer releases its
-- id with its lock.
CREATE FUNCTION audit_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head audit_chain_head%ROWTYPE;
BEGIN
  SELECT * INTO head FROM audit_chain_head WHERE singleton FOR UPDATE;
  NEW.id := head.last_id + 1;
  NEW.prev_hash := head.last_hash;
  NEW.hash := audit_event_hash(NEW);
  UPDATE audit_chain_head SET last_id = NEW.id, last_hash = NEW.hash WHERE singleton;
  RETURN NEW;
END $$;--> statement-breakpoint
INSERT INTO "audit_chain_head" ("singleton", "last_id", "last_hash") VALUES (true, 0, '');--> statement-breakpoint
CREATE TEMP TABLE legacy_audit_events AS SELECT * FROM "audit_events";--> statement-breakpoint
DELETE FROM "audit_events";--> statement-breakpoint
CREATE TRIGGER audit_events_chain BEFORE INSERT ON "audit_events" FOR EACH ROW EXECUTE FUNCTION audit_events_chain();--> statement-breakpoint
INSERT INTO "audit_events" ("occurred_at", "actor_type", "actor_id", "actor_organization_id", "actor_role", "action", "resource_type", "resource_id", "patient_id", "outcome", "http_status", "request_id", "client_address", "user_agent")
  SELECT "occurred_at", "actor_type", "actor_id", "actor_organization_id", "actor_role", "action", "resource_type", "resource_id", "patient_id", "outcome", "http_status", "request_id", "client_address", "user_agent"
  FROM legacy_audit_events ORDER BY "id";--> statement-breakpoint
DROP TABLE legacy_audit_events;--> statement-breakpoint
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "audit_events" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON "audit_events" FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE OR TRUNCATE ON "audit_chain_head" FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER referral_events_append_only BEFORE UPDATE OR DELETE ON "referral_events" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER progress_reports_signed BEFORE UPDATE OR DELETE ON "progress_reports" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER progress_report_addenda_signed BEFORE UPDATE OR DELETE ON "progress_report_addenda" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER messages_append_only BEFORE UPDATE OR DELETE ON "messages" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
-- Stamps the writing transaction's id on every insert and update of a referral: the sync feed
-- (GET /v1/referrals) orders by it and withholds rows newer than the oldest running transaction,
-- so a poller never steps past a change that commits late.
CREATE FUNCTION referrals_stamp_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.sync_xid := pg_current_xact_id()::text::bigint;
  IF TG_OP = 'UPDATE' THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER referrals_stamp_sync BEFORE INSERT OR UPDATE ON "referrals" FOR EACH ROW EXECUTE FUNCTION referrals_stamp_sync();
