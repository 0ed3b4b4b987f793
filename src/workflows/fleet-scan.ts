/**
 * fleetScanWorkflow: scan jobs for every active endpoint of a scope (wave null), then waits for them and
 * returns counts. The agent gateway records each scan's results (the endpoint's missing patches) as they
 * arrive. Run on demand (`patchops scan`) and on a Temporal Schedule from a policy's schedule.scanCron.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { CycleActivities } from '../activities/cycle';
import { HEARTBEAT_TIMEOUT } from './heartbeat-timeout';
import type { CycleScope, WaveCounts } from '../domain/cycle';

const { dispatchScanJobs } = proxyActivities<CycleActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumInterval: '30 seconds' },
});
const { awaitJobs } = proxyActivities<CycleActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumInterval: '30 seconds' },
});

export interface FleetScanInput {
  scope: CycleScope;
  requestedBy: string;
  /** Stop waiting after this long; what has not answered counts as pending. Default 1 hour. */
  timeoutSeconds?: number;
  unreachableAfterSeconds?: number;
  pollIntervalSeconds?: number;
}

export interface FleetScanResult extends WaveCounts {
  scanId: string;
  endpoints: number;
}

export async function fleetScanWorkflow(input: FleetScanInput): Promise<FleetScanResult> {
  // A scheduled run gets a fresh run id per firing: the scan id follows it so each run has its own jobs.
  const scanId = `scan:${workflowInfo().workflowId}:${workflowInfo().runId}`;
  const d = await dispatchScanJobs({ scanId, scope: input.scope });
  const until = new Date(Date.now() + (input.timeoutSeconds ?? 3600) * 1000).toISOString();
  const r = await awaitJobs({
    cycleId: scanId,
    waves: [null],
    kind: 'scan',
    until,
    unreachableAfterSeconds: input.unreachableAfterSeconds ?? 1800,
    pollIntervalSeconds: input.pollIntervalSeconds ?? 10,
  });
  return {
    scanId,
    endpoints: d.endpoints,
    total: r.total,
    succeeded: r.succeeded,
    failed: r.failed,
    unreachable: r.unreachable,
    pending: r.pending,
  };
}
