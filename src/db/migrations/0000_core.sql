CREATE TABLE "agent_jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"cycle_id" text,
	"wave" integer,
	"endpoint_id" text NOT NULL,
	"kind" text NOT NULL,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"state" text DEFAULT 'queued' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"lease_expires_at" timestamp with time zone,
	"not_before" timestamp with time zone,
	"deadline" timestamp with time zone,
	"result" jsonb,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp (3) with time zone NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"subject_type" text NOT NULL,
	"subject_id" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cycle_approvals" (
	"id" serial PRIMARY KEY NOT NULL,
	"cycle_id" text NOT NULL,
	"identity" text NOT NULL,
	"decision" text NOT NULL,
	"reason" text,
	"channel" text NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cycle_stage_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"cycle_id" text NOT NULL,
	"stage" text NOT NULL,
	"detail" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "deployment_policies" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"definition" jsonb NOT NULL,
	"created_by" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "endpoint_groups" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"criticality" integer DEFAULT 2 NOT NULL,
	"exposure" text DEFAULT 'internal' NOT NULL,
	"is_test_group" boolean DEFAULT false NOT NULL,
	"maintenance_window_id" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "endpoint_groups_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "endpoint_patches" (
	"endpoint_id" text NOT NULL,
	"patch_id" text NOT NULL,
	"state" text NOT NULL,
	"detected_at" timestamp with time zone DEFAULT now() NOT NULL,
	"installed_at" timestamp with time zone,
	"last_error" text,
	"last_job_id" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "endpoint_patches_endpoint_id_patch_id_pk" PRIMARY KEY("endpoint_id","patch_id")
);
--> statement-breakpoint
CREATE TABLE "endpoints" (
	"id" text PRIMARY KEY NOT NULL,
	"machine_id" text NOT NULL,
	"hostname" text NOT NULL,
	"os_family" text NOT NULL,
	"os_name" text DEFAULT '' NOT NULL,
	"os_version" text DEFAULT '' NOT NULL,
	"arch" text DEFAULT '' NOT NULL,
	"criticality" integer DEFAULT 2 NOT NULL,
	"exposure" text DEFAULT 'internal' NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"pending_reboot" boolean DEFAULT false NOT NULL,
	"agent_version" text,
	"last_seen_at" timestamp with time zone,
	"last_scan_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "group_members" (
	"group_id" integer NOT NULL,
	"endpoint_id" text NOT NULL,
	CONSTRAINT "group_members_group_id_endpoint_id_pk" PRIMARY KEY("group_id","endpoint_id")
);
--> statement-breakpoint
CREATE TABLE "maintenance_windows" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"rrule" text NOT NULL,
	"timezone" text NOT NULL,
	"duration_minutes" integer NOT NULL,
	"blackout_dates" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "maintenance_windows_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "patch_cycles" (
	"id" text PRIMARY KEY NOT NULL,
	"workflow_id" text NOT NULL,
	"policy_name" text NOT NULL,
	"policy_version" integer NOT NULL,
	"scope" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"stage" text NOT NULL,
	"emergency" boolean DEFAULT false NOT NULL,
	"requested_by" text NOT NULL,
	"change_number" text,
	"reason" text,
	"summary" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "patch_exceptions" (
	"id" serial PRIMARY KEY NOT NULL,
	"code" text NOT NULL,
	"patch_id" text,
	"endpoint_id" text,
	"group_name" text,
	"reason" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"removed_at" timestamp with time zone,
	"removed_by" text,
	CONSTRAINT "patch_exceptions_code_unique" UNIQUE("code")
);
--> statement-breakpoint
CREATE TABLE "patches" (
	"id" text PRIMARY KEY NOT NULL,
	"title" text NOT NULL,
	"vendor" text NOT NULL,
	"product" text DEFAULT '' NOT NULL,
	"type" text NOT NULL,
	"severity" text NOT NULL,
	"vendor_severity" text,
	"cvss" real,
	"cves" text[] DEFAULT '{}'::text[] NOT NULL,
	"known_exploited" boolean DEFAULT false NOT NULL,
	"os_family" text NOT NULL,
	"reboot_required" boolean DEFAULT false NOT NULL,
	"superseded_by" text,
	"packages" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"released_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "software_inventory" (
	"endpoint_id" text NOT NULL,
	"source" text NOT NULL,
	"name" text NOT NULL,
	"version" text NOT NULL,
	"vendor" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "software_inventory_endpoint_id_source_name_pk" PRIMARY KEY("endpoint_id","source","name")
);
--> statement-breakpoint
ALTER TABLE "agent_jobs" ADD CONSTRAINT "agent_jobs_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "cycle_approvals" ADD CONSTRAINT "cycle_approvals_cycle_id_patch_cycles_id_fk" FOREIGN KEY ("cycle_id") REFERENCES "public"."patch_cycles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "cycle_stage_events" ADD CONSTRAINT "cycle_stage_events_cycle_id_patch_cycles_id_fk" FOREIGN KEY ("cycle_id") REFERENCES "public"."patch_cycles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "endpoint_groups" ADD CONSTRAINT "endpoint_groups_maintenance_window_id_maintenance_windows_id_fk" FOREIGN KEY ("maintenance_window_id") REFERENCES "public"."maintenance_windows"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "endpoint_patches" ADD CONSTRAINT "endpoint_patches_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "endpoint_patches" ADD CONSTRAINT "endpoint_patches_patch_id_patches_id_fk" FOREIGN KEY ("patch_id") REFERENCES "public"."patches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "group_members" ADD CONSTRAINT "group_members_group_id_endpoint_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."endpoint_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "group_members" ADD CONSTRAINT "group_members_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "software_inventory" ADD CONSTRAINT "software_inventory_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_jobs_endpoint_state_idx" ON "agent_jobs" USING btree ("endpoint_id","state");--> statement-breakpoint
CREATE INDEX "agent_jobs_cycle_wave_state_idx" ON "agent_jobs" USING btree ("cycle_id","wave","state");--> statement-breakpoint
CREATE INDEX "audit_log_subject_idx" ON "audit_log" USING btree ("subject_type","subject_id");--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE UNIQUE INDEX "cycle_approvals_cycle_identity_uq" ON "cycle_approvals" USING btree ("cycle_id","identity");--> statement-breakpoint
CREATE INDEX "cycle_stage_events_cycle_idx" ON "cycle_stage_events" USING btree ("cycle_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_policies_name_version_uq" ON "deployment_policies" USING btree ("name","version");--> statement-breakpoint
CREATE INDEX "endpoint_patches_patch_state_idx" ON "endpoint_patches" USING btree ("patch_id","state");--> statement-breakpoint
CREATE UNIQUE INDEX "endpoints_machine_id_uq" ON "endpoints" USING btree ("machine_id");--> statement-breakpoint
CREATE INDEX "endpoints_hostname_idx" ON "endpoints" USING btree ("hostname");--> statement-breakpoint
CREATE INDEX "endpoints_os_family_idx" ON "endpoints" USING btree ("os_family");--> statement-breakpoint
CREATE INDEX "group_members_endpoint_idx" ON "group_members" USING btree ("endpoint_id");--> statement-breakpoint
CREATE INDEX "patch_cycles_stage_idx" ON "patch_cycles" USING btree ("stage");--> statement-breakpoint
CREATE INDEX "patch_cycles_created_idx" ON "patch_cycles" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "patch_exceptions_active_idx" ON "patch_exceptions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "patches_severity_idx" ON "patches" USING btree ("severity");--> statement-breakpoint
CREATE INDEX "patches_superseded_by_idx" ON "patches" USING btree ("superseded_by");--> statement-breakpoint
CREATE INDEX "software_inventory_name_idx" ON "software_inventory" USING btree ("name");