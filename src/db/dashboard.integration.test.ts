import { eq, sql } from 'drizzle-orm';
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
