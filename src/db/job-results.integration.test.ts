/**
 * recordJobResult's patch states (install / verify / rollback / reboot jobs): written in one multi-row upsert, with
 * the same meaning the row-by-row writes had: installed stamps installed_at, missing (and rolled_back) clears it,
 * failed and pending_reboot keep it; patches the catalog never saw are skipped; the last report of a patch wins.
 * An install, verify or rollback result is written in one statement (recordPatchJobResult); what it writes besides
 * the patch rows, and what happens to a result it does not take, is checked below too.
 */
import { and, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { recordJobResult, recordPatchJobResults } from './agent-jobs';
import { agentJobs, endpointCompliance, endpointPatches, endpoints, patches } from './schema/index';

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
  await tdb.db.insert(endpoints).values({ id: 'ep-1', machineId: 'machine-0001', hostname: 'ep-1', osFamily: 'linux' });
  await tdb.db.insert(patches).values(
    ['P-1', 'P-2', 'P-3', 'P-4'].map((id) => ({
      id,
      title: id,
      vendor: 'Debian',
      type: 'security',
      severity: 'high',
      osFamily: 'linux',
    })),
  );
});
afterAll(async () => {
  await tdb?.close();
});

const job = async (id: string, kind: string) => {
  await tdb.db.insert(agentJobs).values({
    id,
    endpointId: 'ep-1',
    kind,
    payload: {},
    state: 'leased',
    leaseExpiresAt: new Date(Date.now() + 60_000),
  });
};
const states = async () =>
  Object.fromEntries(
    (await tdb.db.select().from(endpointPatches).where(eq(endpointPatches.endpointId, 'ep-1'))).map((r) => [
      r.patchId,
      { state: r.state, installed: r.installedAt?.toISOString() ?? null, error: r.lastError, job: r.lastJobId },
    ]),
  );

describe('recordJobResult: patch states in bulk', () => {
  it('writes every reported state at once, skips unknown patches, the last report of a patch wins', async () => {
    const t1 = new Date('2026-11-30T10:00:00Z');
    await job('install-1', 'install');
    const r = await recordJobResult(
      tdb.db,
      'ep-1',
      'install-1',
      {
        status: 'failed',
        rebootPending: true,
        patches: [
          { patchId: 'P-1', state: 'installed' },
          { patchId: 'P-2', state: 'failed', error: 'dpkg: error processing package' },
          { patchId: 'P-3', state: 'pending_reboot' },
          { patchId: 'NOT-IN-CATALOG', state: 'installed' },
          { patchId: 'P-4', state: 'failed', error: 'first' },
          { patchId: 'P-4', state: 'installed' },
        ],
      },
      t1,
    );
    expect(r.outcome).toBe('recorded');
    expect(await states()).toEqual({
      'P-1': { state: 'installed', installed: t1.toISOString(), error: null, job: 'install-1' },
      'P-2': { state: 'failed', installed: null, error: 'dpkg: error processing package', job: 'install-1' },
      'P-3': { state: 'pending_reboot', installed: null, error: null, job: 'install-1' },
      'P-4': { state: 'installed', installed: t1.toISOString(), error: null, job: 'install-1' },
    });
  });

  it('a rollback clears installed_at (missing); a failed report keeps the installed_at it had', async () => {
    const t2 = new Date('2026-11-30T11:00:00Z');
    await job('rollback-1', 'rollback');
    await recordJobResult(
      tdb.db,
      'ep-1',
      'rollback-1',
      {
        status: 'succeeded',
        rebootPending: false,
        patches: [
          { patchId: 'P-1', state: 'rolled_back' },
          { patchId: 'P-4', state: 'failed', error: 'could not roll back' },
        ],
      },
      t2,
    );
    const s = await states();
    expect(s['P-1']).toEqual({ state: 'missing', installed: null, error: null, job: 'rollback-1' });
    expect(s['P-4']).toEqual({
      state: 'failed',
      installed: '2026-11-30T10:00:00.000Z',
      error: 'could not roll back',
      job: 'rollback-1',
    });
    const [p2] = await tdb.db
      .select()
      .from(endpointPatches)
      .where(and(eq(endpointPatches.endpointId, 'ep-1'), eq(endpointPatches.patchId, 'P-2')));
    expect(p2!.lastJobId).toBe('install-1'); // not reported: untouched
  });
});

describe('recordJobResult: an install result in one statement', () => {
  beforeAll(async () => {
    await tdb.db.insert(endpoints).values({
      id: 'ep-2',
      machineId: 'machine-0002',
      hostname: 'ep-2',
      osFamily: 'linux',
      status: 'unreachable',
      lastScanDigest: 'digest-before',
    });
    await tdb.db.insert(endpointPatches).values([
      { endpointId: 'ep-2', patchId: 'P-1', state: 'missing' },
      { endpointId: 'ep-2', patchId: 'P-2', state: 'missing' },
    ]);
  });
  const job2 = async (id: string, state = 'leased', kind = 'install') => {
    await tdb.db.insert(agentJobs).values({
      id,
      endpointId: 'ep-2',
      kind,
      payload: {},
      state,
      leaseExpiresAt: state === 'leased' ? new Date(Date.now() + 60_000) : null,
    });
  };
  const outstanding = async () =>
    (await tdb.db.select().from(endpointCompliance).where(eq(endpointCompliance.endpointId, 'ep-2')))[0]?.outstanding;
  const result = {
    status: 'succeeded' as const,
    rebootPending: true,
    patches: [{ patchId: 'P-1', state: 'installed' as const }],
  };

  it("writes the job's row, the endpoint's row and the outstanding counters", async () => {
    expect(await outstanding()).toBe(2);
    await job2('install-2');
    const t = new Date('2026-11-30T12:00:00Z');
    expect((await recordJobResult(tdb.db, 'ep-2', 'install-2', result, t)).outcome).toBe('recorded');
    const [j] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'install-2'));
    expect(j).toMatchObject({ state: 'succeeded', error: null, finishedAt: t, leaseExpiresAt: null });
    expect(j!.result).toEqual(result);
    const [ep] = await tdb.db.select().from(endpoints).where(eq(endpoints.id, 'ep-2'));
    expect(ep).toMatchObject({ status: 'active', pendingReboot: true, lastSeenAt: t, lastScanDigest: null });
    expect(await outstanding()).toBe(1);
  });

  it('the same result again is a duplicate; a different one, another endpoint, an unknown job are refused', async () => {
    expect((await recordJobResult(tdb.db, 'ep-2', 'install-2', result)).outcome).toBe('duplicate');
    await expect(recordJobResult(tdb.db, 'ep-2', 'install-2', { ...result, rebootPending: false })).rejects.toThrow(
      /already finished \(succeeded\) with a different result/,
    );
    await job2('install-3');
    await expect(recordJobResult(tdb.db, 'ep-1', 'install-3', result)).rejects.toThrow(/belongs to another agent/);
    await expect(recordJobResult(tdb.db, 'ep-2', 'no-such-job', result)).rejects.toThrow(/no job "no-such-job"/);
    await job2('install-4', 'queued');
    await expect(recordJobResult(tdb.db, 'ep-2', 'install-4', result)).rejects.toThrow(/never handed out/);
    const [j4] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'install-4'));
    expect(j4!.state).toBe('queued');
  });

  it('a late result of a job counted unreachable is recorded', async () => {
    await job2('install-5', 'unreachable');
    const late = { ...result, patches: [{ patchId: 'P-2', state: 'installed' as const }] };
    expect((await recordJobResult(tdb.db, 'ep-2', 'install-5', late)).outcome).toBe('recorded');
    expect(await outstanding()).toBe(0);
  });

  it('two copies of one result at once: one recorded, one duplicate', async () => {
    await job2('verify-6', 'leased', 'verify');
    const v = {
      status: 'succeeded' as const,
      rebootPending: false,
      patches: [{ patchId: 'P-2', state: 'installed' as const }],
    };
    const outcomes = await Promise.all([
      recordJobResult(tdb.db, 'ep-2', 'verify-6', v),
      recordJobResult(tdb.db, 'ep-2', 'verify-6', v),
    ]);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['duplicate', 'recorded']);
  });
});

describe('recordPatchJobResults: many results in one statement', () => {
  // Two fleets of three endpoints with the same patch rows: one gets its results one at a time, the other in one
  // statement; every row and counter must come out the same.
  const fleet = (f: string) => [1, 2, 3].map((i) => `${f}-ep-${i}`);
  beforeAll(async () => {
    for (const f of ['one', 'many']) {
      await tdb.db.insert(endpoints).values(
        fleet(f).map((id, i) => ({
          id,
          machineId: `${id}-m`,
          hostname: id,
          osFamily: 'linux',
          pendingReboot: i === 2,
        })),
      );
      await tdb.db
        .insert(endpointPatches)
        .values(
          fleet(f).flatMap((endpointId) =>
            ['P-1', 'P-2', 'P-3'].map((patchId) => ({ endpointId, patchId, state: 'missing' })),
          ),
        );
      await tdb.db.insert(agentJobs).values(
        fleet(f).map((endpointId, i) => ({
          id: `${endpointId}-job`,
          endpointId,
          kind: ['install', 'verify', 'rollback'][i]!,
          payload: {},
          state: 'leased',
          leaseExpiresAt: new Date(Date.now() + 60_000),
        })),
      );
    }
  });
  const reports = (f: string) => {
    const [a, b, c] = fleet(f) as [string, string, string];
    return [
      {
        endpointId: a,
        jobId: `${a}-job`,
        result: {
          status: 'failed' as const,
          rebootPending: true,
          error: 'one or more patches failed',
          patches: [
            { patchId: 'P-2', state: 'failed' as const, error: 'dpkg: error' },
            { patchId: 'P-1', state: 'installed' as const },
            { patchId: 'NOT-IN-CATALOG', state: 'installed' as const },
          ],
        },
      },
      {
        endpointId: b,
        jobId: `${b}-job`,
        result: {
          status: 'succeeded' as const,
          rebootPending: false,
          patches: [{ patchId: 'P-3', state: 'installed' as const }],
        },
      },
      {
        endpointId: c,
        jobId: `${c}-job`,
        result: {
          status: 'succeeded' as const,
          rebootPending: false,
          patches: [{ patchId: 'P-1', state: 'rolled_back' as const }],
        },
      },
    ];
  };
  const snapshot = async (f: string) => {
    const ids = fleet(f);
    const strip = (s: string | null) => s?.replace(`${f}-`, '') ?? null;
    const eps = await tdb.db.select().from(endpoints).where(inArray(endpoints.id, ids)).orderBy(endpoints.id);
    const rows = await tdb.db
      .select()
      .from(endpointPatches)
      .where(inArray(endpointPatches.endpointId, ids))
      .orderBy(endpointPatches.endpointId, endpointPatches.patchId);
    const jobs = await tdb.db.select().from(agentJobs).where(inArray(agentJobs.endpointId, ids)).orderBy(agentJobs.id);
    const counters = await tdb.db
      .select()
      .from(endpointCompliance)
      .where(inArray(endpointCompliance.endpointId, ids))
      .orderBy(endpointCompliance.endpointId);
    return {
      endpoints: eps.map((e) => [
        strip(e.id),
        e.status,
        e.pendingReboot,
        e.lastSeenAt?.toISOString(),
        e.lastScanDigest,
      ]),
      patches: rows.map((r) => [
        strip(r.endpointId),
        r.patchId,
        r.state,
        r.installedAt?.toISOString() ?? null,
        r.lastError,
        strip(r.lastJobId),
      ]),
      jobs: jobs.map((j) => [strip(j.id), j.state, j.error, j.result, j.finishedAt?.toISOString(), j.leaseExpiresAt]),
      outstanding: counters.map((c) => [strip(c.endpointId), c.outstanding]),
    };
  };

  it('writes exactly what recording them one at a time writes, and says which it recorded', async () => {
    const t = new Date('2026-12-01T08:00:00Z');
    for (const r of reports('one'))
      expect((await recordJobResult(tdb.db, r.endpointId, r.jobId, r.result, t)).outcome).toBe('recorded');
    // The batch also carries a result for a job it must not take (not leased: never handed out).
    await tdb.db.insert(agentJobs).values({ id: 'many-queued-job', endpointId: 'ep-1', kind: 'install', payload: {} });
    const recorded = await recordPatchJobResults(
      tdb.db,
      [...reports('many'), { endpointId: 'ep-1', jobId: 'many-queued-job', result: reports('many')[1]!.result }],
      t,
    );
    expect([...recorded].sort()).toEqual(fleet('many').map((id) => `${id}-job`));
    const [one, many] = [await snapshot('one'), await snapshot('many')];
    expect(many).toEqual(one);
    expect(many.outstanding).toEqual([
      ['ep-1', 2],
      ['ep-2', 2],
      ['ep-3', 3],
    ]);
    const [q] = await tdb.db.select().from(agentJobs).where(eq(agentJobs.id, 'many-queued-job'));
    expect(q!.state).toBe('queued');
    // Again: nothing is taken (the jobs are finished); recordJobResult answers those as duplicates.
    expect((await recordPatchJobResults(tdb.db, reports('many'), t)).size).toBe(0);
  });
});
