import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { connectDatabase } from './client';
import { startEmbeddedPostgres } from './embedded';
import { runMigrations } from './migrate';
import { freePort } from '../temporal/dev-server';
import { endpoints } from './schema/index';

async function migrateTwiceAndCheck(db: TestDatabase['db']) {
  await runMigrations(db);
  const count = async () =>
    Number(
      ((await db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`)).rows[0] as { n: number }).n,
    );
  const before = await count();
  expect(before).toBeGreaterThan(0);
  await runMigrations(db); // a second time: a no-op
  expect(await count()).toBe(before);
  const tables = (
    await db.execute(sql`select table_name from information_schema.tables where table_schema = 'public'`)
  ).rows.map((r) => (r as { table_name: string }).table_name);
  for (const t of [
    'endpoints',
    'endpoint_groups',
    'group_members',
    'software_inventory',
    'patches',
    'endpoint_patches',
    'deployment_policies',
    'maintenance_windows',
    'patch_cycles',
    'cycle_approvals',
    'agent_jobs',
    'patch_exceptions',
    'audit_log',
  ]) {
    expect(tables).toContain(t);
  }
}

describe('migrations', () => {
  let testDb: TestDatabase | undefined;
  afterAll(async () => {
    await testDb?.close();
  });

  it(`apply twice as a no-op on the test database (${process.env.DATABASE_URL ? 'real PostgreSQL' : 'PGlite'})`, async () => {
    testDb = await createTestDatabase({ migrate: false });
    await migrateTwiceAndCheck(testDb.db);
  });

  it('four processes starting at once take turns: every migration applied once, none fails', async (ctx) => {
    const fresh = await createTestDatabase({ migrate: false });
    if (fresh.kind === 'pglite') {
      await fresh.close();
      // PGlite serves every connection in one session, where an advisory lock is re-entrant: nothing to take turns on.
      ctx.skip(
        'needs real PostgreSQL (DATABASE_URL): PGlite has one session, so advisory locks cannot make processes wait',
      );
    }
    const conns = Array.from({ length: 4 }, () => connectDatabase(fresh.url, { max: 2 }));
    try {
      await Promise.all(conns.map((c) => runMigrations(c.db, c.pool)));
      const rows = (
        await fresh.db.execute(sql`select hash, count(*)::int as n from drizzle.__drizzle_migrations group by hash`)
      ).rows as Array<{ n: number }>;
      expect(rows.length).toBeGreaterThan(10);
      expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
      await fresh.close();
    }
  });

  it('apply twice on embedded PGlite over the wire protocol, and data survives a restart', async () => {
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/patchops-pglite-'));
    const port = await freePort();
    let embedded = await startEmbeddedPostgres({ dataDir: `${dir}/pglite`, port });
    let database = connectDatabase(embedded.url, { max: 3 });
    await migrateTwiceAndCheck(database.db);
    await database.db.insert(endpoints).values({ id: 'ep-1', machineId: 'm-1', hostname: 'web-01', osFamily: 'linux' });
    await database.close();
    await embedded.stop();

    embedded = await startEmbeddedPostgres({ dataDir: `${dir}/pglite`, port });
    database = connectDatabase(embedded.url, { max: 3 });
    await runMigrations(database.db);
    const rows = await database.db.select().from(endpoints);
    expect(rows.map((r) => r.hostname)).toEqual(['web-01']);
    await database.close();
    await embedded.stop();
  });
});
