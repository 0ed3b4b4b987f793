CREATE TABLE "endpoint_site_changes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"endpoint_id" text NOT NULL,
	"site" text,
	"changed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "distribution_points" ADD COLUMN "token_hash" text;--> statement-breakpoint
CREATE INDEX "endpoint_site_changes_changed_at_idx" ON "endpoint_site_changes" USING btree ("changed_at");--> statement-breakpoint
CREATE UNIQUE INDEX "distribution_points_token_hash_uq" ON "distribution_points" USING btree ("token_hash");