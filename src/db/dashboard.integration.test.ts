import { eq, sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { seedFleet } from '../../test/browser/fixtures';
import { overview, slaBreaches } from './dashboard';
import { endpointGroups, endpointPatches, endpoints, groupMembers } from './schema/index';

/** The same figures computed directly from the base tables, to hold the trigger-kept aggregates to. */
async function direct(db: TestDatabase['db']) {
  const os = await db.execute<{ key: string; endpoints: number; compliant: number }>(sql`
    select e.os_family as key, count(*)::int as endpoints,
      count(*) filter (where not exists (select 1 from endpoint_patches p where p.endpoint_id = e.id and p.state in ('missing','failed')))::int as compliant
    from endpoints e where e.status <> 'retired' group by 1 order by 1`);
  const groups = await db.execute<{ key: string; endpoints: number; compliant: number }>(sql`
    select g.name as key, count(*)::int as endpoints,
      count(*) filter (where not exists (select 1 from endpoint_patches p where p.endpoint_id = e.id and p.state in ('missing','failed')))::int as compliant
    from group_members m join endpoint_groups g on g.id = m.group_id join endpoints e on e.id = m.endpoint_id
    where e.status <> 'retired' group by 1 order by 1`);
  const sev = await db.execute<{ severity: string; n: number }>(sql`
    select p.severity, count(*)::int as n from endpoint_patches ep join patches p on p.id = ep.patch_id
    join endpoints e on e.id = ep.endpoint_id
    where ep.state in ('missing','failed') and e.status <> 'retired' group by 1`);
  return {
    byOs: os.rows,
    byGroup: groups.rows,
    bySeverity: Object.fromEntries(sev.rows.map((r) => [r.severity, r.n])),
  };
}

async function maintained(db: TestDatabase['db']) {
  const o = await overview(db);
  return {
    byOs: o.byOs.map(({ key, endpoints, compliant }) => ({ key, endpoints, compliant })),
    byGroup: o.byGroup.map(({ key, endpoints, compliant }) => ({ key, endpoints, compliant })),
    bySeverity: Object.fromEntries(Object.entries(o.bySeverity).filter(([, n]) => n > 0)),
  };
}

describe('maintained dashboard aggregates', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedFleet(t.db, 'a');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('match a direct count after every kind of change the fleet goes through', async () => {
    const check = async (step: string) => expect(await maintained(t.db), step).toEqual(await direct(t.db));
    await check('seeded');
    // A scan installs the missing patch on web-1 and reports a new one on mac-1.
    await t.db
      .update(endpointPatches)
      .set({ state: 'installed' })
      .where(sql`${endpointPatches.endpointId} = 'a-web-1' and ${endpointPatches.patchId} = 'a-DSA-5678-1'`);
    await t.db.insert(endpointPatches).values({ endpointId: 'a-mac-1', patchId: 'a-DSA-5001-1', state: 'missing' });
    await check('after a scan');
    // The failed install is retried and succeeds: web-1 becomes compliant.
    await t.db
      .update(endpointPatches)
      .set({ state: 'installed', lastError: null })
      .where(eq(endpointPatches.endpointId, 'a-web-1'));
    await check('web-1 compliant');
    // Group changes: mac-1 joins web-servers, db-1 leaves db-servers.
    const [web] = await t.db.select().from(endpointGroups).where(eq(endpointGroups.name, 'a-web-servers'));
    await t.db.insert(groupMembers).values({ groupId: web!.id, endpointId: 'a-mac-1' });
    await t.db.delete(groupMembers).where(eq(groupMembers.endpointId, 'a-db-1'));
    await check('membership changes');
    // An endpoint is reinstalled with another OS, one is retired, a new one enrols into a group.
    await t.db.update(endpoints).set({ osFamily: 'linux' }).where(eq(endpoints.id, 'a-db-1'));
    await t.db.update(endpoints).set({ status: 'retired' }).where(eq(endpoints.id, 'a-web-2'));
    await t.db
      .insert(endpoints)
      .values({ id: 'a-new-1', machineId: 'a-m-new-1', hostname: 'a-new-1', osFamily: 'windows' });
    await t.db.insert(groupMembers).values({ groupId: web!.id, endpointId: 'a-new-1' });
    await t.db
      .insert(endpointPatches)
      .values({ endpointId: 'a-new-1', patchId: 'a-KB5034441', state: 'failed', lastError: 'reboot pending' });
    await check('os change, retirement, enrolment');
    // An endpoint with outstanding patches and memberships is deleted; a group is renamed, another deleted.
    await t.db.delete(endpoints).where(eq(endpoints.id, 'a-mac-1'));
    await check('endpoint deleted');
    await t.db.update(endpointGroups).set({ name: 'a-frontends' }).where(eq(endpointGroups.id, web!.id));
    await t.db.delete(endpointGroups).where(eq(endpointGroups.name, 'a-db-servers'));
    await check('deletions and rename');
    // And the rebuild (the repair path) agrees with what the triggers kept.
    const before = await maintained(t.db);
    await t.db.execute(sql`select patchops_rebuild_dashboard_aggregates()`);
    expect(await maintained(t.db)).toEqual(before);
  });

  it('lists SLA breaches most overdue first with their due dates', async () => {
    const now = new Date();
    await t.db.insert(endpointPatches).values({
      endpointId: 'a-db-1',
      patchId: 'a-DSA-5678-1',
      state: 'missing',
      detectedAt: new Date(now.getTime() - 100 * 86_400_000),
    });
    const list = await slaBreaches(t.db, { now });
    expect(list[0]).toMatchObject({
      endpointId: 'a-db-1',
      patchId: 'a-DSA-5678-1',
      severity: 'important',
      daysOverdue: 70,
    });
    expect(list.every((b, i) => i === 0 || list[i - 1]!.daysOverdue >= b.daysOverdue)).toBe(true);
    expect(list.some((b) => b.patchId === 'a-DSA-5001-1')).toBe(false);
  });
});

/** patch_outstanding_daily as kept, and as counted from endpoint_patches. */
async function daily(db: TestDatabase['db']) {
  const kept = await db.execute<{ k: string; n: number }>(sql`
    select patch_id || ' ' || state || ' ' || day as k, n from patch_outstanding_daily where n <> 0 order by 1`);
  const counted = await db.execute<{ k: string; n: number }>(sql`
    select patch_id || ' ' || state || ' ' || (detected_at at time zone 'UTC')::date as k, count(*)::int as n
    from endpoint_patches where state in ('missing', 'failed') group by 1 order by 1`);
  return { kept: kept.rows, counted: counted.rows };
}

// Migration 0020: the counters are kept per statement, summed, in one lock order (issue #15).
describe('outstanding counters kept per statement', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedFleet(t.db, 'd');
    await t.db.insert(endpoints).values([
      { id: 'd-x', machineId: 'd-m-x', hostname: 'd-x', osFamily: 'windows' },
      { id: 'd-y', machineId: 'd-m-y', hostname: 'd-y', osFamily: 'windows' },
    ]);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('one statement of mixed transitions (new, missing → failed, failed → installed, unchanged) keeps every counter', async () => {
    await t.db.execute(sql`
      insert into endpoint_patches (endpoint_id, patch_id, state) values
        ('d-web-1', 'd-DSA-5678-1', 'failed'), ('d-web-1', 'd-DSA-5000-1', 'installed'),
        ('d-web-1', 'd-DSA-5001-1', 'missing'), ('d-db-1', 'd-DSA-5678-1', 'installed'),
        ('d-x', 'd-KB5034441', 'missing'), ('d-x', 'd-DSA-5001-1', 'failed')
      on conflict (endpoint_id, patch_id) do update set state = excluded.state`);
    expect(await maintained(t.db)).toEqual(await direct(t.db));
    const d = await daily(t.db);
    expect(d.kept).toEqual(d.counted);
    await t.db.delete(endpointPatches).where(eq(endpointPatches.endpointId, 'd-x'));
    expect(await maintained(t.db)).toEqual(await direct(t.db));
    const after = await daily(t.db);
    expect(after.kept).toEqual(after.counted);
  });

  // Two connections at once: PostgreSQL only (the embedded PGlite serves one session at a time).
  it.skipIf(!process.env.DATABASE_URL)(
    'two install results that share patches do not deadlock on the rollup rows',
    async () => {
      // x misses P1 and P2, y misses P2 and P3 (P1 < P2 < P3).
      const [p1, p2, p3] = ['d-DSA-5000-1', 'd-DSA-5001-1', 'd-DSA-5678-1'];
      await t.db.delete(endpointPatches).where(sql`${endpointPatches.endpointId} in ('d-x', 'd-y')`);
      for (const [e, p] of [
        ['d-x', p1],
        ['d-x', p2],
        ['d-y', p2],
        ['d-y', p3],
      ] as const)
        await t.db.insert(endpointPatches).values({ endpointId: e, patchId: p, state: 'missing' });
      const a = new pg.Client({ connectionString: t.url });
      const b = new pg.Client({ connectionString: t.url });
      await a.connect();
      await b.connect();
      try {
        // y's first result is in flight: it holds P2's counter row.
        await b.query('begin');
        await b.query(`update endpoint_patches set state = 'installed' where endpoint_id = 'd-y' and patch_id = $1`, [
          p2,
        ]);
        // x installs both in one statement and waits for P2's row. The row trigger locked the OS rollup row first
        // (x reached 0 outstanding on P2's row, before P2's counter row).
        const aPid = (await a.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
        const xDone = a.query(`update endpoint_patches set state = 'installed' where endpoint_id = 'd-x'`).then(
          () => 'ok',
          (e: { code?: string }) => e.code ?? 'error',
        );
        await expect
          .poll(
            async () =>
              (
                await b.query<{ w: string | null }>(
                  'select wait_event_type as w from pg_stat_activity where pid = $1',
                  [aPid],
                )
              ).rows[0]?.w,
            { timeout: 10_000 },
          )
          .toBe('Lock');
        // y's second result makes y compliant: it needs the OS rollup row.
        const yDone = await b
          .query(`update endpoint_patches set state = 'installed' where endpoint_id = 'd-y' and patch_id = $1`, [p3])
          .then(
            () => 'ok',
            (e: { code?: string }) => e.code ?? 'error',
          );
        await b.query(yDone === 'ok' ? 'commit' : 'rollback');
        // 40P01 (deadlock_detected) on either side with the row trigger of 0007.
        expect({ x: await xDone, y: yDone }).toEqual({ x: 'ok', y: 'ok' });
      } finally {
        await a.end();
        await b.end();
      }
      expect(await maintained(t.db)).toEqual(await direct(t.db));
      const d = await daily(t.db);
      expect(d.kept).toEqual(d.counted);
    },
    30_000,
  );
});
