-- Maintained aggregates for the dashboard overview (src/db/dashboard.ts): per endpoint, the number of
-- outstanding (missing or failed) patches; per patch, state and UTC day of detection, the number of
-- outstanding endpoint×patch pairs. Kept by a row trigger on endpoint_patches, so every writer keeps them right.
CREATE OR REPLACE FUNCTION patchops_web_endpoint_patch_aggregate() RETURNS trigger AS $$
DECLARE
  old_out boolean := false;
  new_out boolean := false;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN old_out := OLD.state IN ('missing', 'failed'); END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN new_out := NEW.state IN ('missing', 'failed'); END IF;
  IF TG_OP = 'UPDATE' AND old_out = new_out AND OLD.state = NEW.state AND OLD.endpoint_id = NEW.endpoint_id
     AND OLD.patch_id = NEW.patch_id AND (OLD.detected_at AT TIME ZONE 'UTC')::date = (NEW.detected_at AT TIME ZONE 'UTC')::date THEN
    RETURN NULL;
  END IF;
  IF old_out THEN
    UPDATE endpoint_compliance SET outstanding = outstanding - 1, failed = failed - (OLD.state = 'failed')::int
      WHERE endpoint_id = OLD.endpoint_id;
    UPDATE patch_outstanding_daily SET n = n - 1
      WHERE patch_id = OLD.patch_id AND state = OLD.state AND day = (OLD.detected_at AT TIME ZONE 'UTC')::date;
  END IF;
  IF new_out THEN
    INSERT INTO endpoint_compliance AS c (endpoint_id, outstanding, failed) VALUES (NEW.endpoint_id, 1, (NEW.state = 'failed')::int)
      ON CONFLICT (endpoint_id) DO UPDATE SET outstanding = c.outstanding + 1, failed = c.failed + EXCLUDED.failed;
    INSERT INTO patch_outstanding_daily AS d (patch_id, state, day, n) VALUES (NEW.patch_id, NEW.state, (NEW.detected_at AT TIME ZONE 'UTC')::date, 1)
      ON CONFLICT (patch_id, state, day) DO UPDATE SET n = d.n + 1;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER endpoint_patches_web_aggregate AFTER INSERT OR UPDATE OR DELETE ON "endpoint_patches"
  FOR EACH ROW EXECUTE FUNCTION patchops_web_endpoint_patch_aggregate();
--> statement-breakpoint
-- Recomputes both aggregates from endpoint_patches (after a bulk load with the trigger off, or as a repair).
CREATE OR REPLACE FUNCTION patchops_rebuild_dashboard_aggregates() RETURNS void AS $$
BEGIN
  LOCK TABLE endpoint_patches IN SHARE MODE;
  DELETE FROM endpoint_compliance;
  DELETE FROM patch_outstanding_daily;
  INSERT INTO endpoint_compliance (endpoint_id, outstanding, failed)
    SELECT endpoint_id, count(*), count(*) FILTER (WHERE state = 'failed') FROM endpoint_patches
    WHERE state IN ('missing', 'failed') GROUP BY endpoint_id;
  INSERT INTO patch_outstanding_daily (patch_id, state, day, n)
    SELECT patch_id, state, (detected_at AT TIME ZONE 'UTC')::date, count(*) FROM endpoint_patches
    WHERE state IN ('missing', 'failed') GROUP BY 1, 2, 3;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
SELECT patchops_rebuild_dashboard_aggregates();
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "endpoint_compliance_outstanding_idx" ON "endpoint_compliance" ("outstanding") WHERE "outstanding" > 0;
