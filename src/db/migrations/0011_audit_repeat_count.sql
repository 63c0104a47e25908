ALTER TABLE "audit_events" ADD COLUMN "repeat_count" integer;--> statement-breakpoint
-- The count joins the hash only when present (concat_ws skips NULLs), so every event hashed
-- before the column existed still verifies.
CREATE OR REPLACE FUNCTION audit_event_hash(e audit_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(concat_ws('|',
    quote_nullable(e.prev_hash), quote_nullable(e.id), quote_nullable((extract(epoch FROM e.occurred_at) * 1000000)::bigint),
    quote_nullable(e.actor_type), quote_nullable(e.actor_id), quote_nullable(e.actor_organization_id), quote_nullable(e.actor_role),
    quote_nullable(e.action), quote_nullable(e.resource_type), quote_nullable(e.resource_id), quote_nullable(e.patient_id),
    quote_nullable(e.outcome), quote_nullable(e.http_status), quote_nullable(e.request_id), quote_nullable(e.client_address),
    quote_nullable(e.user_agent), CASE WHEN e.repeat_count IS NOT NULL THEN 'repeat=' || e.repeat_count END), 'UTF8')), 'hex')
$$;
