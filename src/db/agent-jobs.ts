/**
 * DrizzleAgentJobs: the AgentJobs port over the agent_jobs table. Dispatch is idempotent: a job's id is
 * deterministic from (cycle, wave, endpoint, kind), rows go in with INSERT … ON CONFLICT DO NOTHING, so
 * a retried activity never dispatches twice. The agent gateway (issue 4) leases rows and writes results.
 * Jobs dispatched with `hold` wait in state 'held' (invisible to agents) until release() queues them,
 * which is how a wave keeps to the policy's concurrency and batch size.
 *
 * A paused cycle (patch_cycles.paused) holds its queued installs and gets none released or dispatched queued
 * until it is resumed; installs an agent already leased run to the end (an install cannot be stopped half-way).
 * Pause and dispatch serialise on the cycle's row, so no install slips out between them.
 */
import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { isPendingJob } from '../domain/compliance';
import type { WaveCounts } from '../domain/cycle';
import type { AgentJobs, DispatchJobsInput, JobKind } from '../domain/ports';
import type { Db } from './client';
import { agentJobs, patchCycles } from './schema/index';

/** Rows per INSERT statement: bounded so a 100,000-endpoint wave never builds one giant statement. */
export const DISPATCH_BATCH = 1000;

/** The deterministic job id: the same (cycle, wave, endpoint, kind) always gives the same id. */
export function jobId(cycleId: string, wave: number | null, endpointId: string, kind: JobKind): string {
  return `${kind}:${cycleId}:${wave === null ? 'n' : String(wave)}:${endpointId}`;
}

const UNFINISHED = ['queued', 'leased'] as const;

export class DrizzleAgentJobs implements AgentJobs {
  constructor(private readonly db: Db) {}

  private where(cycleId: string, wave: number | null, kind?: JobKind): SQL {
    const parts = [eq(agentJobs.cycleId, cycleId), wave === null ? isNull(agentJobs.wave) : eq(agentJobs.wave, wave)];
    if (kind) parts.push(eq(agentJobs.kind, kind));
    return and(...parts)!;
  }

  async dispatch(input: DispatchJobsInput): Promise<{ created: number; existing: number }> {
    let created = 0;
    const notBefore = input.notBefore ? new Date(input.notBefore) : null;
    const deadline = input.deadline ? new Date(input.deadline) : null;
    for (let i = 0; i < input.jobs.length; i += DISPATCH_BATCH) {
      created += await this.db.transaction(async (tx) => {
        // FOR SHARE: a pause (which updates this row) waits for the insert, or the insert sees the pause.
        const [cycle] = await tx.select({ paused: patchCycles.paused }).from(patchCycles).where(eq(patchCycles.id, input.cycleId)).for('share');
        const rows = input.jobs.slice(i, i + DISPATCH_BATCH).map((j) => ({
          id: jobId(input.cycleId, input.wave, j.endpointId, j.kind),
          cycleId: input.cycleId,
          wave: input.wave,
          endpointId: j.endpointId,
          kind: j.kind,
          payload: j.payload,
          state: input.hold || (cycle?.paused && j.kind === 'install') ? 'held' : 'queued',
          notBefore,
          deadline,
        }));
        const inserted = await tx.insert(agentJobs).values(rows).onConflictDoNothing({ target: agentJobs.id }).returning({ id: agentJobs.id });
        return inserted.length;
      });
    }
    return { created, existing: input.jobs.length - created };
  }

  async counts(cycleId: string, wave: number | null, kind: JobKind): Promise<WaveCounts> {
    const rows = await this.db
      .select({ state: agentJobs.state, n: sql<number>`count(*)::int` })
      .from(agentJobs)
      .where(this.where(cycleId, wave, kind))
      .groupBy(agentJobs.state);
    const c: WaveCounts = { total: 0, succeeded: 0, failed: 0, unreachable: 0, pending: 0 };
    for (const r of rows) {
      const n = Number(r.n);
      c.total += n;
      if (r.state === 'succeeded') c.succeeded += n;
      else if (r.state === 'failed') c.failed += n;
      else if (r.state === 'unreachable') c.unreachable += n;
      else if (isPendingJob(r.state)) c.pending += n;
      // cancelled jobs count in total only: they will not run.
    }
    return c;
  }

  /**
   * Unfinished jobs whose endpoint has not been seen for `olderThanSeconds` (never-seen endpoints count
   * from their creation), or whose lease expired more than `olderThanSeconds` ago, become 'unreachable'.
   */
  async expireUnreachable(cycleId: string, wave: number | null, olderThanSeconds: number, now: Date): Promise<number> {
    const bound = new Date(now.getTime() - olderThanSeconds * 1000);
    const rows = await this.db
      .update(agentJobs)
      .set({ state: 'unreachable', finishedAt: now, error: `no answer from the endpoint for ${olderThanSeconds}s` })
      .where(
        and(
          this.where(cycleId, wave),
          inArray(agentJobs.state, [...UNFINISHED]),
          sql`(${agentJobs.leaseExpiresAt} < ${bound.toISOString()}::timestamptz
               or exists (select 1 from endpoints e where e.id = ${agentJobs.endpointId}
                          and coalesce(e.last_seen_at, e.created_at) < ${bound.toISOString()}::timestamptz))`,
        ),
      )
      .returning({ id: agentJobs.id });
    return rows.length;
  }

  async cancelQueued(cycleId: string, wave: number | null): Promise<number> {
    const rows = await this.db
      .update(agentJobs)
      .set({ state: 'cancelled', finishedAt: new Date(), error: 'cancelled before it started' })
      .where(and(this.where(cycleId, wave), inArray(agentJobs.state, ['queued', 'held'])))
      .returning({ id: agentJobs.id });
    return rows.length;
  }

  async release(cycleId: string, wave: number | null, limits: { concurrency: number; batchSize: number }): Promise<number> {
    const waveCond = wave === null ? sql`wave is null` : sql`wave = ${wave}`;
    const r = await this.db.execute<{ id: string }>(sql`
      with inflight as (
        select count(*)::int as n from agent_jobs where cycle_id = ${cycleId} and ${waveCond} and state in ('queued', 'leased')
      ), pick as (
        select id from agent_jobs where cycle_id = ${cycleId} and ${waveCond} and state = 'held'
          and not exists (select 1 from patch_cycles c where c.id = ${cycleId} and c.paused)
        order by id
        limit greatest(0, least(${limits.batchSize}::int, ${limits.concurrency}::int - (select n from inflight)))
        for update skip locked
      )
      update agent_jobs set state = 'queued' where id in (select id from pick) returning id`);
    return r.rows.length;
  }
}

/** Limits meaning "no limit": a wave without concurrency limits releases every held job at once (after a resume). */
export const NO_RELEASE_LIMITS = { concurrency: 1_000_000_000, batchSize: 1_000_000_000 } as const;

/**
 * Applies a pause or resume of a cycle to its jobs. `seq` is the workflow's count of pause/resume controls: a
 * control older than the last one applied changes nothing (the two activities may run in either order).
 * Pausing holds the cycle's queued installs; resuming lets release() hand them out again. Returns whether it applied.
 */
export async function applyCyclePause(db: Db, cycleId: string, paused: boolean, seq?: number): Promise<{ applied: boolean; held: number }> {
  return db.transaction(async (tx) => {
    const cond = seq === undefined ? eq(patchCycles.id, cycleId) : and(eq(patchCycles.id, cycleId), sql`${patchCycles.pauseSeq} < ${seq}`);
    const updated = await tx
      .update(patchCycles)
      .set(seq === undefined ? { paused } : { paused, pauseSeq: seq })
      .where(cond)
      .returning({ id: patchCycles.id });
    if (updated.length === 0) return { applied: false, held: 0 };
    if (!paused) return { applied: true, held: 0 };
    const held = await tx
      .update(agentJobs)
      .set({ state: 'held' })
      .where(and(eq(agentJobs.cycleId, cycleId), eq(agentJobs.kind, 'install'), eq(agentJobs.state, 'queued')))
      .returning({ id: agentJobs.id });
    return { applied: true, held: held.length };
  });
}
