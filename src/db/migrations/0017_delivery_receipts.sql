CREATE TABLE "delivery_receipts" (
	"key" text PRIMARY KEY NOT NULL,
	"seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "delivery_receipts_expires_at_idx" ON "delivery_receipts" USING btree ("expires_at");
