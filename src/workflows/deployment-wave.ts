/**
 * deploymentWaveWorkflow: one wave (or the test ring, wave 0) of a patch cycle. Waits for the wave's
 * maintenance window (unless the policy deploys at once), writes the wave's jobs in one idempotent
 * activity, then waits in another that heartbeats aggregate progress until all jobs finish, the window
 * ends or the failure threshold trips. Returns counts only.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { CycleActivities } from '../activities/cycle';
import { HEARTBEAT_TIMEOUT } from './heartbeat-timeout';
import type { WaveCounts } from '../domain/cycle';
import type { DeploymentPolicy, FailureThreshold } from '../domain/policy';

const { nextWaveWindow, dispatchCycleJobs, cancelQueuedJobs } = proxyActivities<CycleActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumInterval: '30 seconds' },
});
const { awaitJobs } = proxyActivities<CycleActivities>({
  startToCloseTimeout: '30 days',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumInterval: '30 seconds' },
});

export interface DeploymentWaveInput {
  cycleId: string;
  /** 0 = test ring; 1… = waves. */
  wave: number;
  name: string;
  respectWindows: boolean;
  /** ISO time the wave must not start before (cycle notBefore, the change's planned start). */
  notBefore?: string;
  expectedInstallMinutes: number;
  reboot: DeploymentPolicy['reboot'];
  failureThreshold: FailureThreshold;
  unreachableAfterSeconds: number;
  pollIntervalSeconds: number;
  /** At most `concurrency` jobs in flight; at most `batchSize` handed out per step. */
  limits?: { concurrency: number; batchSize: number };
}

export interface DeploymentWaveResult extends WaveCounts {
  wave: number;
  tripped: boolean;
  /** The window ended with jobs still pending (they were cancelled). */
  timedOut: boolean;
  windowStart?: string;
  windowEnd?: string;
}

export function waveWorkflowId(cycleId: string, wave: number): string {
  return `patch-cycle:${cycleId}:wave-${wave}`;
}

export async function deploymentWaveWorkflow(input: DeploymentWaveInput): Promise<DeploymentWaveResult> {
  if (input.notBefore) {
    const wait = Date.parse(input.notBefore) - Date.now();
    if (wait > 0) await sleep(wait);
  }
  let window: { start: string; end: string; deadline: string } | null = null;
  if (input.respectWindows) {
    window = await nextWaveWindow({
      cycleId: input.cycleId,
      wave: input.wave,
      after: new Date(Date.now()).toISOString(),
      expectedInstallMinutes: input.expectedInstallMinutes,
    });
    if (window) {
      const wait = Date.parse(window.start) - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }
  await dispatchCycleJobs({
    cycleId: input.cycleId,
    waves: [input.wave],
    kind: 'install',
    reboot: input.reboot,
    ...(window ? { notBefore: window.start, deadline: window.deadline } : {}),
    ...(input.limits ? { hold: true } : {}),
  });
  const r = await awaitJobs({
    cycleId: input.cycleId,
    waves: [input.wave],
    kind: 'install',
    ...(window ? { until: window.end } : {}),
    failureThreshold: input.failureThreshold,
    unreachableAfterSeconds: input.unreachableAfterSeconds,
    pollIntervalSeconds: input.pollIntervalSeconds,
    ...(input.limits ? { limits: input.limits } : {}),
  });
  if (r.pending > 0 && (r.tripped || r.timedOut))
    await cancelQueuedJobs({ cycleId: input.cycleId, waves: [input.wave] });
  return {
    wave: input.wave,
    total: r.total,
    succeeded: r.succeeded,
    failed: r.failed,
    unreachable: r.unreachable,
    pending: r.pending,
    tripped: r.tripped,
    timedOut: r.timedOut,
    ...(window ? { windowStart: window.start, windowEnd: window.end } : {}),
  };
}
