/**
 * Issue #17 (cycles): every way a cycle ends is visible with its reason. Real patch-cycle workflow on the real
 * Temporal dev server and database; cycles started through the real CycleService (what chat and the CLI call);
 * the product's ServiceNow client and change desk over HTTP to the ServiceNow fake (failures injected there,
 * in ServiceNow's wire format); work notes through the real decorator; mail through the real SmtpMailer to an
 * in-process SMTP server; scans answered through the gateway's own lease and result functions.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../test/fakes/servicenow';
import { SmtpSink } from '../../test/fakes/smtp-sink';
import { countRows, grantApprovers, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities, type Activities } from '../activities/index';
import { leaseJobs, recordJobResult } from '../db/agent-jobs';
import { getCycleRow, stageEvents } from '../db/cycles';
import { CycleStage, TERMINAL_STAGES, workflowIdForCycle, type CycleStatus } from '../domain/cycle';
import type { DeploymentPolicyInput } from '../domain/policy';
import { SmtpMailer } from '../integrations/email/smtp-mailer';
import { ServiceNowChangeDesk } from '../integrations/servicenow/change-desk';
import { ServiceNowClient } from '../integrations/servicenow/client';
import { withChangeWorkNotes } from '../integrations/servicenow/work-notes';
import { createLogger } from '../logging';
import { reconcileEndedCycles } from '../runtime/cycle-reconciler';
import { formatStatus } from '../commands/execute';
import { createCycleService } from '../services/temporal-cycle-service';
import { cancelCycleSignal, cycleStatusQuery, resumeCycleSignal } from './messages';
import { patchCycleWorkflow } from './patch-cycle';

let db: TestDatabase;
let t: WorkflowTestEnv;
const sink = new SmtpSink();

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  await sink.start();
});
afterAll(async () => {
  await sink.stop();
  await t?.teardown();
  await db?.close();
});

const logger = createLogger('silent');

interface World {
  fake: ServiceNowFake;
  chat: RecordingChatNotifier;
  activities: Activities;
  mailer: SmtpMailer;
  cycles: ReturnType<typeof createCycleService>;
  fleet: Awaited<ReturnType<typeof seedFleet>>;
  policy: string;
  stop(): Promise<void>;
}

async function world(
  o: {
    policy?: Partial<DeploymentPolicyInput>;
    fleet?: { testEndpoints?: number; endpoints?: number; lastScanAt?: Date | null };
  } = {},
): Promise<World> {
  const prefix = `f${randomUUID().slice(0, 8)}`;
  const fleet = await seedFleet(db.db, {
    prefix,
    testEndpoints: o.fleet?.testEndpoints ?? 0,
    endpoints: o.fleet?.endpoints ?? 2,
    ...(o.fleet && 'lastScanAt' in o.fleet ? { lastScanAt: o.fleet.lastScanAt } : {}),
  });
  await saveTestPolicy(db.db, prefix, fleet.testGroup, {
    autoApprove: { types: ['security'] },
    change: { type: 'normal', pollSeconds: 5 },
    ...o.policy,
  });
  const fake = new ServiceNowFake();
  for (const id of fleet.endpointIds) fake.seedCi(`${id}.example.test`);
  const url = await fake.start();
  // No client-side retries: each activity attempt is one request, so injected failures count attempts.
  const desk = new ServiceNowChangeDesk({
    client: new ServiceNowClient({
      instanceUrl: url,
      auth: { kind: 'oauth', clientId: 'patchops', clientSecret: 'secret' },
      maxRetries: 0,
    }),
  });
  const chat = new RecordingChatNotifier();
  const mailer = new SmtpMailer({
    url: sink.url,
    from: 'patchops <patchops@example.test>',
    publicUrl: 'http://patchops.example.test',
  });
  const activities = createActivities({
    database: db,
    logger,
    chat: withChangeWorkNotes({
      chat,
      desk,
      changeNumberOf: async (id) => (await getCycleRow(db.db, id))?.changeNumber ?? null,
      waveTasks: desk,
    }),
    changeDesk: desk,
    mailer,
    reportRecipients: ['cab@example.test'],
  });
  const cycles = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
  return {
    fake,
    chat,
    activities,
    mailer,
    cycles,
    fleet,
    policy: prefix,
    async stop() {
      await fake.stop();
      mailer.close();
    },
  };
}

async function startCycle(
  w: World,
): Promise<{ cycleId: string; handle: ReturnType<typeof t.env.client.workflow.getHandle<typeof patchCycleWorkflow>> }> {
  const { cycleId } = await w.cycles.start({
    policyName: w.policy,
    scope: { groups: [w.fleet.testGroup, w.fleet.prodGroup] },
    requestedBy: 'cli:requester',
  });
  return { cycleId, handle: t.env.client.workflow.getHandle<typeof patchCycleWorkflow>(workflowIdForCycle(cycleId)) };
}

async function waitFor(
  h: { query: (q: typeof cycleStatusQuery) => Promise<CycleStatus> },
  ok: (s: CycleStatus) => boolean,
  timeoutMs = 40_000,
): Promise<CycleStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await h.query(cycleStatusQuery);
    if (ok(s)) return s;
    if (Date.now() > end)
      throw new Error(`cycle stuck in ${s.stage}${s.paused ? ' (paused)' : ''}: ${s.reasons.slice(-3).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The workflow's result, or (when it does not end in time) an error naming where it is stuck. */
async function finished(
  h: { query: (q: typeof cycleStatusQuery) => Promise<CycleStatus>; result: () => Promise<CycleStatus> },
  timeoutMs = 40_000,
): Promise<CycleStatus> {
  await waitFor(h, (s) => TERMINAL_STAGES.includes(s.stage), timeoutMs);
  return h.result();
}

async function auditOf(
  cycleId: string,
): Promise<Array<{ actor: string; action: string; details: Record<string, unknown> }>> {
  const r = await db.db.execute<{ actor: string; action: string; details: Record<string, unknown> }>(
    sql`select actor, action, details from audit_log where subject_type = 'cycle' and subject_id = ${cycleId} order by id`,
  );
  return r.rows;
}

async function mailAbout(cycleId: string) {
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    const m = sink.messages.find((x) => x.parsed.subject?.includes(cycleId));
    if (m) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail about ${cycleId}`);
}

const REFUSAL =
  /^could not create the change request: ServiceNow POST \/api\/sn_chg_rest\/change\/normal returned 403: Operation Failed: User lacks the itil role needed to create change requests/;

describe('a cycle whose change request cannot be created', () => {
  it('ends FAILED with ServiceNow’s words in status, chat, audit and the mailed report', async () => {
    const w = await world();
    w.fake.inject({
      status: 403,
      error: { message: 'Operation Failed', detail: 'User lacks the itil role needed to create change requests' },
      pathPrefix: '/api/sn_chg_rest/change/normal',
    });
    try {
      const { cycleId, result } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        return { cycleId, result: await handle.result() };
      });
      expect(result.stage).toBe(CycleStage.FAILED);
      expect(result.outcome).toMatch(REFUSAL);

      // status (what `patchops status`, chat and the dashboard read)
      const st = await w.cycles.status(cycleId);
      expect(st.stage).toBe(CycleStage.FAILED);
      expect(formatStatus(st)).toMatch(new RegExp(`^${cycleId} — FAILED\\n`));
      expect(formatStatus(st)).toMatch(
        /\noutcome: could not create the change request: ServiceNow POST .* returned 403: Operation Failed: User lacks the itil role/,
      );
      expect((await w.cycles.list()).find((c) => c.cycleId === cycleId)?.stage).toBe(CycleStage.FAILED);
      expect((await stageEvents(db.db, cycleId)).map((e) => e.stage)).toEqual([
        'IDENTIFY',
        'ASSESS',
        'REPORTING',
        'FAILED',
      ]);

      // the cycle's thread and card
      expect(w.chat.stages.find((s) => s.stage === CycleStage.FAILED)?.text).toMatch(REFUSAL);
      expect(w.chat.summaries).toHaveLength(1);
      expect(w.chat.summaries[0]).toMatchObject({ outcome: CycleStage.FAILED, status: { stage: CycleStage.FAILED } });
      expect(w.chat.summaries[0]!.status.outcome).toMatch(REFUSAL);

      // the audit log
      const failed = (await auditOf(cycleId)).find((a) => a.action === 'cycle.stage.failed');
      expect(failed?.details.text).toMatch(REFUSAL);

      // the e-mail report
      const mail = await mailAbout(cycleId);
      expect(mail.parsed.subject).toMatch(/Cycle failed/);
      expect(mail.parsed.text).toMatch(
        /could not create the change request: ServiceNow POST .* returned 403: Operation Failed: User lacks the itil role/,
      );

      // nothing was raised in ServiceNow, and nothing deployed
      expect(w.fake.changes().filter((c) => c.correlation_id === cycleId)).toEqual([]);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${cycleId}'`)).toBe(0);
    } finally {
      await w.stop();
    }
  });

  it('pauses and asks while ServiceNow is not answering; resume retries, and the change raised then is cancelled with the cycle', async () => {
    const w = await world({
      policy: { approval: { approverGroups: ['ops'] }, autoApprove: { types: ['definition'] } },
    });
    await grantApprovers(db.db, ['cli:approver']);
    // Four activity attempts, one request each: every create answers 503 until retries run out.
    w.fake.inject(
      {
        status: 503,
        error: { message: 'Service Unavailable', detail: 'The instance is hibernating' },
        pathPrefix: '/api/sn_chg_rest/change/normal',
      },
      4,
    );
    try {
      const { cycleId, result, paused, afterResume } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        const paused = await waitFor(handle, (s) => s.paused);
        for (const end = Date.now() + 10_000; w.chat.pauses.length === 0 && Date.now() < end;)
          await new Promise((r) => setTimeout(r, 100));
        await handle.signal(resumeCycleSignal, { by: 'cli:ops' });
        const afterResume = await waitFor(
          handle,
          (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber) && !s.paused,
        );
        await handle.signal(cancelCycleSignal, { by: 'cli:ops', reason: 'found a better window' });
        return { cycleId, result: await handle.result(), paused, afterResume };
      });
      expect(paused.stage).toBe(CycleStage.ASSESS);
      expect(paused.pauseReason).toMatch(
        /^ServiceNow is not answering, so the change request could not be created \(ServiceNow POST .* returned 503: Service Unavailable: The instance is hibernating.*\)\. Resume to retry, or cancel the cycle\.$/,
      );
      expect(w.chat.pauses).toHaveLength(1);
      expect(w.chat.pauses[0]!.reason).toBe(paused.pauseReason);
      expect((await auditOf(cycleId)).some((a) => a.action === 'cycle.paused' && a.actor === 'system:workflow')).toBe(
        true,
      );

      expect(afterResume.changeNumber).toMatch(/^CHG\d+$/);
      expect(result.stage).toBe(CycleStage.CANCELLED);
      expect(result.outcome).toBe('cancelled by cli:ops: found a better window');
      const change = w.fake.change(afterResume.changeNumber!)!;
      expect(change.state).toBe('4'); // never approved: cancelled, with the reason
      expect(change.close_notes).toBe('cancelled by cli:ops: found a better window');
      expect(result.changeState).toBe('canceled');
      expect(formatStatus(await w.cycles.status(cycleId))).toContain(`change ${afterResume.changeNumber} (canceled)`);
    } finally {
      await w.stop();
    }
  }, 90_000);

  it('a change ServiceNow refuses to show while the cycle waits on it pauses and asks; resume polls again and the cycle goes on', async () => {
    const w = await world();
    const agent = startFakeAgent(db.db);
    try {
      const { result, paused } = await t.withWorker(w.activities, async () => {
        const { handle } = await startCycle(w);
        const st = await waitFor(handle, (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber));
        // The next poll (every 5 s) is refused, as after the integration user lost its role.
        w.fake.inject({
          status: 403,
          error: { message: 'Operation Failed', detail: 'ACL Exception Read Failed due to security constraints' },
          pathPrefix: '/api/now/table/change_request',
        });
        const paused = await waitFor(handle, (s) => s.paused);
        await w.fake.approve(st.changeNumber!, 'cab.chair');
        await handle.signal(resumeCycleSignal, { by: 'cli:ops' });
        return { result: await finished(handle, 60_000), paused };
      });
      expect(paused.pauseReason).toMatch(
        /^ServiceNow refused to show change CHG\d+ \(ServiceNow GET \/api\/now\/table\/change_request returned 403: Operation Failed: ACL Exception Read Failed.*\): fix the integration's access to change requests\. Resume to retry, or cancel the cycle\.$/,
      );
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.changeState).toBe('closed');
    } finally {
      await agent.stop();
      await w.stop();
    }
  }, 90_000);

  it('a failure after the change was raised closes it unsuccessful with the reason, and status shows the state it was left in', async () => {
    const w = await world();
    const agent = startFakeAgent(db.db);
    // A step the cycle cannot do (non-retryable), after the change is raised and scheduled.
    const dispatchCycleJobs: typeof w.activities.dispatchCycleJobs = async (input) => {
      if (input.kind === 'install')
        throw ApplicationFailure.nonRetryable('agent_jobs is read-only: the database is in recovery', 'DB_READ_ONLY');
      return w.activities.dispatchCycleJobs(input);
    };
    try {
      const { cycleId, result } = await t.withWorker({ ...w.activities, dispatchCycleJobs }, async () => {
        const { cycleId, handle } = await startCycle(w);
        const st = await waitFor(handle, (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber));
        await w.fake.approve(st.changeNumber!, 'cab.chair');
        return { cycleId, result: await handle.result() };
      });
      expect(result.stage).toBe(CycleStage.FAILED);
      expect(result.outcome).toBe('deployment failed: agent_jobs is read-only: the database is in recovery');
      const change = w.fake.changes().find((c) => c.correlation_id === cycleId)!;
      expect(change).toMatchObject({ state: '3', close_code: 'unsuccessful', close_notes: result.outcome });
      expect(
        w.fake
          .workNotes(change.number!)
          .some((n) => n.startsWith('patchops [FAILED] deployment failed: agent_jobs is read-only')),
      ).toBe(true);
      // The state the cycle left the change in, not the "scheduled" it saw last.
      expect(result.changeState).toBe('closed');
      const text = formatStatus(await w.cycles.status(cycleId));
      expect(text).toContain(`change ${change.number} (closed)`);
      expect(text).toContain('outcome: deployment failed: agent_jobs is read-only');
      expect(w.chat.summaries[0]).toMatchObject({ outcome: CycleStage.FAILED });
    } finally {
      await agent.stop();
      await w.stop();
    }
  }, 90_000);
});

describe('a cancel request to the workflow in Temporal', () => {
  it('ends CANCELLED with the reason and still runs the ending: change cancelled, summary posted', async () => {
    const w = await world({
      policy: { approval: { approverGroups: ['ops'] }, autoApprove: { types: ['definition'] } },
    });
    await grantApprovers(db.db, ['cli:approver']);
    try {
      const { cycleId, result, changeNumber } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        const st = await waitFor(handle, (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber));
        await handle.cancel();
        return { cycleId, result: await handle.result(), changeNumber: st.changeNumber! };
      });
      expect(result).toMatchObject({
        stage: CycleStage.CANCELLED,
        outcome: 'cancelled in Temporal (a cancel request to the workflow)',
        changeState: 'canceled',
      });
      expect((await getCycleRow(db.db, cycleId))?.stage).toBe(CycleStage.CANCELLED);
      expect(w.fake.change(changeNumber)).toMatchObject({ state: '4', close_notes: result.outcome });
      expect(w.chat.summaries[0]).toMatchObject({ outcome: CycleStage.CANCELLED });
    } finally {
      await w.stop();
    }
  }, 60_000);
});

describe('optional steps do not fail the cycle', () => {
  it('a CMDB the account may not read still raises the change (noting why the CIs are missing) and deploys', async () => {
    const w = await world();
    w.fake.inject({
      status: 403,
      error: { message: 'Operation Failed', detail: 'ACL Exception Read Failed due to security constraints' },
      pathPrefix: '/api/now/table/cmdb_ci',
    });
    const agent = startFakeAgent(db.db);
    try {
      const { cycleId, result } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        const st = await waitFor(handle, (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber));
        await w.fake.approve(st.changeNumber!, 'cab.chair');
        return { cycleId, result: await handle.result() };
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.waves.reduce((n, x) => n + x.succeeded, 0)).toBe(2);
      const change = w.fake.changes().find((c) => c.correlation_id === cycleId)!;
      expect(change).toMatchObject({ state: '3', close_code: 'successful' });
      expect(w.fake.affectedCis(change.number!)).toEqual([]);
      expect(
        w.fake
          .workNotes(change.number!)
          .some((n) =>
            /^patchops: the affected CIs could not be attached \(2 endpoint\(s\) are listed in the description\): .*403: Operation Failed: ACL Exception/.test(
              n,
            ),
          ),
      ).toBe(true);
      expect(result.changeState).toBe('closed');
    } finally {
      await agent.stop();
      await w.stop();
    }
  }, 90_000);
});

describe('cycles whose workflow ends outside the workflow code', () => {
  it('terminated or timed out in Temporal: the reconciler ends them FAILED with the reason, cancels the change, tells chat, mail and audit', async () => {
    const w = await world({
      policy: { approval: { approverGroups: ['ops'] }, autoApprove: { types: ['definition'] } },
    });
    await grantApprovers(db.db, ['cli:approver']);
    try {
      const { terminated, timedOut } = await t.withWorker(w.activities, async () => {
        const a = await startCycle(w);
        const st = await waitFor(a.handle, (s) => s.stage === CycleStage.AWAIT_APPROVAL && Boolean(s.changeNumber));
        // The workflow's state moves before the activity that records the stage in the database: terminate only
        // once the row says so too, as a person looking at the dashboard would see it.
        for (
          const end = Date.now() + 20_000;
          (await getCycleRow(db.db, a.cycleId))?.stage !== CycleStage.AWAIT_APPROVAL && Date.now() < end;
        ) {
          await new Promise((r) => setTimeout(r, 100));
        }
        await a.handle.terminate('stuck in a loop, ended from the Temporal UI');
        // A second cycle with a short execution timeout, as a deployment might set one.
        const timedOutId = `c-${randomUUID().slice(0, 8)}`;
        const hb = await t.env.client.workflow.start(patchCycleWorkflow, {
          taskQueue: t.taskQueue,
          workflowId: workflowIdForCycle(timedOutId),
          workflowExecutionTimeout: '6s',
          args: [
            {
              cycleId: timedOutId,
              policyName: w.policy,
              scope: { groups: [w.fleet.prodGroup] },
              requestedBy: 'cli:requester',
            },
          ],
        });
        await waitFor(hb, (s) => s.stage === CycleStage.AWAIT_APPROVAL);
        await expect(hb.result()).rejects.toThrow();
        return { terminated: { cycleId: a.cycleId, changeNumber: st.changeNumber! }, timedOut: timedOutId };
      });
      // Before the sweep, the database still says the cycle is waiting for approval: the bug being fixed.
      expect((await getCycleRow(db.db, terminated.cycleId))?.stage).toBe(CycleStage.AWAIT_APPROVAL);
      w.chat.summaries.length = 0;

      const ended = await reconcileEndedCycles({ db: db.db, client: t.env.client, activities: w.activities, logger });
      expect(ended.map((e) => e.cycleId).sort()).toEqual([terminated.cycleId, timedOut].sort());
      const reason = ended.find((e) => e.cycleId === terminated.cycleId)!.reason;
      expect(reason).toMatch(
        /^the cycle's workflow was terminated in Temporal by .+: stuck in a loop, ended from the Temporal UI$/,
      );
      expect(ended.find((e) => e.cycleId === timedOut)!.reason).toMatch(/timed out in Temporal/);

      const row = (await getCycleRow(db.db, terminated.cycleId))!;
      expect(row).toMatchObject({ stage: CycleStage.FAILED, reason });
      const st = await w.cycles.status(terminated.cycleId);
      expect(st).toMatchObject({ stage: CycleStage.FAILED, outcome: reason, changeState: 'canceled', paused: false });
      expect(formatStatus(st)).toContain(`change ${terminated.changeNumber} (canceled)`);
      expect((await getCycleRow(db.db, timedOut))?.stage).toBe(CycleStage.FAILED);

      const change = w.fake.change(terminated.changeNumber)!;
      expect(change).toMatchObject({ state: '4', close_notes: reason });
      expect(
        w.chat.stages.some(
          (s) => s.cycleId === terminated.cycleId && s.stage === CycleStage.FAILED && s.text === reason,
        ),
      ).toBe(true);
      expect(w.chat.summaries.find((s) => s.cycleId === terminated.cycleId)).toMatchObject({
        outcome: CycleStage.FAILED,
      });
      expect((await auditOf(terminated.cycleId)).find((a) => a.action === 'cycle.stage.failed')).toMatchObject({
        actor: 'system:reconciler',
        details: { text: reason },
      });
      const mail = await mailAbout(terminated.cycleId);
      expect(mail.parsed.subject).toMatch(/Cycle failed/);
      expect(mail.parsed.text).toContain('stuck in a loop, ended from the Temporal UI');

      // A second sweep finds nothing left to do.
      expect(await reconcileEndedCycles({ db: db.db, client: t.env.client, activities: w.activities, logger })).toEqual(
        [],
      );
    } finally {
      await w.stop();
    }
  }, 90_000);
});

describe('identify scans what it does not know', () => {
  /** Answers the jobs of the given endpoints the way the gateway records an agent's results (lease, then result). */
  function scanningAgents(endpointIds: string[], patchId: string): { stop(): Promise<void> } {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        for (const id of endpointIds) {
          const jobs = await leaseJobs(db.db, id, { now: new Date(), leaseSeconds: 60 });
          for (const job of jobs) {
            if (job.kind !== 'scan') {
              // What an agent answers to the cycle's installs and verifications once it has leased them.
              await recordJobResult(db.db, id, job.id, {
                status: 'succeeded',
                patches: [{ patchId, state: 'installed' }],
                rebootPending: false,
              });
              continue;
            }
            await recordJobResult(db.db, id, job.id, {
              status: 'succeeded',
              patches: [],
              rebootPending: false,
              missing: [
                {
                  patchId,
                  title: `Security update ${patchId}`,
                  vendor: 'Microsoft',
                  product: 'Windows',
                  type: 'security',
                  vendorSeverity: 'Important',
                  severitySource: 'msrc',
                  cvss: 7.5,
                  cves: ['CVE-2026-0001'],
                  rebootRequired: false,
                  packages: [],
                },
              ],
            });
          }
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return {
      async stop() {
        stopped = true;
        await loop;
      },
    };
  }

  it('scans never-scanned endpoints before assessing, leaves out and names the ones that do not answer, and deploys to the rest', async () => {
    const w = await world({
      fleet: { endpoints: 4, lastScanAt: null },
      policy: { change: { type: 'none' }, identify: { maxScanAgeHours: 24, scanTimeoutSeconds: 6 } },
    });
    const [a, b, offline, fresh] = w.fleet.endpointIds as [string, string, string, string];
    // One endpoint was scanned an hour ago: it is known, and not scanned again.
    await db.db.execute(sql`update endpoints set last_scan_at = now() - interval '1 hour' where id = ${fresh}`);
    await db.db.execute(
      sql`insert into endpoint_patches (endpoint_id, patch_id, state) values (${fresh}, ${w.fleet.patchId}, 'missing')`,
    );
    const scanners = scanningAgents([a, b], w.fleet.patchId);
    const agent = startFakeAgent(db.db, { ignoreKinds: ['scan'] });
    try {
      const { cycleId, result } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        return { cycleId, result: await finished(handle) };
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.endpoints).toBe(3);
      expect(result.reasons).toContain(
        `1 endpoint(s) could not be scanned within 6s and were left out: ${offline}.example.test`,
      );
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${cycleId}' and kind = 'scan'`)).toBe(3);
      expect(
        await countRows(db.db, 'agent_jobs', `cycle_id = '${cycleId}' and kind = 'scan' and endpoint_id = '${fresh}'`),
      ).toBe(0);
      // The silent endpoint's scan is given up on (unreachable, or cancelled if never handed out), not left waiting.
      expect(
        await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${cycleId}' and kind = 'scan' and endpoint_id = '${offline}' and state in ('unreachable', 'cancelled')`,
        ),
      ).toBe(1);
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${cycleId}' and kind = 'install'`)).toBe(3);
      expect(
        await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${cycleId}' and kind = 'install' and endpoint_id = '${offline}'`,
        ),
      ).toBe(0);
      expect(
        await countRows(db.db, 'endpoints', `id in ('${a}', '${b}') and last_scan_at > now() - interval '5 minutes'`),
      ).toBe(2);
      expect(
        w.chat.stages.some(
          (s) =>
            s.stage === CycleStage.IDENTIFY &&
            /^scanning 3 of 4 endpoint\(s\): never scanned or last scan older than 24 h/.test(s.text),
        ),
      ).toBe(true);
    } finally {
      await scanners.stop();
      await agent.stop();
      await w.stop();
    }
  }, 90_000);

  it('never says "nothing to patch" about endpoints it could not scan: none answering ends FAILED naming them', async () => {
    const w = await world({
      fleet: { endpoints: 2, lastScanAt: null },
      policy: { change: { type: 'none' }, identify: { maxScanAgeHours: 24, scanTimeoutSeconds: 5 } },
    });
    try {
      const { cycleId, result } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        return { cycleId, result: await finished(handle) };
      });
      expect(result.stage).toBe(CycleStage.FAILED);
      expect(result.outcome).toMatch(
        /^none of the 2 endpoint\(s\) in scope could be scanned, so nothing is known about them: 2 endpoint\(s\) could not be scanned within 5s and were left out: /,
      );
      for (const id of w.fleet.endpointIds) expect(result.outcome).toContain(`${id}.example.test`);
      expect(result.outcome).not.toMatch(/nothing to patch/);
      expect((await w.cycles.status(cycleId)).stage).toBe(CycleStage.FAILED);
      expect(
        await countRows(
          db.db,
          'agent_jobs',
          `cycle_id = '${cycleId}' and kind = 'scan' and state in ('unreachable', 'cancelled')`,
        ),
      ).toBe(2);
    } finally {
      await w.stop();
    }
  }, 60_000);

  it('endpoints scanned within the policy’s age are not scanned again; nothing missing says how many were checked', async () => {
    const w = await world({ fleet: { endpoints: 2 }, policy: { change: { type: 'none' } } });
    await db.db.execute(
      sql`delete from endpoint_patches where endpoint_id in (${sql.join(
        w.fleet.endpointIds.map((id) => sql`${id}`),
        sql`, `,
      )})`,
    );
    try {
      const { cycleId, result } = await t.withWorker(w.activities, async () => {
        const { cycleId, handle } = await startCycle(w);
        return { cycleId, result: await finished(handle) };
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      expect(result.outcome).toBe('nothing to patch: no missing patches on the 2 endpoint(s) checked');
      expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${cycleId}'`)).toBe(0);
    } finally {
      await w.stop();
    }
  });
});
