CREATE TABLE "cycle_endpoints" (
	"cycle_id" text NOT NULL,
	"endpoint_id" text NOT NULL,
	"wave" integer NOT NULL,
	"batch" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cycle_endpoints_cycle_id_endpoint_id_pk" PRIMARY KEY("cycle_id","endpoint_id")
);
--> statement-breakpoint
CREATE TABLE "cycle_targets" (
	"cycle_id" text NOT NULL,
	"endpoint_id" text NOT NULL,
	"patch_id" text NOT NULL,
	"decision" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"risk_score" real DEFAULT 0 NOT NULL,
	"sla_due" timestamp with time zone,
	"reason" text DEFAULT '' NOT NULL,
	CONSTRAINT "cycle_targets_cycle_id_endpoint_id_patch_id_pk" PRIMARY KEY("cycle_id","endpoint_id","patch_id")
);
--> statement-breakpoint
ALTER TABLE "cycle_endpoints" ADD CONSTRAINT "cycle_endpoints_cycle_id_patch_cycles_id_fk" FOREIGN KEY ("cycle_id") REFERENCES "public"."patch_cycles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "cycle_targets" ADD CONSTRAINT "cycle_targets_cycle_id_patch_cycles_id_fk" FOREIGN KEY ("cycle_id") REFERENCES "public"."patch_cycles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "cycle_endpoints_wave_idx" ON "cycle_endpoints" USING btree ("cycle_id","wave");--> statement-breakpoint
CREATE INDEX "cycle_targets_cycle_decision_idx" ON "cycle_targets" USING btree ("cycle_id","decision");