ALTER TABLE "idempotency_records" ADD COLUMN "request_id" text;--> statement-breakpoint
CREATE INDEX "audit_events_request_id_idx" ON "audit_events" USING btree ("request_id");