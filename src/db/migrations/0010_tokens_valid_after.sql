ALTER TABLE "users" ADD COLUMN "tokens_valid_after" timestamp with time zone;--> statement-breakpoint
-- Whatever path deactivates an account or changes its password, the access tokens issued before
-- it stay dead: a reactivation later does not bring them back.
CREATE OR REPLACE FUNCTION users_stamp_tokens_valid_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (OLD.active AND NOT NEW.active) OR NEW.password_hash IS DISTINCT FROM OLD.password_hash THEN
    NEW.tokens_valid_after := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER users_stamp_tokens_valid_after BEFORE UPDATE ON "users"
  FOR EACH ROW EXECUTE FUNCTION users_stamp_tokens_valid_after();
