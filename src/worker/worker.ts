import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bundleWorkflowCode,
  Worker,
  type NativeConnection,
  type WorkerInterceptors,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { TaskQueue } from '../temporal/task-queues';

export const WORKFLOWS_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'workflows', 'index.ts');

/** Bundles the workflow code once (webpack): a worker can reuse the bundle instead of bundling again. */
export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
}

const noop = () => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue?: string;
  activities: object;
  /** A prebuilt bundle (tests bundle once per run); otherwise the worker bundles WORKFLOWS_PATH. */
  workflowBundle?: WorkflowBundleWithSourceMap | { codePath: string };
  /** Activity interceptors (metrics); workflow interceptors are not used. */
  interceptors?: Pick<WorkerInterceptors, 'activity'>;
}

/** The composition root of the worker process: real workflows, the activities it is given. */
export async function createWorker(o: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue ?? TaskQueue.cycles,
    activities: o.activities,
    workflowBundle: o.workflowBundle ?? (await bundleWorkflows()),
    ...(o.interceptors ? { interceptors: o.interceptors } : {}),
  });
}
