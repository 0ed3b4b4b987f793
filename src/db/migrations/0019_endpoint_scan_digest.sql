-- The digest of the findings of an endpoint's last full scan that was written in full (src/db/patch-reports.ts,
-- scanDigest): a rescan reporting exactly the same skips the row writes. Cleared by every other writer of the
-- endpoint's patch rows (install, verify, rollback, reboot results), so a match means the rows are as that scan left them.
ALTER TABLE "endpoints" ADD COLUMN "last_scan_digest" text;
