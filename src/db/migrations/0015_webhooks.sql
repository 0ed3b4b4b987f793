-- Outbound webhooks (docs/webhooks.md). Endpoints keep their signing secret sealed with the secrets key
-- (src/db/secret-box.ts). Deliveries are the outbox: one row per (endpoint, event), enqueued idempotently from the
-- audit log by a stored cursor and claimed by any server with FOR UPDATE SKIP LOCKED.
CREATE TABLE IF NOT EXISTS "webhook_endpoints" (
  "id" text PRIMARY KEY NOT NULL,
  "url" text NOT NULL,
  "secret_sealed" text NOT NULL,
  -- Event types this endpoint receives; empty = every type.
  "event_types" text[] DEFAULT '{}'::text[] NOT NULL,
  "description" text DEFAULT '' NOT NULL,
  "enabled" boolean DEFAULT true NOT NULL,
  "created_by" text NOT NULL,
  "created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "webhook_deliveries" (
  "id" text PRIMARY KEY NOT NULL,
  "endpoint_id" text NOT NULL REFERENCES "webhook_endpoints"("id") ON DELETE CASCADE,
  "event_id" text NOT NULL,
  "event_type" text NOT NULL,
  "payload" jsonb NOT NULL,
  "status" text DEFAULT 'pending' NOT NULL CHECK ("status" IN ('pending', 'delivered', 'failed')),
  "attempts" integer DEFAULT 0 NOT NULL,
  -- Set by each claim; an attempt's outcome is recorded only while the row still carries its claim's token.
  "claim_token" text,
  -- When a pending delivery is next due; while one server is sending it, the end of that server's lease.
  "next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
  "last_http_status" integer,
  "last_error" text,
  "delivered_at" timestamp with time zone,
  "created_at" timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT "webhook_deliveries_endpoint_event_uq" UNIQUE ("endpoint_id", "event_id")
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "webhook_deliveries_due_idx" ON "webhook_deliveries" ("next_attempt_at") WHERE "status" = 'pending';
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "webhook_deliveries_endpoint_idx" ON "webhook_deliveries" ("endpoint_id", "created_at");
--> statement-breakpoint
-- How far the outbox has read the audit log. Audit ids rise in commit order (appends are serialised by an
-- advisory lock held to commit), so everything at or below the cursor has been seen. It starts at the head:
-- history from before webhooks existed is not sent.
CREATE TABLE IF NOT EXISTS "webhook_outbox_cursor" (
  "name" text PRIMARY KEY NOT NULL,
  "last_audit_id" bigint NOT NULL
);
--> statement-breakpoint
INSERT INTO "webhook_outbox_cursor" ("name", "last_audit_id")
SELECT 'audit', coalesce(max("id"), 0) FROM "audit_log"
ON CONFLICT ("name") DO NOTHING;
--> statement-breakpoint
-- SLA breaches were only ever computed (src/db/read-model/compliance.ts). A breach is recorded here once, when a
-- sweep first sees it, together with an `sla.breached` audit entry (the event webhooks send). A patch detected
-- again later (a new detected_at) is a new breach.
CREATE TABLE IF NOT EXISTS "sla_breaches" (
  "endpoint_id" text NOT NULL,
  "patch_id" text NOT NULL,
  "detected_at" timestamp with time zone NOT NULL,
  "due_at" timestamp with time zone NOT NULL,
  "recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT "sla_breaches_pk" PRIMARY KEY ("endpoint_id", "patch_id", "detected_at")
);
