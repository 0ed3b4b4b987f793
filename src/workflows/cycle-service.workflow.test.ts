/** The cycle service and the shared command executor against a real Temporal server and database. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { grantApprovers, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { parseCommand, type Command } from '../commands/grammar';
import { savePolicy } from '../db/policies';
import { CycleStage, workflowIdForCycle } from '../domain/cycle';
import { createLogger } from '../logging';
import { executeCommand, type CommandContext } from '../../test/helpers/legacy-commands';
import { createCycleService, ensureScanSchedules } from '../services/temporal-cycle-service';
import type { CycleService } from '../services/cycle-service';
import type { FleetScanResult } from './fleet-scan';

let db: TestDatabase;
let t: WorkflowTestEnv;
let service: CycleService;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  service = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
});
afterAll(async () => {
  await t?.teardown();
  await db?.close();
});

function cmd(text: string): Command {
  const p = parseCommand(text);
  if (!p.ok) throw new Error(`${text}: ${p.error}`);
  return p.command;
}

const ctx = (identity: string, roles: { isAdmin?: boolean; isApprover?: boolean } = {}): CommandContext => ({
  identity,
  channel: 'cli',
  service,
  db: db.db,
  isAdmin: roles.isAdmin ?? false,
  isApprover: roles.isApprover ?? false,
});

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('cycle service and commands', () => {
  it('start → refused votes with reasons → approve → COMPLETED; status of a finished cycle comes from the database', async () => {
    const prefix = `s${randomUUID().slice(0, 8)}`;
    const f = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
    await saveTestPolicy(db.db, prefix, f.testGroup);
    await grantApprovers(db.db, ['cli:approver1']);
    const agent = startFakeAgent(db.db);
    try {
      await t.withWorker(
        createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() }),
        async () => {
          const started = await executeCommand(
            cmd(`start ${prefix} group:${f.testGroup},${f.prodGroup}`),
            ctx('cli:admin1', { isAdmin: true }),
          );
          const { cycleId } = started.data as { cycleId: string };
          expect(started.text).toContain(`cycle ${cycleId} started under policy ${prefix}`);

          const waiting = await until(
            () => service.status(cycleId),
            (s) => s.stage === CycleStage.AWAIT_APPROVAL,
          );
          expect(waiting.stage).toBe(CycleStage.AWAIT_APPROVAL);

          const own = await executeCommand(
            cmd(`approve ${cycleId}`),
            ctx('cli:admin1', { isAdmin: true, isApprover: true }),
          );
          expect(own).toMatchObject({
            text: 'you requested this cycle; someone else must approve',
            data: { error: 'APPROVAL_REFUSED' },
          });
          const stranger = await executeCommand(cmd(`approve ${cycleId}`), ctx('cli:nobody'));
          expect(stranger.data).toEqual({ error: 'FORBIDDEN' });
          const notAdmin = await executeCommand(cmd(`pause ${cycleId}`), ctx('cli:approver1', { isApprover: true }));
          expect(notAdmin.text).toMatch(/only admins may use "pause"/);

          const ok = await executeCommand(cmd(`approve ${cycleId}`), ctx('cli:approver1', { isApprover: true }));
          expect(ok.text).toBe(`approved ${cycleId}: 1 of 1 — approved`);
          const done = await until(
            () => service.status(cycleId),
            (s) => s.stage === CycleStage.COMPLETED,
          );
          expect(done.stage).toBe(CycleStage.COMPLETED);
          // The live status says COMPLETED before the last stage is recorded: let the workflow finish before the worker stops.
          await t.env.client.workflow.getHandle(workflowIdForCycle(cycleId)).result();
        },
      );
      // No worker now: a finished cycle's status is read from patch_cycles.summary.
      const list = await executeCommand(cmd('cycles'), ctx('cli:viewer'));
      const cycleId = (list.data as Array<{ cycleId: string; stage: string }>)[0]!.cycleId;
      const status = await executeCommand(cmd(`status ${cycleId}`), ctx('cli:viewer'));
      expect(status.text).toContain(`${cycleId} — COMPLETED`);
      expect(status.text).toMatch(/wave 1 pilot: done, 1\/1 ok/);
      const late = await executeCommand(cmd(`approve ${cycleId}`), ctx('cli:approver1', { isApprover: true }));
      expect(late.data).toEqual({ error: 'APPROVAL_REFUSED' });
    } finally {
      await agent.stop();
    }
  });

  it('unknown cycles and policies come back as plain NOT_FOUND messages', async () => {
    await expect(service.status('PC-none')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(service.cancel('PC-none', 'cli:a')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const r = await executeCommand(cmd('start no-such-policy'), ctx('cli:admin1', { isAdmin: true }));
    expect(r).toMatchObject({ data: { error: 'NOT_FOUND' } });
    expect(r.text).toMatch(/no policy named "no-such-policy"/);
    await expect(
      service.changeRequestState('CHG-none', { changeNumber: 'CHG-none', state: 'scheduled' }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('exceptions through the executor: add, list, remove', async () => {
    const admin = ctx('cli:admin1', { isAdmin: true });
    const added = await executeCommand(
      cmd('exceptions add patch:KB9 group:web until:2099-01-10 reason:"vendor hotfix pending"'),
      admin,
    );
    expect(added.text).toMatch(/^exception EXC-\d+ added until 2099-01-10$/);
    const code = (added.data as { code: string }).code;
    expect((await executeCommand(cmd('exceptions list'), admin)).text).toContain(
      `${code}  patch:KB9 group:web  until 2099-01-10  vendor hotfix pending`,
    );
    expect((await executeCommand(cmd(`exceptions remove ${code}`), admin)).text).toBe(`exception ${code} removed`);
    expect((await executeCommand(cmd(`exceptions remove ${code}`), admin)).data).toEqual({ error: 'NOT_FOUND' });
  });

  it('scan: a fleet scan dispatches scan jobs for the scope and returns counts', async () => {
    const prefix = `f${randomUUID().slice(0, 8)}`;
    const f = await seedFleet(db.db, { prefix, testEndpoints: 0, endpoints: 4 });
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(
        createActivities({ database: db, logger: createLogger('silent') }),
        async () => {
          const r = await executeCommand(cmd(`scan group:${f.prodGroup}`), ctx('cli:admin1', { isAdmin: true }));
          const { workflowId } = r.data as { workflowId: string };
          return t.env.client.workflow.getHandle(workflowId).result() as Promise<FleetScanResult>;
        },
      );
      expect(result).toMatchObject({ endpoints: 4, total: 4, succeeded: 4, pending: 0 });
    } finally {
      await agent.stop();
    }
  });

  it('scan schedules from policies are created once and updated in place', async () => {
    const name = `sched${randomUUID().slice(0, 6)}`;
    await savePolicy(db.db, { name, schedule: { scanCron: '0 2 * * *' } }, 'cli:admin1');
    const first = await ensureScanSchedules(t.env.client, db.db, t.taskQueue);
    expect(first).toContain(`fleet-scan:${name}`);
    await savePolicy(db.db, { name, schedule: { scanCron: '30 3 * * *' } }, 'cli:admin1');
    expect(await ensureScanSchedules(t.env.client, db.db, t.taskQueue)).toEqual(first);
    const h = t.env.client.schedule.getHandle(`fleet-scan:${name}`);
    try {
      const d = await h.describe();
      expect(JSON.stringify(d.spec)).toMatch(/"minute":\[\{"start":30/);
    } finally {
      await h.delete();
    }
  });
});
