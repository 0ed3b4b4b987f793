/**
 * What the metrics endpoint reports from the database at scrape time: outstanding agent jobs by kind and state,
 * and cycles that have not ended, by stage. Both read only rows that are still moving (the finished ones are the
 * bulk of each table), so a scrape stays cheap at 100,000 endpoints.
 */
import { sql } from 'drizzle-orm';
import type { Db } from './client';
import { PENDING_JOB_STATES } from '../domain/compliance';
import { TERMINAL_STAGES } from '../domain/cycle';

export interface OperationalCounts {
  jobs: Array<{ kind: string; state: string; count: number }>;
  cycles: Array<{ stage: string; count: number }>;
}

export async function operationalCounts(db: Db): Promise<OperationalCounts> {
  const pending = sql.join(
    PENDING_JOB_STATES.map((s) => sql`${s}`),
    sql`, `,
  );
  const terminal = sql.join(
    TERMINAL_STAGES.map((s) => sql`${s}`),
    sql`, `,
  );
  const [jobs, cycles] = await Promise.all([
    db.execute<{ kind: string; state: string; count: number }>(
      sql`SELECT kind, state, count(*)::int AS count FROM agent_jobs WHERE state IN (${pending}) GROUP BY kind, state`,
    ),
    db.execute<{ stage: string; count: number }>(
      sql`SELECT stage, count(*)::int AS count FROM patch_cycles WHERE stage NOT IN (${terminal}) GROUP BY stage`,
    ),
  ]);
  return { jobs: jobs.rows, cycles: cycles.rows };
}
