/**
 * The ServiceNow webhook on the real patch-cycle workflow (real Temporal dev server, real database, real
 * CycleService, the route listening on HTTP; the product's client and change desk talking HTTP to the local
 * ServiceNow fake):
 * - issue #17: a ServiceNow whose Change API answers in the documented array form still creates the change
 *   and the cycle follows it to the end;
 * - issue #11 item 7: forged notifications (a state ServiceNow does not confirm; another change naming the
 *   cycle in its correlation_id) are refused over HTTP, and the waiting cycle does not move.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../test/fakes/servicenow';
import { countRows, saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { CycleStage, type CycleStatus, type PatchCycleInput } from '../domain/cycle';
import type { ChangeDesk } from '../domain/ports';
import { ServiceNowChangeDesk } from '../integrations/servicenow/change-desk';
import { ServiceNowClient } from '../integrations/servicenow/client';
import { createLogger } from '../logging';
import { createCycleService } from '../services/temporal-cycle-service';
import type { CycleService } from '../services/cycle-service';
import { cycleStatusQuery } from '../workflows/messages';
import { buildServer } from './app';
import { serviceNowWebhookRoute } from './servicenow-webhook';

const SECRET = 'integration-webhook-secret';
let db: TestDatabase;
let t: WorkflowTestEnv;
let cycles: CycleService;

beforeAll(async () => {
  db = await createTestDatabase();
  t = await createWorkflowTestEnv();
  cycles = createCycleService({ client: t.env.client, db: db.db, taskQueue: t.taskQueue });
});
afterAll(async () => {
  await t?.teardown();
  await db?.close();
});

/** A fleet and policy needing a normal change, the fake ServiceNow, the real desk and the webhook route on HTTP. */
async function setup(fake: ServiceNowFake) {
  const prefix = `wh${randomUUID().slice(0, 8)}`;
  const fleet = await seedFleet(db.db, { prefix, testEndpoints: 1, endpoints: 2 });
  await saveTestPolicy(db.db, prefix, fleet.testGroup, {
    autoApprove: { types: ['security'] },
    change: { type: 'normal', pollSeconds: 5 },
  });
  const instanceUrl = await fake.start();
  const desk: ChangeDesk = new ServiceNowChangeDesk({
    client: new ServiceNowClient({ instanceUrl, auth: { kind: 'basic', username: 'admin', password: 'admin' } }),
  });
  const server: FastifyInstance = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [serviceNowWebhookRoute({ cycles, secret: SECRET, changes: desk })],
  });
  const hook = `${await server.listen({ host: '127.0.0.1', port: 0 })}/webhooks/servicenow`;
  fake.webhook = { url: hook, secret: SECRET };
  const activities = createActivities({
    database: db,
    logger: createLogger('silent'),
    chat: new RecordingChatNotifier(),
    changeDesk: desk,
  });
  const input: PatchCycleInput = {
    cycleId: `c-${prefix}`,
    policyName: prefix,
    scope: { groups: [fleet.testGroup, fleet.prodGroup] },
    requestedBy: 'cli:requester',
  };
  const post = async (body: Record<string, unknown>) => {
    const res = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-patchops-secret': SECRET },
      body: JSON.stringify(body),
    });
    return { status: res.status, error: ((await res.json()) as { error?: string }).error };
  };
  return { input, activities, post, close: async () => Promise.all([server.close(), fake.stop()]) };
}

async function waitFor(
  h: { query: (q: typeof cycleStatusQuery) => Promise<CycleStatus> },
  ok: (s: CycleStatus) => boolean,
  timeoutMs = 30_000,
): Promise<CycleStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await h.query(cycleStatusQuery);
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`cycle stuck in ${s.stage} (change ${s.changeNumber ?? 'none'})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const start = (input: PatchCycleInput) =>
  t.env.client.workflow.start('patchCycleWorkflow', {
    taskQueue: t.taskQueue,
    workflowId: `patch-cycle:${input.cycleId}`,
    args: [input],
  });

describe('the ServiceNow webhook on a real cycle', () => {
  it('follows a change whose Change API answers as a one-element array, from creation to closure', async () => {
    const fake = new ServiceNowFake({ changeResultShape: 'array' });
    const s = await setup(fake);
    const agent = startFakeAgent(db.db);
    try {
      const result = await t.withWorker(s.activities, async () => {
        const h = await start(s.input);
        const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
        expect(await fake.approve(waiting.changeNumber!, 'cab.chair')).toBe(200); // business rule → webhook → confirmed → signal
        return h.result() as Promise<CycleStatus>;
      });
      expect(result.stage).toBe(CycleStage.COMPLETED);
      const change = fake.changes().find((c) => c.correlation_id === s.input.cycleId)!;
      expect(change).toMatchObject({ state: '3', close_code: 'successful', approval: 'approved' });
      expect(fake.requests.some((r) => r.method === 'POST' && r.path === '/api/sn_chg_rest/change/normal')).toBe(true);
    } finally {
      await agent.stop();
      await s.close();
    }
  }, 90_000);

  it('refuses forged notifications over HTTP, and the waiting cycle does not move', async () => {
    const fake = new ServiceNowFake();
    const s = await setup(fake);
    const agent = startFakeAgent(db.db);
    try {
      await t.withWorker(s.activities, async () => {
        const h = await start(s.input);
        const waiting = await waitFor(h, (st) => st.stage === CycleStage.AWAIT_APPROVAL && Boolean(st.changeNumber));
        const own = waiting.changeNumber!;
        const before = { ...fake.change(own)! };

        // 1. A notification claiming the cycle's own change is approved and scheduled; ServiceNow says it is New.
        const forged = await s.post({
          number: own,
          correlation_id: s.input.cycleId,
          state: '-2',
          approval: 'approved',
          sys_mod_count: '7',
        });
        expect(forged.status).toBe(409);
        expect(forged.error).toMatch(
          new RegExp(`says change ${own} is scheduled \\(approval approved\\), but ServiceNow says new`),
        );

        // 2. Another change, really approved and scheduled in ServiceNow, whose correlation_id names this cycle.
        const other = fake.insert('change_request', {
          type: 'standard',
          state: '-2',
          approval: 'approved',
          correlation_id: s.input.cycleId,
        });
        const borrowed = await s.post({
          number: other.number,
          correlation_id: s.input.cycleId,
          state: '-2',
          approval: 'approved',
          sys_mod_count: '1',
        });
        expect(borrowed.status).toBe(404);
        expect(borrowed.error).toBe(
          `no patch cycle owns change ${other.number} (the notification names correlation_id ${s.input.cycleId})`,
        );

        // 3. The same through the cycle service, by the cycle id: only the cycle's own change moves it.
        await expect(
          cycles.changeRequestState(s.input.cycleId, {
            changeNumber: other.number!,
            state: 'scheduled',
            approval: 'approved',
          }),
        ).rejects.toMatchObject({
          code: 'CONFLICT',
          message: `change ${other.number} is not the change of cycle ${s.input.cycleId} (${own}): ignored`,
        });

        await new Promise((r) => setTimeout(r, 2000));
        const after = await h.query(cycleStatusQuery);
        expect(after.stage).toBe(CycleStage.AWAIT_APPROVAL);
        expect(after.changeNumber).toBe(own);
        expect(after.changeState ?? 'new').toBe('new');
        expect(await countRows(db.db, 'agent_jobs', `cycle_id = '${s.input.cycleId}' and wave >= 1`)).toBe(0);
        expect(fake.change(own)).toEqual(before);
        await h.terminate('test over');
      });
    } finally {
      await agent.stop();
      await s.close();
    }
  }, 90_000);
});
