CREATE TABLE "compliance_snapshots" (
	"id" serial PRIMARY KEY NOT NULL,
	"taken_at" timestamp with time zone DEFAULT now() NOT NULL,
	"endpoints" integer NOT NULL,
	"compliant_endpoints" integer NOT NULL,
	"compliance_pct" real NOT NULL,
	"by_severity" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"known_exploited" integer DEFAULT 0 NOT NULL,
	"overdue" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "endpoint_compliance" (
	"endpoint_id" text PRIMARY KEY NOT NULL,
	"outstanding" integer DEFAULT 0 NOT NULL,
	"failed" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "patch_outstanding_daily" (
	"patch_id" text NOT NULL,
	"state" text NOT NULL,
	"day" date NOT NULL,
	"n" integer NOT NULL,
	CONSTRAINT "patch_outstanding_daily_patch_id_state_day_pk" PRIMARY KEY("patch_id","state","day")
);
--> statement-breakpoint
CREATE TABLE "web_sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"username" text NOT NULL,
	"csrf_token" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "web_users" (
	"username" text PRIMARY KEY NOT NULL,
	"password_hash" text NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_login_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "agent_enroll_secrets" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"secret_hash" text NOT NULL,
	"created_by" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "agent_node_keys" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"key_hash" text NOT NULL,
	"endpoint_id" text NOT NULL,
	"enroll_secret_id" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "distribution_points" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"url" text NOT NULL,
	"site" text NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "manifest_signing_keys" (
	"id" serial PRIMARY KEY NOT NULL,
	"public_key" text NOT NULL,
	"private_key" text NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "repository_manifests" (
	"version" integer PRIMARY KEY NOT NULL,
	"body" text NOT NULL,
	"signature" text NOT NULL,
	"key_id" integer NOT NULL,
	"files" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "web_sessions" ADD CONSTRAINT "web_sessions_username_web_users_username_fk" FOREIGN KEY ("username") REFERENCES "public"."web_users"("username") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_node_keys" ADD CONSTRAINT "agent_node_keys_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "compliance_snapshots_taken_idx" ON "compliance_snapshots" USING btree ("taken_at");--> statement-breakpoint
CREATE INDEX "web_sessions_username_idx" ON "web_sessions" USING btree ("username");--> statement-breakpoint
CREATE INDEX "web_sessions_expires_idx" ON "web_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "agent_enroll_secrets_name_uq" ON "agent_enroll_secrets" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "agent_enroll_secrets_hash_uq" ON "agent_enroll_secrets" USING btree ("secret_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "agent_node_keys_hash_uq" ON "agent_node_keys" USING btree ("key_hash");--> statement-breakpoint
CREATE INDEX "agent_node_keys_endpoint_idx" ON "agent_node_keys" USING btree ("endpoint_id");--> statement-breakpoint
CREATE INDEX "agent_node_keys_revoked_idx" ON "agent_node_keys" USING btree ("revoked_at");--> statement-breakpoint
CREATE UNIQUE INDEX "distribution_points_name_uq" ON "distribution_points" USING btree ("name");--> statement-breakpoint
CREATE INDEX "distribution_points_site_idx" ON "distribution_points" USING btree ("site");--> statement-breakpoint
CREATE INDEX "repository_manifests_expires_idx" ON "repository_manifests" USING btree ("expires_at");