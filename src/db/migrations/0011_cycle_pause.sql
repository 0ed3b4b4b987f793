ALTER TABLE "patch_cycles" ADD COLUMN "paused" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "patch_cycles" ADD COLUMN "pause_seq" integer DEFAULT 0 NOT NULL;