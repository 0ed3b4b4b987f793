CREATE TABLE "compliance_rollup" (
	"dimension" text NOT NULL,
	"key" text NOT NULL,
	"endpoints" integer DEFAULT 0 NOT NULL,
	"compliant" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "compliance_rollup_dimension_key_pk" PRIMARY KEY("dimension","key")
);
--> statement-breakpoint
ALTER TABLE "endpoint_compliance" ADD COLUMN "os_family" text;--> statement-breakpoint
ALTER TABLE "endpoint_compliance" ADD COLUMN "active" boolean DEFAULT true NOT NULL;--> statement-breakpoint
CREATE INDEX "endpoint_compliance_outstanding_desc_idx" ON "endpoint_compliance" USING btree ("outstanding" DESC NULLS LAST,"endpoint_id");