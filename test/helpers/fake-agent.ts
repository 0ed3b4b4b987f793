/**
 * A test double of the agents: completes queued agent_jobs rows by writing results the way the gateway
 * does (state succeeded/failed, finished_at, a result in the jobResultSchema shape). Bulk SQL, so a
 * 5,000-endpoint wave completes in one statement.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client';

export interface FakeAgentOptions {
  /** Endpoints whose jobs of these kinds fail. */
  failing?: { endpointIds: string[]; kinds?: string[] };
  /** Jobs of these kinds are left alone (agents "offline" for them). */
  ignoreKinds?: string[];
  intervalMs?: number;
}

export function startFakeAgent(
  db: Db,
  options: FakeAgentOptions = {},
): { stop(): Promise<void>; setFailing(ids: string[], kinds?: string[]): void } {
  let failing = options.failing;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    const ignore = options.ignoreKinds ?? [];
    const failIds = failing?.endpointIds ?? [];
    const failKinds = failing?.kinds ?? ['install'];
    await db.execute(sql`
      update agent_jobs set
        state = case when endpoint_id = any(${sql.param(failIds)}::text[]) and kind = any(${sql.param(failKinds)}::text[]) then 'failed' else 'succeeded' end,
        started_at = now(), finished_at = now(), attempts = attempts + 1,
        result = case when endpoint_id = any(${sql.param(failIds)}::text[]) and kind = any(${sql.param(failKinds)}::text[])
                 then '{"status":"failed","patches":[],"rebootPending":false,"error":"exit code 1"}'::jsonb
                 else '{"status":"succeeded","patches":[],"rebootPending":false}'::jsonb end,
        error = case when endpoint_id = any(${sql.param(failIds)}::text[]) and kind = any(${sql.param(failKinds)}::text[]) then 'exit code 1' else null end
      where state = 'queued' and not (kind = any(${sql.param(ignore)}::text[]))
        and (not_before is null or not_before <= now())`);
  };
  const timer = setInterval(() => {
    if (stopped) return;
    running = running.then(tick).catch(() => undefined);
  }, options.intervalMs ?? 250);
  return {
    setFailing(ids, kinds) {
      failing = { endpointIds: ids, kinds };
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
