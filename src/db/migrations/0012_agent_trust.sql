CREATE TABLE "agent_enrollment_requests" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"endpoint_id" text NOT NULL,
	"key_hash" text NOT NULL,
	"enroll_secret_id" integer,
	"hostname" text NOT NULL,
	"os_family" text NOT NULL,
	"os_name" text DEFAULT '' NOT NULL,
	"os_version" text DEFAULT '' NOT NULL,
	"arch" text DEFAULT '' NOT NULL,
	"agent_version" text,
	"site" text,
	"remote_address" text,
	"state" text DEFAULT 'pending' NOT NULL,
	"active_agent_seen_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"decided_at" timestamp with time zone,
	"decided_by" text
);
--> statement-breakpoint
CREATE TABLE "endpoint_patch_reports" (
	"endpoint_id" text NOT NULL,
	"patch_id" text NOT NULL,
	"title" text NOT NULL,
	"type" text NOT NULL,
	"severity" text NOT NULL,
	"vendor_severity" text,
	"cvss" real,
	"cves" text[] DEFAULT '{}'::text[] NOT NULL,
	"reboot_required" boolean DEFAULT false NOT NULL,
	"superseded_by" text,
	"packages" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"job_id" text,
	"reported_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "endpoint_patch_reports_endpoint_id_patch_id_pk" PRIMARY KEY("endpoint_id","patch_id")
);
--> statement-breakpoint
ALTER TABLE "agent_enrollment_requests" ADD CONSTRAINT "agent_enrollment_requests_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "endpoint_patch_reports" ADD CONSTRAINT "endpoint_patch_reports_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "endpoint_patch_reports" ADD CONSTRAINT "endpoint_patch_reports_patch_id_patches_id_fk" FOREIGN KEY ("patch_id") REFERENCES "public"."patches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "agent_enrollment_requests_key_hash_uq" ON "agent_enrollment_requests" USING btree ("key_hash");--> statement-breakpoint
CREATE INDEX "agent_enrollment_requests_endpoint_state_idx" ON "agent_enrollment_requests" USING btree ("endpoint_id","state");--> statement-breakpoint
CREATE INDEX "endpoint_patch_reports_patch_idx" ON "endpoint_patch_reports" USING btree ("patch_id");--> statement-breakpoint
-- Until now every agent's scan rewrote the shared catalog's packages and successor (last writer wins): none of those
-- values can be trusted, so they are dropped. Endpoints get their packages from their own next scan.
UPDATE "patches" SET "packages" = '[]'::jsonb, "superseded_by" = NULL;
