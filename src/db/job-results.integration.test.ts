/**
 * recordJobResult's patch states (install / verify / rollback / reboot jobs): written in one multi-row upsert, with
 * the same meaning the row-by-row writes had: installed stamps installed_at, missing (and rolled_back) clears it,
 * failed and pending_reboot keep it; patches the catalog never saw are skipped; the last report of a patch wins.
 */
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { recordJobResult } from './agent-jobs';
import { agentJobs, endpointPatches, endpoints, patches } from './schema/index';

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
