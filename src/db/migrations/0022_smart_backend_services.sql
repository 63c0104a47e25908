CREATE TABLE "client_assertion_jtis" (
	"api_client_id" uuid NOT NULL,
	"jti" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "client_assertion_jtis_api_client_id_jti_pk" PRIMARY KEY("api_client_id","jti")
);
--> statement-breakpoint
ALTER TABLE "api_clients" ALTER COLUMN "secret_hash" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "api_clients" ADD COLUMN "auth_method" text DEFAULT 'client_secret' NOT NULL;--> statement-breakpoint
ALTER TABLE "api_clients" ADD COLUMN "jwks" jsonb;--> statement-breakpoint
ALTER TABLE "api_clients" ADD COLUMN "jwks_url" text;--> statement-breakpoint
ALTER TABLE "client_assertion_jtis" ADD CONSTRAINT "client_assertion_jtis_api_client_id_api_clients_id_fk" FOREIGN KEY ("api_client_id") REFERENCES "public"."api_clients"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "client_assertion_jtis_expires_at_idx" ON "client_assertion_jtis" USING btree ("expires_at");--> statement-breakpoint
ALTER TABLE "api_clients" ADD CONSTRAINT "api_clients_auth_method_check" CHECK ("api_clients"."auth_method" in ('client_secret', 'private_key_jwt'));--> statement-breakpoint
ALTER TABLE "api_clients" ADD CONSTRAINT "api_clients_credentials_check" CHECK (case "api_clients"."auth_method"
        when 'client_secret' then "api_clients"."secret_hash" is not null and "api_clients"."jwks" is null and "api_clients"."jwks_url" is null
        else "api_clients"."secret_hash" is null and ("api_clients"."jwks" is null) <> ("api_clients"."jwks_url" is null) end);