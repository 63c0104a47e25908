ALTER TABLE "referrals" ADD COLUMN "task_id" uuid DEFAULT gen_random_uuid() NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "referrals_task_id_idx" ON "referrals" USING btree ("task_id");