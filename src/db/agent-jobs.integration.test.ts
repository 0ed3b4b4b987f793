import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { seedFleet } from '../../test/helpers/cycle-fixtures';
import { applyCyclePause, DrizzleAgentJobs, jobId, leaseJobs, leaseJobsForMany, NO_RELEASE_LIMITS } from './agent-jobs';
import { splayOffsetMs } from '../domain/splay';
import { agentJobs, patchCycles } from './schema/index';

let db: TestDatabase;
let jobs: DrizzleAgentJobs;
let ids: string[];

beforeAll(async () => {
  db = await createTestDatabase();
  jobs = new DrizzleAgentJobs(db.db);
  ids = (await seedFleet(db.db, { prefix: 'aj', testEndpoints: 0, endpoints: 5 })).endpointIds;
});
afterAll(async () => {
  await db?.close();
});

const specs = (list: string[]) =>
  list.map((endpointId) => ({ endpointId, kind: 'install' as const, payload: { patches: [] } }));

describe('DrizzleAgentJobs', () => {
  it('job ids are deterministic from (cycle, wave, endpoint, kind)', () => {
    expect(jobId('c1', 2, 'ep', 'install')).toBe(jobId('c1', 2, 'ep', 'install'));
    expect(
      new Set([
        jobId('c1', 2, 'ep', 'install'),
        jobId('c1', 1, 'ep', 'install'),
        jobId('c1', 2, 'ep', 'verify'),
        jobId('c1', null, 'ep', 'install'),
      ]).size,
    ).toBe(4);
  });

  it('dispatch is idempotent: a retried dispatch creates nothing new', async () => {
    const first = await jobs.dispatch({ cycleId: 'c-idem', wave: 1, jobs: specs(ids) });
    const again = await jobs.dispatch({ cycleId: 'c-idem', wave: 1, jobs: specs(ids) });
    expect(first).toEqual({ created: 5, existing: 0 });
    expect(again).toEqual({ created: 0, existing: 5 });
    expect(await jobs.counts('c-idem', 1, 'install')).toEqual({
      total: 5,
      succeeded: 0,
      failed: 0,
      unreachable: 0,
      pending: 5,
    });
  });

  it('a splayed dispatch gives each endpoint its own start within the splay, the same on a retry, and no lease before it', async () => {
    const from = new Date('2030-01-01T00:00:00Z');
    const input = {
      cycleId: 'c-splay',
      wave: null,
      jobs: ids.map((endpointId) => ({ endpointId, kind: 'scan' as const, payload: { patchIds: [] } })),
      notBefore: from.toISOString(),
      splaySeconds: 120,
    };
    await jobs.dispatch(input);
    const starts = async () =>
      (
        await db.db.execute<{ endpoint_id: string; nb: string }>(
          sql`select endpoint_id, to_char(not_before at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as nb from agent_jobs where cycle_id = 'c-splay' order by endpoint_id`,
        )
      ).rows;
    const first = await starts();
    expect(first.map((r) => r.nb)).toEqual(
      first.map((r) => new Date(from.getTime() + splayOffsetMs(r.endpoint_id, 120)).toISOString()),
    );
    for (const r of first) expect(Date.parse(r.nb) - from.getTime()).toBeLessThan(120_000);
    expect(new Set(first.map((r) => r.nb)).size).toBeGreaterThan(1);
    await jobs.dispatch({ ...input, notBefore: new Date(from.getTime() + 5000).toISOString() });
    expect(await starts()).toEqual(first);
    const one = first[0]!;
    const at = Date.parse(one.nb);
    const splayedJob = jobId('c-splay', null, one.endpoint_id, 'scan');
    const leased = async (t: number) =>
      (await leaseJobs(db.db, one.endpoint_id, { now: new Date(t), leaseSeconds: 60, limit: 100 })).map((j) => j.id);
    expect(await leased(at - 1)).not.toContain(splayedJob);
    expect(await leased(at)).toContain(splayedJob);
  });

  it('a splay never pushes a job past its deadline: at most half the time left is spread over', async () => {
    const from = new Date('2030-02-01T00:00:00Z');
    await jobs.dispatch({
      cycleId: 'c-splay-dl',
      wave: 1,
      jobs: specs(ids),
      notBefore: from.toISOString(),
      deadline: new Date(from.getTime() + 60_000).toISOString(),
      splaySeconds: 3600,
    });
    const rows = (
      await db.db.execute<{ ms: number }>(
        sql`select (extract(epoch from not_before) * 1000)::float8 as ms from agent_jobs where cycle_id = 'c-splay-dl'`,
      )
    ).rows;
    for (const r of rows) expect(Number(r.ms) - from.getTime()).toBeLessThan(30_000);
  });

  it('counts per state, for the wave and kind asked only', async () => {
    await jobs.dispatch({ cycleId: 'c-counts', wave: 1, jobs: specs(ids) });
    await jobs.dispatch({ cycleId: 'c-counts', wave: 2, jobs: specs(ids.slice(0, 2)) });
    await db.db
      .update(agentJobs)
      .set({ state: 'succeeded' })
      .where(sql`id = ${jobId('c-counts', 1, ids[0]!, 'install')}`);
    await db.db
      .update(agentJobs)
      .set({ state: 'failed' })
      .where(sql`id = ${jobId('c-counts', 1, ids[1]!, 'install')}`);
    expect(await jobs.counts('c-counts', 1, 'install')).toEqual({
      total: 5,
      succeeded: 1,
      failed: 1,
      unreachable: 0,
      pending: 3,
    });
    expect((await jobs.counts('c-counts', 2, 'install')).total).toBe(2);
    expect((await jobs.counts('c-counts', 1, 'verify')).total).toBe(0);
    expect((await jobs.counts('nope', 1, 'install')).total).toBe(0);
  });

  it('expireUnreachable marks jobs of silent endpoints and of long-expired leases, not the others', async () => {
    const now = new Date();
    await jobs.dispatch({ cycleId: 'c-exp', wave: null, jobs: specs(ids) });
    await db.db.execute(sql`update endpoints set last_seen_at = now() - interval '2 hours' where id = ${ids[0]!}`);
    await db.db
      .update(agentJobs)
      .set({ state: 'leased', leaseExpiresAt: new Date(now.getTime() - 3600_000) })
      .where(sql`id = ${jobId('c-exp', null, ids[1]!, 'install')}`);
    const n = await jobs.expireUnreachable('c-exp', null, 600, now);
    expect(n).toBe(2);
    const c = await jobs.counts('c-exp', null, 'install');
    expect(c).toMatchObject({ unreachable: 2, pending: 3 });
    await db.db.execute(sql`update endpoints set last_seen_at = now() where id = ${ids[0]!}`);
  });

  it('cancelQueued cancels only queued jobs of that wave', async () => {
    await jobs.dispatch({ cycleId: 'c-cancel', wave: 3, jobs: specs(ids) });
    await db.db
      .update(agentJobs)
      .set({ state: 'leased' })
      .where(sql`id = ${jobId('c-cancel', 3, ids[0]!, 'install')}`);
    expect(await jobs.cancelQueued('c-cancel', 3)).toBe(4);
    expect(await jobs.cancelQueued('c-cancel', 3)).toBe(0);
    expect(await jobs.counts('c-cancel', 3, 'install')).toEqual({
      total: 5,
      succeeded: 0,
      failed: 0,
      unreachable: 0,
      pending: 1,
    });
  });

  it('held jobs are invisible until released, within the concurrency and batch size', async () => {
    await jobs.dispatch({ cycleId: 'c-hold', wave: 1, jobs: specs(ids), hold: true });
    expect(await jobs.counts('c-hold', 1, 'install')).toMatchObject({ total: 5, pending: 5 });
    const queued = async () =>
      (
        await db.db.execute<{ n: number }>(
          sql`select count(*)::int as n from agent_jobs where cycle_id = 'c-hold' and state = 'queued'`,
        )
      ).rows[0]!.n;
    expect(await queued()).toBe(0);
    expect(await jobs.release('c-hold', 1, { concurrency: 3, batchSize: 2 })).toBe(2);
    expect(await jobs.release('c-hold', 1, { concurrency: 3, batchSize: 2 })).toBe(1);
    expect(await jobs.release('c-hold', 1, { concurrency: 3, batchSize: 2 })).toBe(0);
    await db.db.execute(
      sql`update agent_jobs set state = 'succeeded' where id in (select id from agent_jobs where cycle_id = 'c-hold' and state = 'queued' order by id limit 2)`,
    );
    expect(await jobs.release('c-hold', 1, { concurrency: 3, batchSize: 2 })).toBe(2);
    expect(await queued()).toBe(3);
    expect(await jobs.cancelQueued('c-hold', 1)).toBe(3);
    expect(await jobs.counts('c-hold', 1, 'install')).toMatchObject({ succeeded: 2, pending: 0 });
  });

  it('a mid-wave pause holds queued installs (not rollbacks), keeps dispatch and release from handing any out, and a resume lets them go', async () => {
    const cycleId = 'c-pause';
    await db.db.insert(patchCycles).values({
      id: cycleId,
      workflowId: `patch-cycle:${cycleId}`,
      policyName: 'default',
      policyVersion: 1,
      stage: 'DEPLOY',
      requestedBy: 'cli:test',
    });
    const state = async (kind: 'install' | 'rollback', ep: string) =>
      (
        await db.db
          .select({ s: agentJobs.state })
          .from(agentJobs)
          .where(sql`id = ${jobId(cycleId, 1, ep, kind)}`)
      )[0]?.s;
    await jobs.dispatch({ cycleId, wave: 1, jobs: specs(ids.slice(0, 3)) });
    await jobs.dispatch({
      cycleId,
      wave: 1,
      jobs: [{ endpointId: ids[4]!, kind: 'rollback', payload: { patches: [] } }],
    });
    await db.db
      .update(agentJobs)
      .set({ state: 'leased' })
      .where(sql`id = ${jobId(cycleId, 1, ids[0]!, 'install')}`);

    expect(await applyCyclePause(db.db, cycleId, true, 1)).toEqual({ applied: true, held: 2 });
    expect([await state('install', ids[0]!), await state('install', ids[1]!), await state('install', ids[2]!)]).toEqual(
      ['leased', 'held', 'held'],
    );
    expect(await state('rollback', ids[4]!)).toBe('queued');
    // Still pending for the wave: a pause does not end it.
    expect(await jobs.counts(cycleId, 1, 'install')).toMatchObject({ total: 3, pending: 3 });
    // While paused: new installs go in held, and release hands out nothing.
    await jobs.dispatch({ cycleId, wave: 1, jobs: specs([ids[3]!]) });
    expect(await state('install', ids[3]!)).toBe('held');
    expect(await jobs.release(cycleId, 1, NO_RELEASE_LIMITS)).toBe(0);

    // A late, older control changes nothing; the resume (seq 2) applies, and release hands them all out.
    expect(await applyCyclePause(db.db, cycleId, false, 2)).toEqual({ applied: true, held: 0 });
    expect(await applyCyclePause(db.db, cycleId, true, 1)).toEqual({ applied: false, held: 0 });
    expect(await jobs.release(cycleId, 1, NO_RELEASE_LIMITS)).toBe(3);
    expect(await state('install', ids[3]!)).toBe('queued');
    // With limits, a resumed wave keeps to them.
    await applyCyclePause(db.db, cycleId, true, 3);
    expect(await jobs.release(cycleId, 1, { concurrency: 3, batchSize: 10 })).toBe(0);
    await applyCyclePause(db.db, cycleId, false, 4);
    // In flight: the leased install and the queued rollback; one more makes three.
    expect(await jobs.release(cycleId, 1, { concurrency: 3, batchSize: 10 })).toBe(1);
  });
});

describe('leaseJobsForMany: a wave of polls in one statement', () => {
  it('leases each endpoint its own jobs, in order, as leaseJobs would, and fails those past their deadline', async () => {
    const [a, b, c, d] = (await seedFleet(db.db, { prefix: 'lmany', testEndpoints: 0, endpoints: 4 })).endpointIds as [
      string,
      string,
      string,
      string,
    ];
    const t = new Date('2031-01-01T00:00:00Z');
    const at = (s: number) => new Date(t.getTime() + s * 1000);
    await db.db.insert(agentJobs).values([
      { id: 'lm-a3', endpointId: a, kind: 'install', createdAt: at(-3) },
      { id: 'lm-a1', endpointId: a, kind: 'scan', createdAt: at(-10) },
      { id: 'lm-a2', endpointId: a, kind: 'verify', createdAt: at(-5) },
      { id: 'lm-a-late', endpointId: a, kind: 'install', createdAt: at(-20), deadline: at(-1) },
      // B: one queued, one leased 30 s ago for 60 s (reclaimed only when B's agent says it lost its answers).
      { id: 'lm-b1', endpointId: b, kind: 'install', createdAt: at(-9) },
      { id: 'lm-b0', endpointId: b, kind: 'scan', createdAt: at(-40), state: 'leased', leaseExpiresAt: at(30) },
      // D: not before a minute from now.
      { id: 'lm-d1', endpointId: d, kind: 'install', createdAt: at(-9), notBefore: at(60) },
    ]);
    const leased = await leaseJobsForMany(
      db.db,
      [
        { endpointId: a },
        { endpointId: b, reclaimBefore: at(-1) },
        { endpointId: c },
        { endpointId: d },
        { endpointId: a },
      ],
      { now: t, leaseSeconds: 60 },
    );
    expect(Object.fromEntries([...leased].map(([e, js]) => [e, js.map((j) => j.id)]))).toEqual({
      [a]: ['lm-a1', 'lm-a2', 'lm-a3'],
      [b]: ['lm-b0', 'lm-b1'],
    });
    for (const j of leased.get(a)!) expect(j.leaseExpiresAt).toBe(at(60).toISOString());
    const rows = await db.db.execute<{ id: string; state: string; attempts: number }>(
      sql`select id, state, attempts from agent_jobs where id like 'lm-%' order by id`,
    );
    expect(Object.fromEntries(rows.rows.map((r) => [r.id, [r.state, r.attempts]]))).toEqual({
      'lm-a1': ['leased', 1],
      'lm-a2': ['leased', 1],
      'lm-a3': ['leased', 1],
      'lm-a-late': ['failed', 0],
      'lm-b0': ['leased', 1],
      'lm-b1': ['leased', 1],
      'lm-d1': ['queued', 0],
    });
    // Nothing left to lease: a second statement hands out nothing (the leases are current).
    expect(
      (await leaseJobsForMany(db.db, [{ endpointId: a }, { endpointId: b }], { now: t, leaseSeconds: 60 })).size,
    ).toBe(0);
    // The single-endpoint form is the same statement.
    expect((await leaseJobs(db.db, d, { now: at(61), leaseSeconds: 60 })).map((j) => j.id)).toEqual(['lm-d1']);
  });

  it('statements racing over the same endpoints never hand out a job twice', async () => {
    const eps = (await seedFleet(db.db, { prefix: 'lrace', testEndpoints: 0, endpoints: 6 })).endpointIds;
    const all = eps.flatMap((endpointId) =>
      [0, 1, 2].map((i) => ({ id: `lr-${endpointId}-${i}`, endpointId, kind: 'install' })),
    );
    await db.db.insert(agentJobs).values(all);
    const now = new Date();
    const reqs = eps.map((endpointId) => ({ endpointId }));
    const results = await Promise.all(
      [0, 1, 2, 3].map((k) =>
        leaseJobsForMany(db.db, k % 2 ? reqs : [...reqs].reverse(), { now, leaseSeconds: 60, limit: 2 }),
      ),
    );
    const handed = results.flatMap((m) => [...m.values()].flat().map((j) => j.id));
    expect(new Set(handed).size).toBe(handed.length);
    expect(handed.sort()).toEqual(all.map((j) => j.id).sort());
  });
});
