import { afterAll, beforeAll, expect, it } from 'vitest';
import { complianceTrend } from '../db/dashboard';
import { createLogger } from '../logging';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { seedFleet } from '../../test/browser/fixtures';
import { startDashboardJobs } from './dashboard-jobs';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await seedFleet(t.db, 'j');
});
afterAll(async () => {
  await t?.close();
});

it('records a compliance snapshot on its timer, at most one per hour, and stops', async () => {
  const jobs = startDashboardJobs({ db: t.db, logger: createLogger('silent'), snapshotEveryMs: 20 });
  try {
    await expect.poll(async () => (await complianceTrend(t.db, { limit: 10 })).length, { timeout: 10_000 }).toBe(1);
    const [point] = await complianceTrend(t.db, { limit: 10 });
    expect(point!.compliancePct).toBe(50);
    // The next ticks find a point younger than an hour and skip.
    await new Promise((r) => setTimeout(r, 200));
    expect(await complianceTrend(t.db, { limit: 10 })).toHaveLength(1);
    expect(await jobs.runOnce()).toBe(false);
  } finally {
    jobs.stop();
  }
});
