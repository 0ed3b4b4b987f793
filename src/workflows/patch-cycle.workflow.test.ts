import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type WorkflowHandle } from '@temporalio/client';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { countRows, grantApprovers, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { FakeChangeDesk, RecordingChatNotifier } from '../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities, type Activities } from '../activities/index';
import { verifyAuditChain } from '../db/audit';
import { endpointGroups, maintenanceWindows } from '../db/schema/index';
import { stageEvents } from '../db/cycles';
import { CycleStage, type CycleStatus, type PatchCycleInput } from '../domain/cycle';
import type { DeploymentPolicyInput } from '../domain/policy';
import { createLogger } from '../logging';
import {
  approveCycleUpdate,
  cancelCycleSignal,
  changeRequestStateSignal,
  cycleStatusQuery,
  pauseCycleSignal,
  rejectCycleUpdate,
  resumeCycleSignal,
  rollbackCycleSignal,
} from './messages';
import { patchCycleWorkflow } from './patch-cycle';

let db: TestDatabase;
let t: WorkflowTestEnv;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
});
afterAll(async () => {
  await t?.teardown();
  await db?.close();
});

interface Setup {
  prefix: string;
  policy: string;
  input: PatchCycleInput;
  fleet: Awaited<ReturnType<typeof seedFleet>>;
}

type PolicyOverrides = Partial<DeploymentPolicyInput> | ((testGroup: string) => Partial<DeploymentPolicyInput>);

async function setup(
  o: {
    testEndpoints?: number;
    endpoints?: number;
    policy?: PolicyOverrides;
    patch?: { type?: string; severity?: string };
  } = {},
): Promise<Setup> {
  const prefix = `p${randomUUID().slice(0, 8)}`;
  const fleet = await seedFleet(db.db, {
    prefix,
    testEndpoints: o.testEndpoints ?? 2,
    endpoints: o.endpoints ?? 6,
    ...(o.patch ? { patch: o.patch } : {}),
  });
  await saveTestPolicy(
    db.db,
    prefix,
    fleet.testGroup,
    typeof o.policy === 'function' ? o.policy(fleet.testGroup) : o.policy,
  );
  return {
    prefix,
    policy: prefix,
    fleet,
    input: {
      cycleId: `c-${prefix}`,
      policyName: prefix,
      scope: { groups: [fleet.testGroup, fleet.prodGroup] },
      requestedBy: 'cli:requester',
    },
  };
}

function activities(
  chat: RecordingChatNotifier,
  extra: Partial<Activities> = {},
  changeDesk: FakeChangeDesk | null = null,
): Activities {
  return { ...createActivities({ database: db, logger: createLogger('silent'), chat, changeDesk }), ...extra };
}

async function waitForStage(h: WorkflowHandle, stage: CycleStage, timeoutMs = 20_000): Promise<CycleStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await h.query(cycleStatusQuery);
    if (s.stage === stage) return s;
    if (Date.now() > end) throw new Error(`cycle stayed in ${s.stage}, expected ${stage}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const start = (input: PatchCycleInput) =>
  t.env.client.workflow.start(patchCycleWorkflow, {
    taskQueue: t.taskQueue,
    workflowId: `patch-cycle:${input.cycleId}`,
    args: [input],
  });

describe('patchCycleWorkflow', () => {
  it('walks every stage to COMPLETED with one approval; the validator refuses the requester and non-approvers', async () => {
    const s = await setup();
    await grantApprovers(db.db, ['cli:alice', 'cli:requester']);
    const chat = new RecordingChatNotifier();
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(activities(chat), async () => {
        const h = await start(s.input);
        const st = await waitForStage(h, CycleStage.AWAIT_APPROVAL);
        expect(st.test?.state).toBe('done');
        expect(st.test?.succeeded).toBe(2);
        expect(st.approvals.needed).toBe(1);
        await expect(
          h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:requester', channel: 'cli' }] }),
        ).rejects.toThrow(WorkflowUpdateFailedError);
        await expect(
          h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:mallory', channel: 'cli' }] }),
        ).rejects.toThrow(WorkflowUpdateFailedError);
        const r = await h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:alice', channel: 'cli' }] });
        expect(r).toMatchObject({ outcome: 'approved', approvalsReceived: 1, approvalsNeeded: 1 });
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.waves.map((w) => w.state)).toEqual(['done', 'done']);
      expect(result.waves.reduce((n, w) => n + w.succeeded, 0)).toBe(6);
      const stages = (await stageEvents(db.db, s.input.cycleId)).map((e) => e.stage);
      expect(stages).toEqual([
        'IDENTIFY',
        'ASSESS',
        'TEST',
        'AWAIT_APPROVAL',
        'SCHEDULED',
        'DEPLOYING',
        'VERIFYING',
        'REPORTING',
        'COMPLETED',
      ]);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'install'`)).toBe(8);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'verify'`)).toBe(8);
      expect(await countRows(db.db, 'cycle_approvals', `cycle_id = '${s.input.cycleId}'`)).toBe(1);
      expect(chat.approvals).toHaveLength(1);
      expect(chat.summaries[0]?.outcome).toBe(CycleStage.COMPLETED);
      const row = await db.db.execute<{ stage: string; summary: { stage: string } }>(
        sql`select stage, summary from patch_cycles where id = ${s.input.cycleId}`,
      );
      expect(row.rows[0]).toMatchObject({ stage: 'COMPLETED', summary: { stage: 'COMPLETED' } });
      expect((await verifyAuditChain(db.db)).ok).toBe(true);
    } finally {
      await agent.stop();
    }
  });

  it('a rejection vetoes: the cycle ends CANCELLED with the reason, nothing deployed', async () => {
    const s = await setup({ policy: { test: { group: null } } });
    await grantApprovers(db.db, ['cli:bob']);
    const chat = new RecordingChatNotifier();
    const result = await t.withWorker(activities(chat), async () => {
      const h = await start(s.input);
      await waitForStage(h, CycleStage.AWAIT_APPROVAL);
      await expect(
        h.executeUpdate(rejectCycleUpdate, { args: [{ identity: 'cli:bob', channel: 'cli' }] }),
      ).rejects.toThrow(WorkflowUpdateFailedError);
      const r = await h.executeUpdate(rejectCycleUpdate, {
        args: [{ identity: 'cli:bob', channel: 'cli', reason: 'freeze week' }],
      });
      expect(r.outcome).toBe('rejected');
      return h.result();
    });
    expect(result.stage).toBe(CycleStage.CANCELLED);
    expect(result.outcome).toMatch(/rejected by cli:bob: freeze week/);
    expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}'`)).toBe(0);
  });

  it('quorum of two for high risk; reminders, escalation, and a timeout that ends the cycle FAILED', async () => {
    const s = await setup({
      patch: { severity: 'critical' },
      policy: {
        test: { group: null },
        approval: {
          approverGroups: ['ops'],
          escalationGroups: ['managers'],
          quorum: { low: 1, moderate: 1, high: 2, critical: 2 },
        },
      },
    });
    await grantApprovers(db.db, ['cli:carol']);
    await grantApprovers(db.db, ['cli:manager'], 'managers');
    const chat = new RecordingChatNotifier();
    const real = createActivities({ database: db, logger: createLogger('silent'), chat });
    // Time comes in through the policy the activity returns: seconds instead of the policy minimums.
    const startCycle: typeof real.startCycle = async (i) => {
      const r = await real.startCycle(i);
      return {
        ...r,
        policy: {
          ...r.policy,
          approval: { ...r.policy.approval, reminderSeconds: 1, escalateAfterSeconds: 2, timeoutSeconds: 5 },
        },
      };
    };
    const result = await t.withWorker({ ...real, startCycle }, async () => {
      const h = await start(s.input);
      const st = await waitForStage(h, CycleStage.AWAIT_APPROVAL);
      expect(st.approvals.needed).toBe(2);
      // The escalation approver may not vote before escalation.
      await expect(
        h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:manager', channel: 'cli' }] }),
      ).rejects.toThrow(WorkflowUpdateFailedError);
      const r = await h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:carol', channel: 'cli' }] });
      expect(r).toMatchObject({ outcome: 'pending', approvalsReceived: 1, approvalsNeeded: 2 });
      return h.result();
    });
    expect(result.stage).toBe(CycleStage.FAILED);
    expect(result.outcome).toMatch(/approval timed out/);
    expect(chat.approvals.some((a) => a.notice === 'reminder')).toBe(true);
    const esc = chat.approvals.find((a) => a.notice === 'escalation');
    expect(esc?.approvers).toContain('cli:manager');
  });

  it('a test ring over its threshold rolls back and ends before anyone is asked to approve', async () => {
    const s = await setup();
    await grantApprovers(db.db, ['cli:dave']);
    const chat = new RecordingChatNotifier();
    const testRing = s.fleet.endpointIds.filter((id) => id.includes('-t'));
    const agent = startFakeAgent(db.db, { failing: { endpointIds: testRing, kinds: ['install'] } });
    try {
      const result = await t.withWorker(activities(chat), () => start(s.input).then((h) => h.result()));
      expect(result.stage).toBe(CycleStage.ROLLED_BACK);
      expect(result.outcome).toMatch(/test ring failed/);
      expect(chat.approvals).toHaveLength(0);
      const stages = (await stageEvents(db.db, s.input.cycleId)).map((e) => e.stage);
      expect(stages).not.toContain('AWAIT_APPROVAL');
    } finally {
      await agent.stop();
    }
  });

  it('a wave over its threshold pauses and asks; rollback rolls back the endpoints already done', async () => {
    const s = await setup({ policy: { autoApprove: { types: ['security'] } } });
    const chat = new RecordingChatNotifier();
    const prod = s.fleet.endpointIds.filter((id) => id.includes('-e'));
    const agent = startFakeAgent(db.db, { failing: { endpointIds: prod, kinds: ['install'] } });
    try {
      const result = await t.withWorker(activities(chat), async () => {
        const h = await start(s.input);
        const end = Date.now() + 20_000;
        let st = await h.query(cycleStatusQuery);
        while (!st.paused && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 200));
          st = await h.query(cycleStatusQuery);
        }
        expect(st.paused).toBe(true);
        expect(st.stage).toBe(CycleStage.DEPLOYING);
        // The status flips to paused before the notify activity has run: wait for the question itself.
        for (const until = Date.now() + 10_000; chat.pauses.length === 0 && Date.now() < until;)
          await new Promise((r) => setTimeout(r, 100));
        expect(chat.pauses).toHaveLength(1);
        await h.signal(rollbackCycleSignal, { by: 'cli:ops', reason: 'bad patch' });
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.ROLLED_BACK);
      expect(result.waves[1]?.state).not.toBe('done');
      // The test ring succeeded, so its endpoints are rolled back.
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'rollback'`)).toBe(2);
    } finally {
      await agent.stop();
    }
  });

  it('resume after a threshold pause continues with the next wave to COMPLETED', async () => {
    const s = await setup({ testEndpoints: 0, policy: { autoApprove: { types: ['security'] } } });
    const chat = new RecordingChatNotifier();
    const agent = startFakeAgent(db.db, { failing: { endpointIds: s.fleet.endpointIds, kinds: ['install'] } });
    try {
      const result = await t.withWorker(activities(chat), async () => {
        const h = await start(s.input);
        const end = Date.now() + 20_000;
        while (!(await h.query(cycleStatusQuery)).paused && Date.now() < end)
          await new Promise((r) => setTimeout(r, 200));
        agent.setFailing([]);
        await h.signal(resumeCycleSignal, { by: 'cli:ops' });
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      // batchSize 2: the first two fail, the threshold (30 %) trips, the third is never handed out.
      expect(result.waves[0]).toMatchObject({ failed: 2, pending: 1 });
      expect(result.waves[1]?.succeeded).toBe(3);
    } finally {
      await agent.stop();
    }
  });

  it('cancel while waiting for approval ends CANCELLED', async () => {
    const s = await setup({ policy: { test: { group: null } } });
    await grantApprovers(db.db, ['cli:erin']);
    const result = await t.withWorker(activities(new RecordingChatNotifier()), async () => {
      const h = await start(s.input);
      await waitForStage(h, CycleStage.AWAIT_APPROVAL);
      await h.signal(cancelCycleSignal, { by: 'cli:ops', reason: 'not today' });
      return h.result();
    });
    expect(result.stage).toBe(CycleStage.CANCELLED);
    expect(result.outcome).toBe('cancelled by cli:ops: not today');
  });

  it('a pause whose audit append keeps failing is retried until it is recorded, not dropped', async () => {
    const s = await setup({ policy: { test: { group: null } } });
    await grantApprovers(db.db, ['cli:erin']);
    const real = createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() });
    let failures = 0;
    // The database is away for the first three tries (more than the notification activities' three attempts).
    const recordControl: typeof real.recordControl = async (i) => {
      if (failures < 3) {
        failures += 1;
        throw new Error('the audit log could not be written (Connection terminated unexpectedly)');
      }
      return real.recordControl(i);
    };
    const audited = () =>
      countRows(db.db, 'audit_log', `action = 'cycle.paused' and subject_id = '${s.input.cycleId}'`);
    await t.withWorker(activities(new RecordingChatNotifier(), { recordControl }), async () => {
      const h = await start(s.input);
      await waitForStage(h, CycleStage.AWAIT_APPROVAL);
      await h.signal(pauseCycleSignal, { by: 'cli:ops', reason: 'db maintenance' });
      for (let i = 0; i < 150 && (await audited()) === 0; i++) await new Promise((r) => setTimeout(r, 200));
      await h.signal(cancelCycleSignal, { by: 'cli:ops', reason: 'done testing' });
      return h.result();
    });
    expect(failures).toBe(3);
    expect(await audited()).toBe(1);
  }, 60_000);

  it('waits for its window (notBefore seconds ahead) and retried dispatches create no duplicate jobs', async () => {
    const s = await setup({ testEndpoints: 0, policy: { autoApprove: { types: ['security'] } } });
    const chat = new RecordingChatNotifier();
    const real = createActivities({ database: db, logger: createLogger('silent'), chat });
    let failOnce = true;
    // The first dispatch writes its rows, then "loses" its answer: Temporal retries it.
    const dispatchCycleJobs: typeof real.dispatchCycleJobs = async (i) => {
      const r = await real.dispatchCycleJobs(i);
      if (failOnce && i.kind === 'install') {
        failOnce = false;
        throw new Error('connection reset after commit');
      }
      return r;
    };
    const notBefore = new Date(Date.now() + 4000).toISOString();
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker({ ...real, dispatchCycleJobs }, () =>
        start({ ...s.input, notBefore }).then((h) => h.result()),
      );
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(failOnce).toBe(false);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'install'`)).toBe(6);
      expect(
        await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${s.input.cycleId}' and kind = 'install' and created_at < '${notBefore}'`,
        ),
      ).toBe(0);
    } finally {
      await agent.stop();
    }
  });

  it("a wave waits for its group's maintenance window (opening seconds from now) and stamps the jobs with it", async () => {
    const s = await setup({
      testEndpoints: 0,
      endpoints: 2,
      policy: {
        autoApprove: { types: ['security'] },
        maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
        waves: [{ name: 'all', percent: 100 }],
      },
    });
    const opens = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
    const stamp = opens
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const [w] = await db.db
      .insert(maintenanceWindows)
      .values({
        name: `${s.prefix}-window`,
        rrule: `DTSTART:${stamp}\nRRULE:FREQ=DAILY`,
        timezone: 'UTC',
        durationMinutes: 5,
      })
      .returning();
    await db.db
      .update(endpointGroups)
      .set({ maintenanceWindowId: w!.id })
      .where(eq(endpointGroups.name, s.fleet.prodGroup));
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(activities(new RecordingChatNotifier()), () =>
        start(s.input).then((h) => h.result()),
      );
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.waves[0]).toMatchObject({
        windowStart: opens.toISOString(),
        windowEnd: new Date(opens.getTime() + 5 * 60_000).toISOString(),
        succeeded: 2,
      });
      expect(
        await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${s.input.cycleId}' and kind = 'install' and not_before = '${opens.toISOString()}' and created_at >= '${opens.toISOString()}'`,
        ),
      ).toBe(2);
    } finally {
      await agent.stop();
    }
  });

  it('emergency: the shorter soak applies, and a change request must be scheduled before deploying; it is closed successful', async () => {
    const s = await setup({
      testEndpoints: 1,
      endpoints: 2,
      policy: (testGroup) => ({
        test: { group: testGroup, soakSeconds: 3600, failureThreshold: { percent: 50, count: 0 } },
        autoApprove: { types: ['security'] },
        change: { type: 'normal', pollSeconds: 5 },
        emergencyOverrides: { soakSeconds: 1, ignoreWindows: true, changeType: 'emergency' },
      }),
    });
    const desk = new FakeChangeDesk();
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(activities(new RecordingChatNotifier(), {}, desk), async () => {
        const h = await start({ ...s.input, emergency: true });
        const end = Date.now() + 20_000;
        let st = await h.query(cycleStatusQuery);
        while (!st.changeNumber && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 200));
          st = await h.query(cycleStatusQuery);
        }
        expect(st.emergency).toBe(true);
        await new Promise((r) => setTimeout(r, 1000));
        expect((await h.query(cycleStatusQuery)).stage).toBe(CycleStage.AWAIT_APPROVAL);
        await h.signal(changeRequestStateSignal, {
          changeNumber: st.changeNumber!,
          state: 'scheduled',
          approval: 'approved',
        });
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(desk.opened[0]?.type).toBe('emergency');
      expect(desk.closed[0]).toMatchObject({ closeCode: 'successful' });
    } finally {
      await agent.stop();
    }
  });

  it('a pause mid-wave holds the installs not yet handed out until resume; nothing is installed meanwhile', async () => {
    const s = await setup({ policy: { test: { group: null } } });
    await grantApprovers(db.db, ['cli:alice']);
    const chat = new RecordingChatNotifier();
    const jobsIn = (state: string) =>
      countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'install' and state = '${state}'`);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (const end = Date.now() + 20_000; !(await ok()); await new Promise((r) => setTimeout(r, 100)))
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    };
    let agent: ReturnType<typeof startFakeAgent> | undefined;
    try {
      const result = await t.withWorker(activities(chat), async () => {
        const h = await start(s.input);
        await waitForStage(h, CycleStage.AWAIT_APPROVAL);
        await h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:alice', channel: 'cli' }] });
        // Wave 1 (concurrency 3, batch 2): two installs handed out, the others held by the limits. No agent yet.
        await until('wave 1 installs to be queued', async () => (await jobsIn('queued')) === 2);
        await h.signal(pauseCycleSignal, { by: 'cli:ops-admin', reason: 'vendor reports a regression' });
        const wave1 = await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${s.input.cycleId}' and kind = 'install' and wave = 1`,
        );
        await until(
          'the queued installs to be held',
          async () => (await jobsIn('queued')) === 0 && (await jobsIn('held')) === wave1,
        );
        agent = startFakeAgent(db.db, { intervalMs: 100 });
        await new Promise((r) => setTimeout(r, 2500)); // more than two of the wave's polls
        expect(await jobsIn('succeeded')).toBe(0);
        expect(await jobsIn('held')).toBe(wave1);
        expect((await h.query(cycleStatusQuery)).paused).toBe(true);
        await h.signal(resumeCycleSignal, { by: 'cli:ops-admin' });
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.waves.reduce((n, w) => n + w.succeeded, 0)).toBe(8); // no test ring: all eight endpoints in the waves
      const audit = await db.db.execute<{ action: string; details: Record<string, unknown> }>(
        sql`select action, details from audit_log where subject_id = ${s.input.cycleId} and action in ('cycle.paused', 'cycle.resumed') order by id`,
      );
      expect(audit.rows).toEqual([
        {
          action: 'cycle.paused',
          details: { reason: 'vendor reports a regression', seq: 1, applied: true, installsHeld: 2 },
        },
        { action: 'cycle.resumed', details: { seq: 2, applied: true } },
      ]);
    } finally {
      await agent?.stop();
    }
  });

  it('a change cancelled while SCHEDULED is being recorded still ends the cycle CANCELLED, deploying nothing', async () => {
    const s = await setup({
      testEndpoints: 0,
      policy: { autoApprove: { types: ['security'] }, change: { type: 'normal', pollSeconds: 5 } },
    });
    const desk = new FakeChangeDesk();
    const real = createActivities({
      database: db,
      logger: createLogger('silent'),
      chat: new RecordingChatNotifier(),
      changeDesk: desk,
    });
    let recording!: () => void;
    const schedulingRecorded = new Promise<void>((r) => (recording = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    // SCHEDULED's record waits until the test has sent the change's cancellation: the news comes while it is recorded.
    const recordStage: typeof real.recordStage = async (i) => {
      if (i.stage === CycleStage.SCHEDULED) {
        recording();
        await released;
      }
      return real.recordStage(i);
    };
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(activities(new RecordingChatNotifier(), { recordStage }, desk), async () => {
        const h = await start(s.input);
        const end = Date.now() + 20_000;
        let st = await h.query(cycleStatusQuery);
        while (!st.changeNumber && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 200));
          st = await h.query(cycleStatusQuery);
        }
        const plannedStart = new Date(Date.now() + 15_000).toISOString();
        await h.signal(changeRequestStateSignal, {
          changeNumber: st.changeNumber!,
          state: 'scheduled',
          approval: 'approved',
          plannedStart,
        });
        await schedulingRecorded;
        await h.signal(changeRequestStateSignal, {
          changeNumber: st.changeNumber!,
          state: 'canceled',
          by: 'servicenow:cab',
          reason: 'freeze',
        });
        release();
        return h.result();
      });
      expect(result.stage).toBe(CycleStage.CANCELLED);
      expect(result.outcome).toBe(
        `change ${result.changeNumber} was cancelled while scheduled by servicenow:cab: freeze`,
      );
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and kind = 'install'`)).toBe(0);
    } finally {
      release();
      await agent.stop();
    }
  }, 60_000);

  it('returns only once its handlers have finished: a vote still being recorded when the cycle ends', async () => {
    const s = await setup({ policy: { test: { group: null } } });
    await grantApprovers(db.db, ['cli:bob']);
    const real = createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let recorded = false;
    const recordVote: typeof real.recordVote = async (i) => {
      await released;
      await real.recordVote(i);
      recorded = true;
    };
    const result = await t.withWorker(activities(new RecordingChatNotifier(), { recordVote }), async () => {
      const h = await start(s.input);
      await waitForStage(h, CycleStage.AWAIT_APPROVAL);
      const update = await h.startUpdate(rejectCycleUpdate, {
        args: [{ identity: 'cli:bob', channel: 'cli', reason: 'freeze week' }],
        waitForStage: WorkflowUpdateStage.ACCEPTED,
      });
      // The rejection ends the cycle (the ending runs to its terminal stage) while the vote's record is held.
      try {
        await waitForStage(h, CycleStage.CANCELLED);
        await new Promise((r) => setTimeout(r, 1500));
        expect((await h.describe()).status.name).toBe('RUNNING');
      } finally {
        release(); // the worker shuts down only once the held activity ends
      }
      expect((await update.result()).outcome).toBe('rejected');
      return h.result();
    });
    expect(recorded).toBe(true);
    expect(result.stage).toBe(CycleStage.CANCELLED);
  }, 60_000);
});
