-- The gateway's "has work" refresh and its lease query look only at jobs an agent can still be handed.
CREATE INDEX IF NOT EXISTS "agent_jobs_leasable_idx" ON "agent_jobs" ("endpoint_id") WHERE "state" IN ('queued', 'leased');
