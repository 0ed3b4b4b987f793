-- Two dashboard reads that scanned a whole table at 100,000 endpoints × 200 patches (docs/benchmarks.md, the
-- dashboard benchmark).
--
-- The outstanding rows (the domain's OUTSTANDING_STATES) in detection order: the most overdue SLA breaches of a
-- class of patches are its earliest detected, so a page of breaches reads a few rows per class
-- (src/db/read-model/compliance.ts, slaBreaches) instead of sorting every breach. The included columns let the
-- candidate rows be read from the index alone (no heap visit per row where the table is vacuumed).
CREATE INDEX IF NOT EXISTS "endpoint_patches_outstanding_detected_idx" ON "endpoint_patches" USING btree ("detected_at") INCLUDE ("endpoint_id", "patch_id", "state") WHERE "endpoint_patches"."state" in ('missing', 'failed');
--> statement-breakpoint
-- Endpoint search is a substring match on hostname or id (ILIKE '%q%'), which no btree serves: trigram GIN
-- indexes do. pg_trgm is a trusted extension (PostgreSQL 13+: a database owner may create it, as on managed
-- PostgreSQL) and the embedded PGlite loads it (src/db/embedded.ts). Where it cannot be created the migration goes
-- on without the indexes and search reads the table, as before.
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
  RAISE NOTICE 'pg_trgm is not available (%): endpoint search reads the endpoints table', SQLERRM;
END $$;
--> statement-breakpoint
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    CREATE INDEX IF NOT EXISTS "endpoints_hostname_trgm_idx" ON "endpoints" USING gin ("hostname" gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS "endpoints_id_trgm_idx" ON "endpoints" USING gin ("id" gin_trgm_ops);
  END IF;
END $$;
