CREATE TABLE "clinical_report_signatures" (
	"report_id" uuid PRIMARY KEY NOT NULL,
	"signed_by" uuid NOT NULL,
	"method" text NOT NULL,
	"attestation" text NOT NULL,
	"comment" text,
	"signed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "clinical_reports" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"referral_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"author_id" uuid NOT NULL,
	"summary" text NOT NULL,
	"goals" jsonb NOT NULL,
	"recommendation" text NOT NULL,
	"findings" jsonb,
	"baseline" jsonb,
	"planned_frequency_per_week" integer,
	"planned_duration_weeks" integer,
	"techniques" text[],
	"discharge_reason" text,
	"facts" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "report_every_visits" integer DEFAULT 10 NOT NULL;--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "last_reported_visit" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "clinical_report_signatures" ADD CONSTRAINT "clinical_report_signatures_report_id_clinical_reports_id_fk" FOREIGN KEY ("report_id") REFERENCES "public"."clinical_reports"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "clinical_report_signatures" ADD CONSTRAINT "clinical_report_signatures_signed_by_users_id_fk" FOREIGN KEY ("signed_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "clinical_reports" ADD CONSTRAINT "clinical_reports_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "clinical_reports" ADD CONSTRAINT "clinical_reports_author_id_users_id_fk" FOREIGN KEY ("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "clinical_reports_referral_idx" ON "clinical_reports" USING btree ("referral_id","created_at","id");--> statement-breakpoint
-- Reports and their signatures never change once written (SPEC §14.3: corrections are new reports).
CREATE TRIGGER clinical_reports_written_once BEFORE UPDATE OR DELETE ON "clinical_reports" FOR EACH ROW EXECUTE FUNCTION refuse_change();--> statement-breakpoint
CREATE TRIGGER clinical_report_signatures_written_once BEFORE UPDATE OR DELETE ON "clinical_report_signatures" FOR EACH ROW EXECUTE FUNCTION refuse_change();
