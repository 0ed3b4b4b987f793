-- People and the identities they act through: one person may hold slack:U…, teams:…, web:… and api:…
-- identities; quorum counts people and separation of duties compares people. An identity linked to nobody is
-- its own person (no row needed).
CREATE TABLE IF NOT EXISTS "people" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"email" text,
	"created_by" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "people_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE UNIQUE INDEX IF NOT EXISTS "people_email_uq" ON "people" (lower("email")) WHERE "email" IS NOT NULL;
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "person_identities" (
	"identity" text PRIMARY KEY NOT NULL,
	"person_id" integer NOT NULL REFERENCES "people"("id") ON DELETE CASCADE,
	"linked_by" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "person_identities_person_idx" ON "person_identities" ("person_id");
