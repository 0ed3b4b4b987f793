/**
 * The cycle report's compliance before → after: measured over the cycle's scope when it assesses (before any
 * install) and again when it reports, carried to chat, e-mail and ServiceNow alike. Every report used to say
 * "compliance not measured": nothing ever set the two figures.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { endpointPatches } from '../db/schema/index';
import type { CycleStage, CycleStatus } from '../domain/cycle';
import type { ChatNotifier, CycleReport, Mailer } from '../domain/ports';
import { renderCycleReport } from '../integrations/email/render';
import { createLogger } from '../logging';
import { createActivities } from './index';

function statusOf(cycleId: string, scope: CycleStatus['scope']): CycleStatus {
  const at = new Date().toISOString();
  return {
    cycleId,
    policyName: 'cmp',
    stage: 'REPORTING' as CycleStage,
    paused: false,
    emergency: false,
    requestedBy: 'cli:ops',
    scope,
    endpoints: 4,
    patches: 1,
    bySeverity: {},
    approvals: { records: [], received: 0, needed: 0 },
    waves: [],
    reasons: [],
    startedAt: at,
    updatedAt: at,
  };
}

describe('the cycle report carries compliance before and after', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('measures the scope when it assesses and again when it reports', async () => {
    const fleet = await seedFleet(t.db, { prefix: 'cmp', testEndpoints: 0, endpoints: 4 });
    // Another group's endpoint, missing the patch throughout: outside the scope, it must not move the figures.
    await seedFleet(t.db, { prefix: 'cmpother', testEndpoints: 0, endpoints: 1 });
    await saveTestPolicy(t.db, 'cmp', fleet.testGroup);
    const reports: CycleReport[] = [];
    const mailed: CycleReport[] = [];
    const chat = { summary: async (r: CycleReport) => void reports.push(r) } as unknown as ChatNotifier;
    const mailer = { sendCycleReport: async (r: CycleReport) => void mailed.push(r) } as unknown as Mailer;
    const acts = createActivities({ database: t, logger: createLogger('silent'), chat, mailer });
    const env = new MockActivityEnvironment();
    const scope = { groups: [fleet.prodGroup] };
    const started: Awaited<ReturnType<typeof acts.startCycle>> = await env.run(acts.startCycle, {
      cycleId: 'c-cmp',
      workflowId: 'patch-cycle:c-cmp',
      policyName: 'cmp',
      scope,
      requestedBy: 'cli:ops',
    });
    await env.run(acts.identifyAndAssess, { cycleId: 'c-cmp', scope, policy: started.policy });
    // Three of the four endpoints install the patch; an assessment run again does not move "before".
    await t.db
      .update(endpointPatches)
      .set({ state: 'installed', installedAt: new Date() })
      .where(inArray(endpointPatches.endpointId, fleet.endpointIds.slice(0, 3)));
    await env.run(acts.identifyAndAssess, { cycleId: 'c-cmp', scope, policy: started.policy });
    const status = statusOf('c-cmp', scope);
    await env.run(acts.sendReport, { status, outcome: 'COMPLETED' as CycleStage, emails: ['ops@example.test'] });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ complianceBefore: 0, complianceAfter: 75 });
    expect(mailed[0]).toMatchObject({ complianceBefore: 0, complianceAfter: 75 });
    const email = renderCycleReport(mailed[0]!, { publicUrl: 'https://patchops.example.test' });
    expect(email.subject).toContain('compliance 0% → 75%');
    expect(email.subject).not.toContain('not measured');
  });

  it('says "not measured" only for a cycle that never assessed', async () => {
    const reports: CycleReport[] = [];
    const chat = { summary: async (r: CycleReport) => void reports.push(r) } as unknown as ChatNotifier;
    const acts = createActivities({ database: t, logger: createLogger('silent'), chat });
    const env = new MockActivityEnvironment();
    await env.run(acts.sendReport, {
      status: statusOf('c-never', {}),
      outcome: 'FAILED' as CycleStage,
      emails: [],
    });
    expect(reports[0]!.complianceBefore).toBeUndefined();
    expect(renderCycleReport(reports[0]!, { publicUrl: 'https://x.test' }).subject).toContain('not measured');
  });
});
