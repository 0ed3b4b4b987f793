-- The outstanding counters (patch_outstanding_daily, endpoint_compliance, and through endpoint_compliance's own
-- trigger compliance_rollup) kept per statement instead of per row, in one lock order: every counter row a
-- statement changes is locked in key order, the per-patch rows first, then the per-endpoint rows, and only then
-- (when an endpoint's compliance flips) the shared rollup rows. The row trigger of 0007 locked them in row order and
-- touched the rollup row in the middle of a statement (an endpoint reaching 0 outstanding before its last row),
-- so concurrent install results deadlocked on the rollup and the per-patch rows (issue #15: about one a second in a
-- 1,000-endpoint cycle, each costing PostgreSQL's 1 s deadlock_timeout and a 503 to the agent). A statement's rows
-- are also summed first: a row whose outstanding-ness does not change locks nothing.
CREATE OR REPLACE FUNCTION patchops_apply_outstanding_deltas(
  p_endpoint text[], p_patch text[], p_state text[], p_day date[], p_sign int[]) RETURNS void AS $$
BEGIN
  INSERT INTO patch_outstanding_daily AS x (patch_id, state, day, n)
    SELECT s.patch_id, s.state, s.day, s.n
    FROM (SELECT u.patch_id, u.state, u.day, sum(u.sign)::int AS n
          FROM unnest(p_patch, p_state, p_day, p_sign) AS u(patch_id, state, day, sign)
          GROUP BY 1, 2, 3) s
    WHERE s.n > 0 OR (s.n < 0 AND EXISTS (
      SELECT 1 FROM patch_outstanding_daily y WHERE y.patch_id = s.patch_id AND y.state = s.state AND y.day = s.day))
    ORDER BY 1, 2, 3
    ON CONFLICT (patch_id, state, day) DO UPDATE SET n = x.n + EXCLUDED.n;
  INSERT INTO endpoint_compliance AS c (endpoint_id, outstanding, failed, os_family, active)
    SELECT s.endpoint_id, s.d_out, s.d_failed, e.os_family, e.status <> 'retired'
    FROM (SELECT u.endpoint_id, sum(u.sign)::int AS d_out, coalesce(sum(u.sign) FILTER (WHERE u.state = 'failed'), 0)::int AS d_failed
          FROM unnest(p_endpoint, p_state, p_sign) AS u(endpoint_id, state, sign)
          GROUP BY 1) s
    JOIN endpoints e ON e.id = s.endpoint_id
    WHERE s.d_out <> 0 OR s.d_failed <> 0
    ORDER BY 1
    ON CONFLICT (endpoint_id) DO UPDATE SET outstanding = c.outstanding + EXCLUDED.outstanding, failed = c.failed + EXCLUDED.failed;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_endpoint_patches_inserted() RETURNS trigger AS $$
BEGIN
  PERFORM patchops_apply_outstanding_deltas(array_agg(endpoint_id), array_agg(patch_id), array_agg(state), array_agg(day), array_agg(1))
    FROM (SELECT endpoint_id, patch_id, state, (detected_at AT TIME ZONE 'UTC')::date AS day
          FROM new_rows WHERE state IN ('missing', 'failed')) d
    HAVING count(*) > 0;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_endpoint_patches_updated() RETURNS trigger AS $$
BEGIN
  PERFORM patchops_apply_outstanding_deltas(array_agg(endpoint_id), array_agg(patch_id), array_agg(state), array_agg(day), array_agg(sign))
    FROM (SELECT endpoint_id, patch_id, state, (detected_at AT TIME ZONE 'UTC')::date AS day, -1 AS sign
          FROM old_rows WHERE state IN ('missing', 'failed')
          UNION ALL
          SELECT endpoint_id, patch_id, state, (detected_at AT TIME ZONE 'UTC')::date AS day, 1 AS sign
          FROM new_rows WHERE state IN ('missing', 'failed')) d
    HAVING count(*) > 0;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION patchops_endpoint_patches_deleted() RETURNS trigger AS $$
BEGIN
  PERFORM patchops_apply_outstanding_deltas(array_agg(endpoint_id), array_agg(patch_id), array_agg(state), array_agg(day), array_agg(-1))
    FROM (SELECT endpoint_id, patch_id, state, (detected_at AT TIME ZONE 'UTC')::date AS day
          FROM old_rows WHERE state IN ('missing', 'failed')) d
    HAVING count(*) > 0;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
DROP TRIGGER IF EXISTS endpoint_patches_web_aggregate ON "endpoint_patches";
--> statement-breakpoint
DROP FUNCTION IF EXISTS patchops_web_endpoint_patch_aggregate();
--> statement-breakpoint
CREATE TRIGGER endpoint_patches_outstanding_ins AFTER INSERT ON "endpoint_patches"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patchops_endpoint_patches_inserted();
--> statement-breakpoint
CREATE TRIGGER endpoint_patches_outstanding_upd AFTER UPDATE ON "endpoint_patches"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patchops_endpoint_patches_updated();
--> statement-breakpoint
CREATE TRIGGER endpoint_patches_outstanding_del AFTER DELETE ON "endpoint_patches"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION patchops_endpoint_patches_deleted();
--> statement-breakpoint
-- The group rollup rows of an endpoint whose compliance flips, in name order (as the os row, one per endpoint).
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
    FOR g IN SELECT eg.name FROM group_members m JOIN endpoint_groups eg ON eg.id = m.group_id
             WHERE m.endpoint_id = NEW.endpoint_id ORDER BY eg.name LOOP
      PERFORM patchops_web_rollup_add('group', g.name, ne - oe, nc - oc);
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
