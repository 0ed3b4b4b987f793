-- Personal access tokens of the REST API (/api/v1). The token text is `pat_<id>_<secret>`; only the SHA-256 of the
-- secret is kept. The owner is a person's identity as the dashboard uses it (`web:alice`); a call acts with the
-- lower of the owner's role and the token's scope.
CREATE TABLE IF NOT EXISTS "api_tokens" (
  "id" text PRIMARY KEY NOT NULL,
  "owner" text NOT NULL,
  "name" text NOT NULL,
  "scope" text NOT NULL,
  "secret_hash" text NOT NULL,
  "created_at" timestamp with time zone DEFAULT now() NOT NULL,
  "expires_at" timestamp with time zone NOT NULL,
  "revoked_at" timestamp with time zone,
  "last_used_at" timestamp with time zone,
  CONSTRAINT "api_tokens_scope_check" CHECK ("scope" IN ('read', 'approve', 'admin'))
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "api_tokens_owner_idx" ON "api_tokens" ("owner");
