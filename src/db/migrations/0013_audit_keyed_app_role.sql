-- Keyed audit chain: rows written from now on carry the id of the HMAC key that chains them (null = an
-- earlier row, chained with plain SHA-256).
ALTER TABLE "audit_log" ADD COLUMN IF NOT EXISTS "key_id" text;
--> statement-breakpoint
-- The application's role: everything it needs on the app's tables, but only INSERT and SELECT on audit_log, and
-- it owns nothing, so it cannot ALTER, DISABLE TRIGGER, UPDATE, DELETE or TRUNCATE. Roles are cluster-wide:
-- creating it is idempotent and safe when several databases of one cluster migrate at once (tests).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'patchops_app') THEN
    CREATE ROLE patchops_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- another database of this cluster created it at the same moment
END
$$;
--> statement-breakpoint
-- The owner (who runs migrations) must be able to act as the role: `-c role=patchops_app` at connection start.
-- A superuser already can; a managed service's admin user (CREATEROLE) grants itself the membership. From
-- PostgreSQL 16 on, the creator of a role holds it WITH ADMIN but without SET, so SET is what is checked there.
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 160000 THEN
    IF NOT pg_has_role(current_user, 'patchops_app', 'SET') THEN
      EXECUTE format('GRANT patchops_app TO %I WITH SET TRUE', current_user);
    END IF;
  ELSIF NOT pg_has_role(current_user, 'patchops_app', 'MEMBER') THEN
    EXECUTE format('GRANT patchops_app TO %I', current_user);
  END IF;
END
$$;
--> statement-breakpoint
GRANT USAGE ON SCHEMA public TO patchops_app;
--> statement-breakpoint
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO patchops_app;
--> statement-breakpoint
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO patchops_app;
--> statement-breakpoint
REVOKE ALL ON "audit_log" FROM PUBLIC;
--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "audit_log" FROM patchops_app;
--> statement-breakpoint
GRANT SELECT, INSERT ON "audit_log" TO patchops_app;
--> statement-breakpoint
-- Tables and sequences later migrations create (as the same owner) are granted the same way; a table that must be
-- insert-only like audit_log revokes in its own migration.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO patchops_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO patchops_app;
