-- The cycle's compliance before it deployed anything (the percentage of its scope's endpoints with nothing
-- outstanding, measured when it assessed) and the scope it was measured over: the cycle report (chat, e-mail,
-- ServiceNow work note) compares it with the same scope's compliance when the cycle ends. Until now no report
-- carried either, and the e-mail subject said "compliance not measured" for every cycle.
ALTER TABLE "patch_cycles" ADD COLUMN "compliance_before" real;
--> statement-breakpoint
ALTER TABLE "patch_cycles" ADD COLUMN "compliance_scope" jsonb;
