import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedFleet } from '../../test/helpers/cycle-fixtures';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import type { AssessedPatch } from '../domain/risk';
import { createCycleRow } from './cycles';
import {
  endpointsOfWaves,
  replaceCycleTargets,
  replaceCycleWaves,
  targetEndpointIds,
  targetHostnames,
  waveMaintenanceWindows,
} from './cycle-plan';
import { cycleTargets, endpointGroups, maintenanceWindows } from './schema/index';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.close();
});

async function cycle(cycleId: string): Promise<void> {
  await createCycleRow(t.db, {
    cycleId,
    workflowId: `patch-cycle:${cycleId}`,
    policyName: 'p',
    policyVersion: 1,
    scope: {},
    emergency: false,
    requestedBy: 'cli:test',
  });
}

function assessed(patchId: string, o: Partial<AssessedPatch>): AssessedPatch {
  return {
    patchId,
    decision: 'include',
    priority: 'P2',
    riskScore: 61,
    slaDue: '2026-12-20T00:00:00.000Z',
    endpointIds: [],
    skippedEndpointIds: [],
    reason: 'missing',
    ...o,
  };
}

describe('the cycle plan', () => {
  it('writes the targets from the assessment, replacing the old ones, and reads back where included patches go', async () => {
    const f = await seedFleet(t.db, { prefix: 'plan', testEndpoints: 0, endpoints: 4 });
    const [e0, e1, e2, e3] = f.endpointIds as [string, string, string, string];
    await cycle('c-plan');
    await replaceCycleTargets(t.db, 'c-plan', [assessed(f.patchId, { endpointIds: [e3] })]);
    await replaceCycleTargets(t.db, 'c-plan', [
      assessed(f.patchId, { endpointIds: [e0, e1], skippedEndpointIds: [e2], reason: 'P2: important' }),
      assessed('KB-other', { decision: 'dropped', priority: 'P4', endpointIds: [], reason: 'superseded' }),
    ]);
    const rows = await t.db
      .select()
      .from(cycleTargets)
      .where(eq(cycleTargets.cycleId, 'c-plan'))
      .orderBy(cycleTargets.endpointId);
    expect(
      rows.map((r) => ({
        endpointId: r.endpointId,
        decision: r.decision,
        priority: r.priority,
        riskScore: r.riskScore,
        slaDue: r.slaDue?.toISOString() ?? null,
      })),
    ).toEqual([
      { endpointId: e0, decision: 'include', priority: 2, riskScore: 61, slaDue: '2026-12-20T00:00:00.000Z' },
      { endpointId: e1, decision: 'include', priority: 2, riskScore: 61, slaDue: '2026-12-20T00:00:00.000Z' },
      { endpointId: e2, decision: 'skipped', priority: 2, riskScore: 61, slaDue: null },
    ]);
    expect((await targetEndpointIds(t.db, 'c-plan')).sort()).toEqual([e0, e1]);
    expect((await targetHostnames(t.db, 'c-plan', 10)).sort()).toEqual([`${e0}.example.test`, `${e1}.example.test`]);
    expect(await targetHostnames(t.db, 'c-plan', 1)).toHaveLength(1);
  });

  it('reads nothing for a cycle without a plan', async () => {
    expect(await targetEndpointIds(t.db, 'c-none')).toEqual([]);
    expect(await targetHostnames(t.db, 'c-none', 10)).toEqual([]);
    expect(await endpointsOfWaves(t.db, 'c-none', [0, 1])).toEqual([]);
    expect(await waveMaintenanceWindows(t.db, 'c-none', 1)).toEqual([]);
  });

  it('writes the waves (test ring as wave 0), replacing the old plan, and reads a wave or one endpoint of it', async () => {
    const f = await seedFleet(t.db, { prefix: 'waves', testEndpoints: 1, endpoints: 3 });
    const [t0, e0, e1, e2] = f.endpointIds as [string, string, string, string];
    await cycle('c-waves');
    await replaceCycleWaves(t.db, 'c-waves', { test: { endpointIds: [e2] }, waves: [] });
    await replaceCycleWaves(t.db, 'c-waves', {
      test: { endpointIds: [t0] },
      waves: [
        { index: 1, name: 'pilot', endpointIds: [e0], batches: [[e0]] },
        { index: 2, name: 'broad', endpointIds: [e1, e2], batches: [[e1], [e2]] },
      ],
    });
    expect(await endpointsOfWaves(t.db, 'c-waves', [0])).toEqual([t0]);
    expect((await endpointsOfWaves(t.db, 'c-waves', [1, 2])).sort()).toEqual([e0, e1, e2]);
    expect(await endpointsOfWaves(t.db, 'c-waves', [2], e1)).toEqual([e1]);
    expect(await endpointsOfWaves(t.db, 'c-waves', [2], e0)).toEqual([]);
  });

  it('reads the distinct maintenance windows of the groups a wave is in', async () => {
    const f = await seedFleet(t.db, { prefix: 'mw', testEndpoints: 0, endpoints: 2 });
    const [w] = await t.db
      .insert(maintenanceWindows)
      .values({
        name: 'mw-sat',
        rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0',
        timezone: 'Europe/London',
        durationMinutes: 240,
      })
      .returning();
    await t.db.update(endpointGroups).set({ maintenanceWindowId: w!.id }).where(eq(endpointGroups.name, f.prodGroup));
    await cycle('c-mw');
    await replaceCycleWaves(t.db, 'c-mw', {
      test: { endpointIds: [] },
      waves: [{ index: 1, name: 'all', endpointIds: f.endpointIds, batches: [f.endpointIds] }],
    });
    expect(await waveMaintenanceWindows(t.db, 'c-mw', 1)).toEqual([
      {
        rrule: 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0',
        timezone: 'Europe/London',
        durationMinutes: 240,
        blackoutDates: [],
      },
    ]);
    expect(await waveMaintenanceWindows(t.db, 'c-mw', 2)).toEqual([]);
  });
});
