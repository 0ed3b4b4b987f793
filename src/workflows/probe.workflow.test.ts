import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createWorkflowTestEnv, type WorkflowTestEnv } from '../../test/helpers/temporal';
import { createActivities } from '../activities/index';
import { createLogger } from '../logging';
import { probeWorkflow } from './probe';

describe('Temporal test helpers', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.close();
  });

  it('createLocal on the project CLI binary runs a real workflow with the real activities', async () => {
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: inject('temporalCliPath') }, ip: '127.0.0.1' },
    });
    try {
      const taskQueue = `probe-${randomUUID()}`;
      const worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowBundle: { codePath: inject('workflowBundlePath') },
        activities: createActivities({ database: db, logger: createLogger('silent') }),
      });
      const result = await worker.runUntil(
        env.client.workflow.execute(probeWorkflow, {
          taskQueue,
          workflowId: `probe-${randomUUID()}`,
          args: [{ message: 'hello' }],
        }),
      );
      expect(result).toBe('echo: hello');
    } finally {
      await env.teardown();
    }
  });

  describe('the shared dev server of the run', () => {
    let t: WorkflowTestEnv;
    beforeAll(async () => {
      t = await createWorkflowTestEnv();
    });
    afterAll(async () => {
      await t.teardown();
    });

    it('runs a workflow and surfaces an activity failure', async () => {
      const ok = await t.withWorker(createActivities({ database: db, logger: createLogger('silent') }), () =>
        t.env.client.workflow.execute(probeWorkflow, {
          taskQueue: t.taskQueue,
          workflowId: `probe-${randomUUID()}`,
          args: [{ message: 'x' }],
        }),
      );
      expect(ok).toBe('echo: x');
      const failing = {
        async probeEcho(): Promise<string> {
          const { ApplicationFailure } = await import('@temporalio/common');
          throw ApplicationFailure.create({ type: 'DEPENDENCY_DOWN', message: 'database down', nonRetryable: true });
        },
      };
      await expect(
        t.withWorker(failing, () =>
          t.env.client.workflow.execute(probeWorkflow, {
            taskQueue: t.taskQueue,
            workflowId: `probe-${randomUUID()}`,
            args: [{ message: 'y' }],
          }),
        ),
      ).rejects.toThrow(/Workflow execution failed/);
    });
  });
});
