import { MockActivityEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { patches } from '../db/schema/index';
import { KevIndex } from '../domain/kev';
import { createLogger } from '../logging';
import { createActivities } from './index';

describe('identify and assess with the CISA KEV catalog', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.close();
  });

  it('flags a patch whose CVE is in KEV as known exploited, makes it P1 and teaches the catalog', async () => {
    const fleet = await seedFleet(t.db, { prefix: 'kev', testEndpoints: 0, endpoints: 3 });
    // Scanned without the flag: CVE-2024-3400 (PAN-OS GlobalProtect) is in the bundled KEV catalog.
    await t.db
      .update(patches)
      .set({ cves: ['CVE-2024-3400'], knownExploited: false, severity: 'moderate', cvss: 5.0 })
      .where(eq(patches.id, fleet.patchId));
    await saveTestPolicy(t.db, 'kev', fleet.testGroup);
    const acts = createActivities({ database: t, logger: createLogger('silent') });
    const env = new MockActivityEnvironment();
    const started: Awaited<ReturnType<typeof acts.startCycle>> = await env.run(acts.startCycle, {
      cycleId: 'c-kev',
      workflowId: 'patch-cycle:c-kev',
      policyName: 'kev',
      scope: { groups: [fleet.prodGroup] },
      requestedBy: 'cli:ops',
    });
    const result: Awaited<ReturnType<typeof acts.identifyAndAssess>> = await env.run(acts.identifyAndAssess, {
      cycleId: 'c-kev',
      scope: { groups: [fleet.prodGroup] },
      policy: started.policy,
    });
    expect(result.patches).toBe(1);
    expect(result.topPatches[0]).toMatchObject({ patchId: fleet.patchId, knownExploited: true });
    expect(result.reasons.join('\n')).toMatch(/P1: known exploited CVE-2024-3400/);
    const [row] = await t.db.select().from(patches).where(eq(patches.id, fleet.patchId));
    expect(row!.knownExploited).toBe(true);
  });

  it('uses the catalog it is given, not the bundled one', async () => {
    const fleet = await seedFleet(t.db, { prefix: 'kevdep', testEndpoints: 0, endpoints: 2 });
    // CVE-2099-0001 is in no real catalog: only the injected one can make the patch known exploited.
    await t.db
      .update(patches)
      .set({ cves: ['CVE-2099-0001'], knownExploited: false, severity: 'moderate', cvss: 5.0 })
      .where(eq(patches.id, fleet.patchId));
    await saveTestPolicy(t.db, 'kevdep', fleet.testGroup);
    let loads = 0;
    const catalog = KevIndex.fromCatalog({
      catalogVersion: '2099.01.01',
      vulnerabilities: [{ cveID: 'CVE-2099-0001' }],
    });
    const acts = createActivities({
      database: t,
      logger: createLogger('silent'),
      kevCatalog: async () => {
        loads++;
        return catalog;
      },
    });
    const env = new MockActivityEnvironment();
    const started: Awaited<ReturnType<typeof acts.startCycle>> = await env.run(acts.startCycle, {
      cycleId: 'c-kevdep',
      workflowId: 'patch-cycle:c-kevdep',
      policyName: 'kevdep',
      scope: { groups: [fleet.prodGroup] },
      requestedBy: 'cli:ops',
    });
    const result: Awaited<ReturnType<typeof acts.identifyAndAssess>> = await env.run(acts.identifyAndAssess, {
      cycleId: 'c-kevdep',
      scope: { groups: [fleet.prodGroup] },
      policy: started.policy,
    });
    expect(loads).toBe(1);
    expect(result.topPatches[0]).toMatchObject({ patchId: fleet.patchId, knownExploited: true });
    expect(result.reasons.join('\n')).toMatch(/P1: known exploited CVE-2099-0001/);
  });
});
