/**
 * History stays O(waves + votes): a 5,000-endpoint cycle's history is within 1.5× of a 50-endpoint one.
 * The 50-endpoint run is also what RECORD_HISTORIES=1 writes to test/fixtures/histories/, and every
 * committed history there is replayed against today's workflow code (Worker.runReplayHistories).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { saveTestPolicy, seedFleet } from '../../test/helpers/cycle-fixtures';
import { startFakeAgent } from '../../test/helpers/fake-agent';
import { RecordingChatNotifier } from '../../test/helpers/ports';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { CycleStage } from '../domain/cycle';
import { createLogger } from '../logging';
import { waveWorkflowId } from './deployment-wave';
import { patchCycleWorkflow } from './patch-cycle';

/**
 * Fixture format: JSON holding the protobuf-encoded History (base64). The SDK's historyToJSON /
 * historyFromJSON fail in this install ("type must be a Type": @temporalio/common carries its own
 * protobufjs 8 while @temporalio/proto's root is built with protobufjs 7), so the binary encoding of
 * @temporalio/proto itself is used; it round-trips exactly.
 */
interface HistoryFixture {
  format: 'temporal.api.history.v1.History+base64';
  workflowType: string;
  events: number;
  data: string;
}

const HISTORIES = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'histories');

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

async function runCycle(prefix: string, endpoints: number, approve: boolean) {
  const fleet = await seedFleet(db.db, { prefix, testEndpoints: 2, endpoints });
  await saveTestPolicy(db.db, prefix, fleet.testGroup, {
    concurrency: 100_000,
    batchSize: 100_000,
    ...(approve ? {} : { autoApprove: { types: ['security'] } }),
  });
  const { grantApprovers } = await import('../../test/helpers/cycle-fixtures');
  await grantApprovers(db.db, ['cli:hist-approver']);
  const cycleId = `c-${prefix}`;
  const workflowId = `patch-cycle:${cycleId}`;
  const agent = startFakeAgent(db.db);
  try {
    const result = await t.withWorker(
      createActivities({ database: db, logger: createLogger('silent'), chat: new RecordingChatNotifier() }),
      async () => {
        const h = await t.env.client.workflow.start(patchCycleWorkflow, {
          taskQueue: t.taskQueue,
          workflowId,
          args: [
            {
              cycleId,
              policyName: prefix,
              scope: { groups: [fleet.testGroup, fleet.prodGroup] },
              requestedBy: 'cli:hist-requester',
            },
          ],
        });
        if (approve) {
          const { approveCycleUpdate, cycleStatusQuery } = await import('./messages');
          const end = Date.now() + 60_000;
          while ((await h.query(cycleStatusQuery)).stage !== CycleStage.AWAIT_APPROVAL && Date.now() < end)
            await new Promise((r) => setTimeout(r, 200));
          await h.executeUpdate(approveCycleUpdate, { args: [{ identity: 'cli:hist-approver', channel: 'cli' }] });
        }
        return h.result();
      },
    );
    const history = await t.env.client.workflow.getHandle(workflowId).fetchHistory();
    let childEvents = 0;
    for (const wave of [0, 1, 2])
      childEvents +=
        (await t.env.client.workflow.getHandle(waveWorkflowId(cycleId, wave)).fetchHistory()).events?.length ?? 0;
    return { result, history, events: history.events?.length ?? 0, childEvents };
  } finally {
    await agent.stop();
  }
}

describe('patch cycle history', () => {
  it('a 5,000-endpoint cycle has a history within 1.5× of a 50-endpoint cycle', async () => {
    const small = await runCycle(`h${Date.now().toString(36)}s`, 48, true);
    expect(small.result.stage).toBe(CycleStage.COMPLETED);
    if (process.env.RECORD_HISTORIES) {
      await fs.mkdir(HISTORIES, { recursive: true });
      const fixture: HistoryFixture = {
        format: 'temporal.api.history.v1.History+base64',
        workflowType: 'patchCycleWorkflow',
        events: small.events,
        data: Buffer.from(temporal.api.history.v1.History.encode(small.history).finish()).toString('base64'),
      };
      await fs.writeFile(path.join(HISTORIES, 'patch-cycle-full.json'), `${JSON.stringify(fixture, null, 2)}\n`);
    }
    const big = await runCycle(`h${Date.now().toString(36)}b`, 4998, true);
    expect(big.result.stage).toBe(CycleStage.COMPLETED);
    expect(big.result.waves.reduce((n, w) => n + w.succeeded, 0)).toBe(4998);
    console.log(
      `history events: 50 endpoints → ${small.events} (+${small.childEvents} in wave children); 5,000 endpoints → ${big.events} (+${big.childEvents})`,
    );
    expect(big.events).toBeLessThanOrEqual(small.events * 1.5);
    expect(big.childEvents).toBeLessThanOrEqual(small.childEvents * 1.5);
  }, 240_000);

  it('replays every committed history against the current workflow code', async () => {
    const files = (await fs.readdir(HISTORIES)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const histories = await Promise.all(
      files.map(async (f) => {
        const fixture = JSON.parse(await fs.readFile(path.join(HISTORIES, f), 'utf8')) as HistoryFixture;
        const history = temporal.api.history.v1.History.decode(Buffer.from(fixture.data, 'base64'));
        expect(history.events).toHaveLength(fixture.events);
        return { workflowId: f, history };
      }),
    );
    const results = [];
    for await (const r of Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('workflowBundlePath') } },
      histories,
    ))
      results.push(r);
    expect(results).toHaveLength(files.length);
    for (const r of results) expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
  });
});
