-- Maintained rollups for the overview: endpoints and compliant endpoints per OS family and per group
-- (compliance_rollup), kept by triggers, so the overview reads a few dozen rows instead of joining the fleet.
-- endpoint_compliance now has a row per endpoint (with its OS family and whether it counts: not retired).
CREATE OR REPLACE FUNCTION patchops_web_rollup_add(dim text, k text, d_endpoints int, d_compliant int) RETURNS void AS $$
BEGIN
  IF k IS NULL OR (d_endpoints = 0 AND d_compliant = 0) THEN RETURN; END IF;
  INSERT INTO compliance_rollup AS r (dimension, key, endpoints, compliant) VALUES (dim, k, d_endpoints, d_compliant)
    ON CONFLICT (dimension, key) DO UPDATE SET endpoints = r.endpoints + EXCLUDED.endpoints, compliant = r.compliant + EXCLUDED.compliant;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
-- An endpoint's compliance changed: its OS row always; its groups' rows on a transition (groups' membership rows do the rest).
CREATE OR REPLACE FUNCTION patchops_web_endpoint_compliance_rollup() RETURNS trigger AS $$
DECLARE
  oe int := 0; oc int := 0; ne int := 0; nc int := 0;
  g record;
BEGIN
  -- The rebuild recounts everything itself.
  IF current_setting('patchops.rebuilding', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.active THEN oe := 1; oc := (OLD.outstanding = 0)::int; END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.active THEN ne := 1; nc := (NEW.outstanding = 0)::int; END IF;
  IF TG_OP = 'UPDATE' AND oe = ne AND oc = nc AND OLD.os_family IS NOT DISTINCT FROM NEW.os_family THEN RETURN NULL; END IF;
  IF TG_OP = 'UPDATE' AND OLD.os_family IS NOT DISTINCT FROM NEW.os_family THEN
    PERFORM patchops_web_rollup_add('os', NEW.os_family, ne - oe, nc - oc);
  ELSE
    IF TG_OP <> 'INSERT' THEN PERFORM patchops_web_rollup_add('os', OLD.os_family, -oe, -oc); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM patchops_web_rollup_add('os', NEW.os_family, ne, nc); END IF;
  END IF;
  IF TG_OP = 'UPDATE' AND (ne <> oe OR nc <> oc) THEN
    FOR g IN SELECT eg.name FROM group_members m JOIN endpoint_groups eg ON eg.id = m.group_id WHERE m.endpoint_id = NEW.endpoint_id LOOP
      PERFORM patchops_web_rollup_add('group', g.name, ne - oe, nc - oc);
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER endpoint_compliance_web_rollup AFTER INSERT OR UPDATE OR DELETE ON "endpoint_compliance"
  FOR EACH ROW EXECUTE FUNCTION patchops_web_endpoint_compliance_rollup();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_web_group_members_rollup() RETURNS trigger AS $$
DECLARE
  gname text;
  c_active boolean;
  c_outstanding int;
  s int := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO endpoint_compliance (endpoint_id, os_family, active)
      SELECT e.id, e.os_family, e.status <> 'retired' FROM endpoints e WHERE e.id = NEW.endpoint_id
      ON CONFLICT (endpoint_id) DO NOTHING;
    SELECT name INTO gname FROM endpoint_groups WHERE id = NEW.group_id;
    SELECT active, outstanding INTO c_active, c_outstanding FROM endpoint_compliance WHERE endpoint_id = NEW.endpoint_id;
  ELSE
    SELECT name INTO gname FROM endpoint_groups WHERE id = OLD.group_id;
    SELECT active, outstanding INTO c_active, c_outstanding FROM endpoint_compliance WHERE endpoint_id = OLD.endpoint_id;
  END IF;
  -- A group being deleted is gone already (its rollup row is removed by its own trigger); an endpoint
  -- being deleted is handled by the statement trigger on endpoints, which recounts the groups.
  IF gname IS NULL OR c_active IS NULL OR NOT c_active THEN RETURN NULL; END IF;
  IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM endpoints WHERE id = OLD.endpoint_id) THEN RETURN NULL; END IF;
  PERFORM patchops_web_rollup_add('group', gname, s, s * (c_outstanding = 0)::int);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER group_members_web_rollup AFTER INSERT OR DELETE ON "group_members"
  FOR EACH ROW EXECUTE FUNCTION patchops_web_group_members_rollup();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_web_endpoint_groups_rollup() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM compliance_rollup WHERE dimension = 'group' AND key = OLD.name;
  ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
    UPDATE compliance_rollup SET key = NEW.name WHERE dimension = 'group' AND key = OLD.name;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER endpoint_groups_web_rollup AFTER UPDATE OR DELETE ON "endpoint_groups"
  FOR EACH ROW EXECUTE FUNCTION patchops_web_endpoint_groups_rollup();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_web_endpoints_rollup() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO endpoint_compliance AS c (endpoint_id, os_family, active) VALUES (NEW.id, NEW.os_family, NEW.status <> 'retired')
      ON CONFLICT (endpoint_id) DO UPDATE SET os_family = EXCLUDED.os_family, active = EXCLUDED.active;
  ELSIF TG_OP = 'UPDATE' THEN
    IF NEW.os_family IS DISTINCT FROM OLD.os_family OR (NEW.status <> 'retired') IS DISTINCT FROM (OLD.status <> 'retired') THEN
      UPDATE endpoint_compliance SET os_family = NEW.os_family, active = NEW.status <> 'retired' WHERE endpoint_id = NEW.id;
    END IF;
  ELSE
    DELETE FROM endpoint_compliance WHERE endpoint_id = OLD.id;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER zz_endpoints_web_rollup AFTER INSERT OR UPDATE OR DELETE ON "endpoints"
  FOR EACH ROW EXECUTE FUNCTION patchops_web_endpoints_rollup();
--> statement-breakpoint
-- Deleting endpoints cascades to their memberships and patch rows in an order the row triggers cannot
-- rely on: recount the group rollup once per deleting statement instead (rare, and one aggregate query).
CREATE OR REPLACE FUNCTION patchops_web_recount_group_rollup() RETURNS trigger AS $$
BEGIN
  DELETE FROM compliance_rollup WHERE dimension = 'group';
  INSERT INTO compliance_rollup (dimension, key, endpoints, compliant)
    SELECT 'group', g.name, count(*) FILTER (WHERE c.active), count(*) FILTER (WHERE c.active AND c.outstanding = 0)
    FROM group_members m JOIN endpoint_groups g ON g.id = m.group_id JOIN endpoint_compliance c ON c.endpoint_id = m.endpoint_id
    GROUP BY g.name;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER zz_endpoints_web_recount_groups AFTER DELETE ON "endpoints"
  FOR EACH STATEMENT EXECUTE FUNCTION patchops_web_recount_group_rollup();
--> statement-breakpoint
-- endpoint_patches' trigger: a new endpoint_compliance row carries the endpoint's OS family.
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
    INSERT INTO endpoint_compliance AS c (endpoint_id, outstanding, failed, os_family, active)
      SELECT NEW.endpoint_id, 1, (NEW.state = 'failed')::int, e.os_family, e.status <> 'retired' FROM endpoints e WHERE e.id = NEW.endpoint_id
      ON CONFLICT (endpoint_id) DO UPDATE SET outstanding = c.outstanding + 1, failed = c.failed + EXCLUDED.failed;
    INSERT INTO patch_outstanding_daily AS d (patch_id, state, day, n) VALUES (NEW.patch_id, NEW.state, (NEW.detected_at AT TIME ZONE 'UTC')::date, 1)
      ON CONFLICT (patch_id, state, day) DO UPDATE SET n = d.n + 1;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_rebuild_dashboard_aggregates() RETURNS void AS $$
BEGIN
  LOCK TABLE endpoint_patches, endpoints, group_members, endpoint_groups IN SHARE MODE;
  PERFORM set_config('patchops.rebuilding', 'on', true);
  DELETE FROM endpoint_compliance;
  DELETE FROM patch_outstanding_daily;
  INSERT INTO endpoint_compliance (endpoint_id, outstanding, failed, os_family, active)
    SELECT e.id, coalesce(x.n, 0), coalesce(x.f, 0), e.os_family, e.status <> 'retired'
    FROM endpoints e LEFT JOIN (
      SELECT endpoint_id, count(*) AS n, count(*) FILTER (WHERE state = 'failed') AS f FROM endpoint_patches
      WHERE state IN ('missing', 'failed') GROUP BY endpoint_id) x ON x.endpoint_id = e.id;
  INSERT INTO patch_outstanding_daily (patch_id, state, day, n)
    SELECT patch_id, state, (detected_at AT TIME ZONE 'UTC')::date, count(*) FROM endpoint_patches
    WHERE state IN ('missing', 'failed') GROUP BY 1, 2, 3;
  -- The row triggers above touched the rollups; recompute them whole.
  DELETE FROM compliance_rollup;
  INSERT INTO compliance_rollup (dimension, key, endpoints, compliant)
    SELECT 'os', os_family, count(*) FILTER (WHERE active), count(*) FILTER (WHERE active AND outstanding = 0)
    FROM endpoint_compliance WHERE os_family IS NOT NULL GROUP BY os_family;
  INSERT INTO compliance_rollup (dimension, key, endpoints, compliant)
    SELECT 'group', g.name, count(*) FILTER (WHERE c.active), count(*) FILTER (WHERE c.active AND c.outstanding = 0)
    FROM group_members m JOIN endpoint_groups g ON g.id = m.group_id JOIN endpoint_compliance c ON c.endpoint_id = m.endpoint_id
    GROUP BY g.name;
  PERFORM set_config('patchops.rebuilding', 'off', true);
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
SELECT patchops_rebuild_dashboard_aggregates();
