import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import type { Activities } from '../../src/activities/index';

export interface WorkflowTestEnv {
  env: TestWorkflowEnvironment;
  /** A task queue of this test's own, so tests never steal each other's tasks. */
  taskQueue: string;
  /**
   * Runs `fn` while a worker with the real workflow bundle and the given activities polls `taskQueue`. Typed
   * against the real activities, so an override of a renamed or retyped activity fails the typecheck.
   */
  withWorker<T>(activities: Partial<Activities>, fn: () => Promise<T>): Promise<T>;
  teardown(): Promise<void>;
}

/**
 * Connects to the one dev server the global setup started for this run (a real Temporal server, the
 * project's CLI binary) and builds workers from the real workflow bundle.
 */
export async function createWorkflowTestEnv(): Promise<WorkflowTestEnv> {
  const address = inject('temporalAddress');
  const codePath = inject('workflowBundlePath');
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address });
  const taskQueue = `test-${randomUUID()}`;
  const connection = await NativeConnection.connect({ address });
  return {
    env,
    taskQueue,
    async withWorker(activities, fn) {
      const worker = await Worker.create({
        connection,
        taskQueue,
        activities,
        workflowBundle: { codePath },
      });
      return worker.runUntil(fn());
    },
    async teardown() {
      await connection.close();
      await env.teardown();
    },
  };
}
