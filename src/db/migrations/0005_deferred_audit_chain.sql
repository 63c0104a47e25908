CREATE TABLE "audit_pending" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_pending_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor_type" text NOT NULL,
	"actor_id" uuid,
	"actor_organization_id" uuid,
	"actor_role" text,
	"action" text NOT NULL,
	"resource_type" text,
	"resource_id" text,
	"patient_id" uuid,
	"outcome" text NOT NULL,
	"http_status" integer,
	"request_id" text,
	"client_address" text,
	"user_agent" text
);
--> statement-breakpoint
-- Fires as the transaction commits: appends the event to the chain (whose insert trigger takes the
-- head's row lock, held from here to the end of the commit) and removes the waiting row. Should
-- this fail, the commit fails and the change goes with it: nothing lands unaudited.
CREATE FUNCTION audit_pending_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_events ("occurred_at", "actor_type", "actor_id", "actor_organization_id", "actor_role", "action", "resource_type",
    "resource_id", "patient_id", "outcome", "http_status", "request_id", "client_address", "user_agent")
  VALUES (NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.actor_organization_id, NEW.actor_role, NEW.action, NEW.resource_type,
    NEW.resource_id, NEW.patient_id, NEW.outcome, NEW.http_status, NEW.request_id, NEW.client_address, NEW.user_agent);
  DELETE FROM audit_pending WHERE id = NEW.id;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE CONSTRAINT TRIGGER audit_pending_commit AFTER INSERT ON "audit_pending"
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_pending_commit();
