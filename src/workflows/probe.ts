import { proxyActivities } from '@temporalio/workflow';
import type { ProbeActivities } from '../activities/probe';

const { probeEcho } = proxyActivities<ProbeActivities>({ startToCloseTimeout: '10 seconds' });

export interface ProbeInput {
  message: string;
}

/** A round trip through the worker and an activity: `patchops doctor` and the tests use it to prove the worker runs. */
export async function probeWorkflow(input: ProbeInput): Promise<string> {
  return probeEcho(input.message);
}
