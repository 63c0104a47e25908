CREATE TABLE "renewal_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"referral_id" uuid NOT NULL,
	"requested_by" uuid NOT NULL,
	"additional_visits" integer NOT NULL,
	"extend_weeks" integer NOT NULL,
	"justification" text NOT NULL,
	"report_id" uuid,
	"status" text DEFAULT 'pending' NOT NULL,
	"decided_by" uuid,
	"decided_at" timestamp with time zone,
	"approved_visits" integer,
	"approved_weeks" integer,
	"decision_reason" text,
	"attestation" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "continues_referral_id" uuid;--> statement-breakpoint
ALTER TABLE "referrals" ADD COLUMN "continued_by_referral_id" uuid;--> statement-breakpoint
ALTER TABLE "renewal_requests" ADD CONSTRAINT "renewal_requests_referral_id_referrals_id_fk" FOREIGN KEY ("referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "renewal_requests" ADD CONSTRAINT "renewal_requests_requested_by_users_id_fk" FOREIGN KEY ("requested_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "renewal_requests" ADD CONSTRAINT "renewal_requests_report_id_clinical_reports_id_fk" FOREIGN KEY ("report_id") REFERENCES "public"."clinical_reports"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "renewal_requests" ADD CONSTRAINT "renewal_requests_decided_by_users_id_fk" FOREIGN KEY ("decided_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "renewal_requests_one_pending" ON "renewal_requests" USING btree ("referral_id") WHERE "renewal_requests"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "renewal_requests_referral_idx" ON "renewal_requests" USING btree ("referral_id","created_at","id");--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_continues_referral_id_referrals_id_fk" FOREIGN KEY ("continues_referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "referrals" ADD CONSTRAINT "referrals_continued_by_referral_id_referrals_id_fk" FOREIGN KEY ("continued_by_referral_id") REFERENCES "public"."referrals"("id") ON DELETE no action ON UPDATE no action;