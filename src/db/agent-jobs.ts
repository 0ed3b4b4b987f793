/**
 * DrizzleAgentJobs: the AgentJobs port over the agent_jobs table. Dispatch is idempotent: a job's id is
 * deterministic from (cycle, wave, endpoint, kind), rows go in with INSERT … ON CONFLICT DO NOTHING, so
 * a retried activity never dispatches twice. The agent gateway (issue 4) leases rows and writes results.
 * Jobs dispatched with `hold` wait in state 'held' (invisible to agents) until release() queues them,
 * which is how a wave keeps to the policy's concurrency and batch size.
 *
 * The agent's side of the same table (below the class): the "has work" hint, leasing, lease renewal and results.
 *
 * A paused cycle (patch_cycles.paused) holds its queued installs and gets none released or dispatched queued
 * until it is resumed; installs an agent already leased run to the end (an install cannot be stopped half-way).
 * Pause and dispatch serialise on the cycle's row, so no install slips out between them.
 */
import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { isPendingJob } from '../domain/compliance';
import type { WaveCounts } from '../domain/cycle';
import { CodedError, ErrorCode } from '../domain/errors';
import type { AgentJobs, DispatchJobsInput, JobKind } from '../domain/ports';
import { splayOffsetMs } from '../domain/splay';
import type { AgentJob, JobResult } from '../shared/agent-protocol';
import { appendAudit, canonicalJson } from './audit';
import type { Db } from './client';
import { applyScan, screenJobResult, type RefusedEntry } from './patch-reports';
import { agentJobs, endpointPatches, endpoints, patchCycles } from './schema/index';

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
    const splayFrom = (notBefore ?? new Date()).getTime();
    // A splay never pushes a job past its deadline: at most half the time left is spread over.
    const splay = Math.min(
      input.splaySeconds ?? 0,
      deadline ? Math.max(0, (deadline.getTime() - splayFrom) / 2000) : Infinity,
    );
    for (let i = 0; i < input.jobs.length; i += DISPATCH_BATCH) {
      created += await this.db.transaction(async (tx) => {
        // FOR SHARE: a pause (which updates this row) waits for the insert, or the insert sees the pause.
        const [cycle] = await tx
          .select({ paused: patchCycles.paused })
          .from(patchCycles)
          .where(eq(patchCycles.id, input.cycleId))
          .for('share');
        const rows = input.jobs.slice(i, i + DISPATCH_BATCH).map((j) => ({
          id: jobId(input.cycleId, input.wave, j.endpointId, j.kind),
          cycleId: input.cycleId,
          wave: input.wave,
          endpointId: j.endpointId,
          kind: j.kind,
          payload: j.payload,
          state: input.hold || (cycle?.paused && j.kind === 'install') ? 'held' : 'queued',
          notBefore: splay > 0 ? new Date(splayFrom + splayOffsetMs(j.endpointId, splay)) : notBefore,
          deadline,
        }));
        const inserted = await tx
          .insert(agentJobs)
          .values(rows)
          .onConflictDoNothing({ target: agentJobs.id })
          .returning({ id: agentJobs.id });
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

  async release(
    cycleId: string,
    wave: number | null,
    limits: { concurrency: number; batchSize: number },
  ): Promise<number> {
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
export async function applyCyclePause(
  db: Db,
  cycleId: string,
  paused: boolean,
  seq?: number,
): Promise<{ applied: boolean; held: number }> {
  return db.transaction(async (tx) => {
    const cond =
      seq === undefined
        ? eq(patchCycles.id, cycleId)
        : and(eq(patchCycles.id, cycleId), sql`${patchCycles.pauseSeq} < ${seq}`);
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

// ---------------------------------------------------------------- the agent's side: leases and results

const DEADLINE_MESSAGE = 'deadline passed before the agent picked it up';

/** Endpoints that have a job an agent could be handed now (the gateway's "has work" hint). */
export async function endpointsWithWork(db: Db, now: Date): Promise<string[]> {
  const res = await db.execute<{ endpoint_id: string }>(sql`
    select distinct endpoint_id from agent_jobs
    where state in ('queued', 'leased')
      and (state = 'queued' or lease_expires_at < ${now.toISOString()}::timestamptz)
      and (not_before is null or not_before <= ${now.toISOString()}::timestamptz)`);
  return res.rows.map((r) => r.endpoint_id);
}

/**
 * Leases up to `limit` jobs of one endpoint: queued ones, and leased ones whose lease expired (offered again).
 * Claims with FOR UPDATE SKIP LOCKED so two polls never hand out the same job. Jobs past their deadline
 * are not handed out but failed.
 *
 * `reclaimBefore`: the agent says it holds none of its jobs (its last poll ended without an answer, and it runs
 * the jobs of one answer before it polls again), so jobs leased or renewed before that moment (the poll's arrival)
 * never reached it or are no longer in its hands: they are offered again now instead of when their lease expires.
 */
export async function leaseJobs(
  db: Db,
  endpointId: string,
  opts: { now: Date; leaseSeconds: number; limit?: number; reclaimBefore?: Date },
): Promise<AgentJob[]> {
  const leased = await leaseJobsForMany(db, [{ endpointId, reclaimBefore: opts.reclaimBefore }], opts);
  return leased.get(endpointId) ?? [];
}

/** One endpoint's poll waiting for a lease, as leaseJobsForMany takes it. */
export interface LeaseRequest {
  endpointId: string;
  /** As leaseJobs' `reclaimBefore`. */
  reclaimBefore?: Date | undefined;
}

/**
 * leaseJobs for many endpoints in one statement (one round trip for a whole wave of held polls): up to `limit` jobs
 * each, by endpoint (endpoints given more than once count once, with the latest `reclaimBefore`). Endpoints with
 * nothing to lease are absent from the map.
 */
export async function leaseJobsForMany(
  db: Db,
  requests: readonly LeaseRequest[],
  opts: { now: Date; leaseSeconds: number; limit?: number },
): Promise<Map<string, AgentJob[]>> {
  const leased = new Map<string, AgentJob[]>();
  if (requests.length === 0) return leased;
  const now = opts.now.toISOString();
  const leaseUntil = new Date(opts.now.getTime() + opts.leaseSeconds * 1000).toISOString();
  // A lease granted (or renewed) before `reclaimBefore` ends before reclaimBefore + leaseSeconds; without it, only
  // leases that ended before now are offered again.
  const reclaimUntil = new Map<string, number>();
  for (const r of requests) {
    const until = r.reclaimBefore
      ? Math.min(r.reclaimBefore.getTime(), opts.now.getTime()) + opts.leaseSeconds * 1000
      : opts.now.getTime();
    reclaimUntil.set(r.endpointId, Math.max(until, reclaimUntil.get(r.endpointId) ?? until));
  }
  const ids = [...reclaimUntil.keys()];
  const untils = ids.map((id) => new Date(reclaimUntil.get(id)!).toISOString());
  // One statement: the jobs past their deadline failed, the rest leased (each endpoint's first `limit`, in order,
  // FOR UPDATE SKIP LOCKED so two polls never hand out the same job). The two parts touch disjoint rows (deadline
  // before now / not), as a statement's data-modifying parts must.
  const res = await db.execute<{
    endpoint_id: string;
    id: string;
    kind: string;
    payload: Record<string, unknown>;
    deadline: Date | string | null;
    lease_expires_at: Date | string;
    created_us: string | number;
  }>(sql`
    with req as (
      select * from unnest(${sql.param(ids)}::text[], ${sql.param(untils)}::timestamptz[]) as r(endpoint_id, reclaim_until)
    ), late as (
      update agent_jobs j set state = 'failed', error = case when j.state = 'queued' then ${DEADLINE_MESSAGE} else 'deadline passed; the lease expired without a result' end,
        finished_at = ${now}::timestamptz, lease_expires_at = null
      from req
      where j.endpoint_id = req.endpoint_id and j.deadline < ${now}::timestamptz
        and (j.state = 'queued' or (j.state = 'leased' and j.lease_expires_at < ${now}::timestamptz))
    ), c as (
      select picked.id from req cross join lateral (
        select a.id from agent_jobs a
        where a.endpoint_id = req.endpoint_id
          and a.state in ('queued', 'leased')
          and (a.state = 'queued' or a.lease_expires_at < req.reclaim_until)
          and (a.not_before is null or a.not_before <= ${now}::timestamptz)
          and (a.deadline is null or a.deadline >= ${now}::timestamptz)
        order by a.created_at, a.id
        limit ${opts.limit ?? 10}
        for update skip locked
      ) picked
    )
    update agent_jobs j set state = 'leased', attempts = j.attempts + 1, lease_expires_at = ${leaseUntil}::timestamptz,
      started_at = coalesce(j.started_at, ${now}::timestamptz)
    from c where j.id = c.id
    returning j.endpoint_id, j.id, j.kind, j.payload, j.deadline, j.lease_expires_at,
      (extract(epoch from j.created_at) * 1000000)::bigint::text as created_us`);
  const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  // Each endpoint's jobs in the order they were picked (created_at, id), as leaseJobs has always answered.
  const rows = res.rows
    .map((r) => ({ r, at: BigInt(r.created_us) }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.r.id < b.r.id ? -1 : a.r.id > b.r.id ? 1 : 0))
    .map(({ r }) => r);
  for (const r of rows) {
    let list = leased.get(r.endpoint_id);
    if (!list) leased.set(r.endpoint_id, (list = []));
    list.push({
      id: r.id,
      kind: r.kind as AgentJob['kind'],
      payload: r.payload ?? {},
      deadline: iso(r.deadline),
      leaseExpiresAt: iso(r.lease_expires_at)!,
    });
  }
  return leased;
}

/**
 * Hands back jobs leased to a poll that could not deliver them (its agent hung up first): queued again at once,
 * the attempt not counted, instead of waiting out a lease nobody holds. Only rows still under that very lease
 * change (a job renewed, finished or re-leased since is left alone). Returns how many were handed back.
 */
export async function returnLeasedJobs(db: Db, endpointId: string, jobs: readonly AgentJob[]): Promise<number> {
  if (jobs.length === 0) return 0;
  const res = await db.execute(sql`
    update agent_jobs set state = 'queued', lease_expires_at = null, attempts = greatest(attempts - 1, 0),
      started_at = case when attempts <= 1 then null else started_at end
    where endpoint_id = ${endpointId} and state = 'leased'
      and id in (${sql.join(
        jobs.map((j) => sql`${j.id}`),
        sql`, `,
      )})
      and lease_expires_at = ${jobs[0]!.leaseExpiresAt}::timestamptz`);
  return res.rowCount ?? 0;
}

/** How far past a job's deadline a renewed lease may reach: work may not start after the deadline, but may end after it. */
export const LEASE_DEADLINE_GRACE_SECONDS = 3600;

/**
 * Extends the lease of a job the endpoint holds: to now + leaseSeconds, never shortening it, and never past the
 * job's deadline plus `deadlineGraceSeconds` (default LEASE_DEADLINE_GRACE_SECONDS). Also records the endpoint as
 * seen, so the unreachable sweep (DrizzleAgentJobs.expireUnreachable) neither finds an expired lease nor a silent
 * endpoint. Errors: NotFound (no such job), Forbidden (another endpoint's job), Conflict (the job is not leased to
 * it any more: finished, cancelled, unreachable, never handed out, its lease expired (it is up to be offered again),
 * or its deadline plus the grace has passed).
 */
export async function renewJobLease(
  db: Db,
  endpointId: string,
  jobId: string,
  opts: { now: Date; leaseSeconds: number; deadlineGraceSeconds?: number },
): Promise<{ leaseExpiresAt: Date }> {
  return db.transaction(async (tx) => {
    const [job] = await tx
      .select({
        endpointId: agentJobs.endpointId,
        state: agentJobs.state,
        leaseExpiresAt: agentJobs.leaseExpiresAt,
        deadline: agentJobs.deadline,
      })
      .from(agentJobs)
      .where(eq(agentJobs.id, jobId))
      .for('update');
    if (!job) throw new CodedError(ErrorCode.NotFound, `no job "${jobId}"`);
    if (job.endpointId !== endpointId)
      throw new CodedError(ErrorCode.Forbidden, `job "${jobId}" belongs to another agent`);
    const now = opts.now.getTime();
    if (job.state !== 'leased')
      throw new CodedError(
        ErrorCode.Conflict,
        `job "${jobId}" is ${job.state}, not leased: its lease cannot be renewed`,
      );
    if (!job.leaseExpiresAt || job.leaseExpiresAt.getTime() < now) {
      throw new CodedError(
        ErrorCode.Conflict,
        `the lease of job "${jobId}" expired at ${job.leaseExpiresAt?.toISOString() ?? '?'}: the job is up to be offered again`,
      );
    }
    let until = now + opts.leaseSeconds * 1000;
    if (job.deadline)
      until = Math.min(
        until,
        job.deadline.getTime() + (opts.deadlineGraceSeconds ?? LEASE_DEADLINE_GRACE_SECONDS) * 1000,
      );
    if (until <= now)
      throw new CodedError(
        ErrorCode.Conflict,
        `job "${jobId}" is past its deadline (${job.deadline!.toISOString()}) and the grace after it: its lease is not extended`,
      );
    const leaseExpiresAt = new Date(Math.max(until, job.leaseExpiresAt.getTime()));
    await tx.update(agentJobs).set({ leaseExpiresAt }).where(eq(agentJobs.id, jobId));
    await tx
      .update(endpoints)
      .set({
        lastSeenAt: opts.now,
        status: sql`case when ${endpoints.status} = 'unreachable' then 'active' else ${endpoints.status} end`,
      })
      .where(eq(endpoints.id, endpointId));
    return { leaseExpiresAt };
  });
}

export type RecordOutcome = 'recorded' | 'duplicate';

/**
 * Records a job's result and applies it (scan → the endpoint's own reports, the catalog and its missing set;
 * install/rollback/verify → endpoint_patches states). The result is screened first (screenJobResult): refused entries
 * are named in the job's error and the audit log, and are neither stored nor taken as installed. Idempotent: the same
 * result again is 'duplicate'. Errors: NotFound (no such job), Forbidden (another endpoint's job), Conflict (a
 * different result for a finished job, a cancelled job, a job never handed out).
 */
export async function recordJobResult(
  db: Db,
  endpointId: string,
  jobId: string,
  reported: JobResult,
  now = new Date(),
  opts: {
    /** Records the common case (recordPatchJobResults for one report), e.g. batched with others; true if it did. */
    recordPatchResult?: (report: PatchJobReport) => Promise<boolean>;
  } = {},
): Promise<{ outcome: RecordOutcome; refused: RefusedEntry[] }> {
  const { result, refused } = screenJobResult(reported);
  const refusedIds = refused.map((r) => r.patchId);
  // The common case (an install, verify or rollback result for a leased job, nothing refused) in one statement; the
  // rest (scans, reboots, refusals, duplicates, errors) in the transaction below.
  const fast =
    opts.recordPatchResult ??
    (async (report: PatchJobReport) => (await recordPatchJobResults(db, [report], now)).has(report.jobId));
  if (refused.length === 0 && !result.missing && (await fast({ endpointId, jobId, result })))
    return { outcome: 'recorded', refused };
  return db.transaction(async (tx) => {
    const [job] = await tx.select().from(agentJobs).where(eq(agentJobs.id, jobId)).for('update');
    if (!job) throw new CodedError(ErrorCode.NotFound, `no job "${jobId}"`);
    if (job.endpointId !== endpointId)
      throw new CodedError(ErrorCode.Forbidden, `job "${jobId}" belongs to another agent`);
    const stored = canonicalJson(result as unknown as Record<string, unknown>);
    if (job.state === 'succeeded' || job.state === 'failed') {
      if (job.result && canonicalJson(job.result) === stored) return { outcome: 'duplicate' as const, refused };
      throw new CodedError(
        ErrorCode.Conflict,
        `job "${jobId}" already finished (${job.state}) with a different result`,
      );
    }
    if (job.state === 'cancelled')
      throw new CodedError(ErrorCode.Conflict, `job "${jobId}" was cancelled; its result is not recorded`);
    if (job.state === 'queued')
      throw new CodedError(ErrorCode.Conflict, `job "${jobId}" was never handed out; poll for it first`);
    // leased, or unreachable (a late result still counts).
    await tx
      .update(agentJobs)
      .set({
        state: result.status,
        // The canonical text itself: not parsed back into objects for drizzle to serialise again (a scan's result
        // holds hundreds of patches).
        result: sql`${stored}::jsonb`,
        error: result.error ?? null,
        finishedAt: now,
        leaseExpiresAt: null,
      })
      .where(eq(agentJobs.id, jobId));
    const txDb = tx as unknown as Db;
    if (refused.length > 0) {
      await appendAudit(txDb, {
        actor: `agent:${endpointId}`,
        action: 'agent.result.entries_refused',
        subjectType: 'job',
        subjectId: jobId,
        details: {
          endpointId,
          refused: refused.map((r) => ({ patchId: r.patchId.slice(0, 256), problem: r.problem.slice(0, 2000) })),
        },
      });
    }
    const epSet: Partial<Omit<typeof endpoints.$inferInsert, 'lastScanDigest'>> & { lastScanDigest?: SQL | null } = {
      lastSeenAt: now,
      pendingReboot: result.rebootPending,
      status: 'active',
    };
    if (job.kind === 'scan' && result.missing) {
      const [ep] = await txDb
        .select({ osFamily: endpoints.osFamily, lastScanDigest: endpoints.lastScanDigest })
        .from(endpoints)
        .where(eq(endpoints.id, endpointId));
      const previous = ep?.lastScanDigest ?? null;
      // The endpoint's row is written in applyScan's last statement, with its patch rows.
      await applyScan(
        txDb,
        endpointId,
        jobId,
        result.missing,
        (job.payload as { patchIds?: string[] }).patchIds ?? [],
        refusedIds,
        now,
        { osFamily: ep?.osFamily ?? 'any', lastScanDigest: previous },
        (digest) =>
          txDb
            .update(endpoints)
            .set({
              ...epSet,
              // Kept only if no other writer changed it meanwhile (a concurrent result for this endpoint): else
              // cleared, and the next scan is written in full. The update re-reads the committed row: no lock for it.
              lastScanDigest: sql`case when ${endpoints.lastScanDigest} is not distinct from ${previous}::text then ${digest}::text end`,
              lastScanAt: now,
            })
            .where(eq(endpoints.id, endpointId))
            .getSQL(),
      );
      return { outcome: 'recorded' as const, refused };
    }
    // Any other job may change the endpoint's patch rows: the next scan is written in full.
    if (job.kind !== 'scan') epSet.lastScanDigest = null;
    if (job.kind !== 'scan' && result.patches.length > 0) await applyPatchStates(txDb, endpointId, jobId, result, now);
    if (job.kind === 'reboot' && result.status === 'succeeded') {
      await txDb
        .update(endpointPatches)
        .set({ state: 'installed', installedAt: now, updatedAt: now, lastJobId: jobId })
        .where(and(eq(endpointPatches.endpointId, endpointId), eq(endpointPatches.state, 'pending_reboot')));
    }
    await txDb.update(endpoints).set(epSet).where(eq(endpoints.id, endpointId));
    return { outcome: 'recorded' as const, refused };
  });
}

/** An install, verify or rollback result, screened (screenJobResult), as recordPatchJobResults takes it. */
export interface PatchJobReport {
  endpointId: string;
  jobId: string;
  result: JobResult;
}

/**
 * Install, verify and rollback results for jobs leased (or counted unreachable) to their endpoints, recorded in one
 * statement, one round trip and one commit for many (the gateway batches the results that arrive together): each
 * job's row, the reported patch states (as applyPatchStates) and the endpoint's row. Writes the same rows as the
 * transaction of recordJobResult, and takes the row locks in its order (jobs, then patch rows by endpoint and patch
 * id, then endpoints: each later part reads the one before; a data-modifying CTE nobody reads runs last). The patch
 * rows' counter triggers fire once, at the statement's end. At most one report per endpoint (an agent reports one
 * job at a time; a second would upsert the same rows twice, which PostgreSQL refuses).
 *
 * Returns the jobs it recorded. A report it does not take writes nothing (the job is not this endpoint's, finished,
 * another kind, absent): recordJobResult's transaction then answers it. Under load this is most of the gateway's
 * writes (a cycle's installs and verifies).
 */
export async function recordPatchJobResults(
  db: Db,
  reports: readonly PatchJobReport[],
  now: Date,
): Promise<Set<string>> {
  if (reports.length === 0) return new Set();
  const at = now.toISOString();
  const col = <T>(f: (r: PatchJobReport) => T) => sql.param(reports.map(f));
  const res = await db.execute<{ id: string }>(sql`
    with r as (
      select * from unnest(${col((r) => r.jobId)}::text[], ${col((r) => r.endpointId)}::text[],
        ${col((r) => r.result.status)}::text[], ${col((r) => canonicalJson(r.result as unknown as Record<string, unknown>))}::text[],
        ${col((r) => r.result.error ?? null)}::text[], ${col((r) => r.result.rebootPending)}::boolean[])
        as r(job_id, endpoint_id, status, result, error, reboot_pending)
    ), j as (
      update agent_jobs a set state = r.status, result = r.result::jsonb, error = r.error,
        finished_at = ${at}::timestamptz, lease_expires_at = null
      from r
      where a.id = r.job_id and a.endpoint_id = r.endpoint_id and a.state in ('leased', 'unreachable')
        and a.kind in ('install', 'verify', 'rollback')
      returning a.id, a.endpoint_id
    ), p as (
      ${patchStatesUpsert(reports, now, (jobIdColumn) => sql`exists (select 1 from j where j.id = ${jobIdColumn})`)} returning 1
    ), e as (
      update endpoints set last_seen_at = ${at}::timestamptz, pending_reboot = r.reboot_pending,
        status = 'active', last_scan_digest = null
      from r join j on j.id = r.job_id
      where endpoints.id = r.endpoint_id and (select count(*) from p) >= 0
      returning 1
    )
    select id from j`);
  return new Set(res.rows.map((r) => r.id));
}

/**
 * The patch states an install / verify / rollback / reboot job reported, written in one statement: one multi-row
 * upsert over the reported patches the catalog knows (a patch the catalog never saw has nothing to attach to).
 * The last report of a patch wins when an agent names it twice.
 */
async function applyPatchStates(
  db: Db,
  endpointId: string,
  jobId: string,
  result: JobResult,
  now: Date,
): Promise<void> {
  if (result.patches.length > 0) await db.execute(patchStatesUpsert([{ endpointId, jobId, result }], now));
}

/**
 * The upsert of applyPatchStates for one or more reports (of different endpoints), rows written only where `guard`
 * holds for their job (recordPatchJobResults: the job row was updated). With no patches reported it writes nothing.
 */
function patchStatesUpsert(
  reports: readonly PatchJobReport[],
  now: Date,
  guard: (jobIdColumn: SQL) => SQL = () => sql`true`,
): SQL {
  const rows = reports.flatMap(({ endpointId, jobId, result }) =>
    [...new Map(result.patches.map((p) => [p.patchId, p])).values()].map((p) => ({
      endpointId,
      jobId,
      patchId: p.patchId,
      state: p.state === 'rolled_back' ? 'missing' : p.state,
      error: p.error ?? null,
    })),
  );
  // One lock order for every writer (as applyScan): concurrent writers of an endpoint's rows never deadlock.
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  rows.sort((a, b) => cmp(a.endpointId, b.endpointId) || cmp(a.patchId, b.patchId));
  const col = <T>(f: (r: (typeof rows)[number]) => T) => sql.param(rows.map(f));
  const at = now.toISOString();
  return sql`
    insert into endpoint_patches (endpoint_id, patch_id, state, last_job_id, last_error, installed_at, updated_at)
    select r.endpoint_id, r.patch_id, r.state, r.job_id, r.error,
      case when r.state = 'installed' then ${at}::timestamptz end, ${at}::timestamptz
    from unnest(${col((r) => r.endpointId)}::text[], ${col((r) => r.jobId)}::text[], ${col((r) => r.patchId)}::text[],
      ${col((r) => r.state)}::text[], ${col((r) => r.error)}::text[])
      with ordinality as r(endpoint_id, job_id, patch_id, state, error, n)
    where ${guard(sql`r.job_id`)} and exists (select 1 from patches k where k.id = r.patch_id)
    order by r.n
    on conflict (endpoint_id, patch_id) do update set
      state = excluded.state,
      last_job_id = excluded.last_job_id,
      last_error = excluded.last_error,
      updated_at = excluded.updated_at,
      installed_at = case when excluded.state = 'installed' then excluded.updated_at
                          when excluded.state = 'missing' then null
                          else endpoint_patches.installed_at end`;
}

/** Endpoints of a wave whose install succeeded (only `endpointId`, when given): where rollback and verify jobs go. */
export async function succeededInstallEndpoints(
  db: Db,
  cycleId: string,
  wave: number,
  endpointId?: string,
): Promise<string[]> {
  const conds = [
    eq(agentJobs.cycleId, cycleId),
    eq(agentJobs.wave, wave),
    eq(agentJobs.kind, 'install'),
    eq(agentJobs.state, 'succeeded'),
  ];
  if (endpointId) conds.push(eq(agentJobs.endpointId, endpointId));
  return (
    await db
      .select({ id: agentJobs.endpointId })
      .from(agentJobs)
      .where(and(...conds))
  ).map((r) => r.id);
}

/** A cycle's failed and unreachable jobs, by endpoint, at most `limit`: the failures its report lists. */
export async function failedJobsOfCycle(
  db: Db,
  cycleId: string,
  limit: number,
): Promise<Array<{ endpointId: string; hostname: string; reason: string }>> {
  const rows = await db
    .select({
      endpointId: agentJobs.endpointId,
      hostname: endpoints.hostname,
      error: agentJobs.error,
      state: agentJobs.state,
    })
    .from(agentJobs)
    .innerJoin(endpoints, eq(endpoints.id, agentJobs.endpointId))
    .where(and(eq(agentJobs.cycleId, cycleId), inArray(agentJobs.state, ['failed', 'unreachable'])))
    .orderBy(agentJobs.endpointId)
    .limit(limit);
  return rows.map((f) => ({ endpointId: f.endpointId, hostname: f.hostname, reason: f.error ?? f.state }));
}
