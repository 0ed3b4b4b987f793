/**
 * Wave counts of a cycle's install jobs, as the dashboard shows them. "Pending" is the domain's
 * PENDING_JOB_STATES (queued, leased and held), the same set the workflow's counts use
 * (src/db/agent-jobs.ts `counts`); cancelled jobs count in the total only.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../client';
import { PENDING_JOB_STATES } from '../../domain/compliance';

export type WaveJobCounts = {
  wave: number;
  total: number;
  succeeded: number;
  failed: number;
  unreachable: number;
  pending: number;
};

/** Per wave (the test ring is wave 0), in wave order. */
export async function cycleWaveCounts(db: Db, cycleId: string): Promise<WaveJobCounts[]> {
  const pending = sql.join(
    PENDING_JOB_STATES.map((s) => sql`${s}`),
    sql`, `,
  );
  const rows = await db.execute<WaveJobCounts>(sql`
    select coalesce(wave, 0)::int as wave, count(*)::int as total,
           count(*) filter (where state = 'succeeded')::int as succeeded,
           count(*) filter (where state = 'failed')::int as failed,
           count(*) filter (where state = 'unreachable')::int as unreachable,
           count(*) filter (where state in (${pending}))::int as pending
    from agent_jobs where cycle_id = ${cycleId} and kind = 'install' group by 1 order by 1`);
  return rows.rows.map((r) => ({
    wave: Number(r.wave),
    total: Number(r.total),
    succeeded: Number(r.succeeded),
    failed: Number(r.failed),
    unreachable: Number(r.unreachable),
    pending: Number(r.pending),
  }));
}
