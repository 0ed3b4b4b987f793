/**
 * Waves as the cycle sees them: one child workflow per wave (runWave), the jobs that verify or roll back the
 * waves already deployed (verifyWaves, rollbackWaves), and the status line of a wave.
 */
import { CancellationScope, condition, executeChild, isCancellation } from '@temporalio/workflow';
import type { AwaitJobsResult } from '../../activities/cycle';
import type { WaveStatus } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import { deploymentWaveWorkflow, waveWorkflowId, type DeploymentWaveResult } from '../deployment-wave';
import type { CycleActs } from './proxies';
import { control } from './steps';
import { iso, type CycleState } from './state';

export function waveStatus(
  index: number,
  name: string,
  state: WaveStatus['state'],
  r?: Partial<DeploymentWaveResult>,
): WaveStatus {
  return {
    index,
    name,
    state,
    total: r?.total ?? 0,
    succeeded: r?.succeeded ?? 0,
    failed: r?.failed ?? 0,
    unreachable: r?.unreachable ?? 0,
    pending: r?.pending ?? 0,
    ...(r?.windowStart ? { windowStart: r.windowStart } : {}),
    ...(r?.windowEnd ? { windowEnd: r.windowEnd } : {}),
  };
}

/** Runs one wave (0 = the test ring) as a child workflow; returns undefined when a cancel or rollback interrupted it. */
export async function runWave(
  s: CycleState,
  policy: DeploymentPolicy,
  wave: { index: number; name: string; notBefore: string | undefined; test: boolean },
): Promise<DeploymentWaveResult | undefined> {
  const { index, name, notBefore, test } = wave;
  const scope = new CancellationScope();
  let result: DeploymentWaveResult | undefined;
  let error: unknown;
  let done = false;
  const p = scope
    .run(() =>
      executeChild(deploymentWaveWorkflow, {
        workflowId: waveWorkflowId(s.cycleId, index),
        args: [
          {
            cycleId: s.cycleId,
            wave: index,
            name,
            respectWindows: !test && policy.maintenance.respectWindows,
            ...(notBefore ? { notBefore } : {}),
            expectedInstallMinutes: policy.maintenance.expectedInstallMinutes,
            reboot: policy.reboot,
            failureThreshold: test ? policy.test.failureThreshold : policy.failureThreshold,
            unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
            pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
            limits: { concurrency: policy.concurrency, batchSize: policy.batchSize },
          },
        ],
      }),
    )
    .then(
      (r) => {
        result = r;
        done = true;
      },
      (e: unknown) => {
        error = e;
        done = true;
      },
    );
  await condition(() => done || s.interrupted());
  if (!done) {
    scope.cancel();
    await p;
  }
  if (error !== undefined && !isCancellation(error)) throw error;
  return result;
}

/** Verify jobs for `waves` (each endpoint rescans and reports the patches installed), and their counts. */
export async function verifyWaves(
  s: CycleState,
  a: CycleActs,
  policy: DeploymentPolicy,
  waves: number[],
): Promise<AwaitJobsResult> {
  await a.acts.dispatchCycleJobs({ cycleId: s.cycleId, waves, kind: 'verify' });
  return a.wait.awaitJobs({
    cycleId: s.cycleId,
    waves,
    kind: 'verify',
    until: iso(Date.now() + policy.jobs.unreachableAfterSeconds * 1000),
    unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
    pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
  });
}

/** Cancels what is still queued for `waves` and rolls back what they installed; returns how many rolled back. */
export async function rollbackWaves(
  s: CycleState,
  a: CycleActs,
  waves: number[],
  by: string,
): Promise<{ succeeded: number; total: number }> {
  await a.acts.cancelQueuedJobs({ cycleId: s.cycleId, waves });
  const d = await a.acts.dispatchCycleJobs({ cycleId: s.cycleId, waves, kind: 'rollback' });
  await control(s, a, 'rollback.dispatched', by, { waves, jobs: d.total });
  const policy = s.policy!;
  const r = await a.wait.awaitJobs({
    cycleId: s.cycleId,
    waves,
    kind: 'rollback',
    until: iso(Date.now() + Math.max(policy.jobs.unreachableAfterSeconds, 60) * 1000),
    unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
    pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
  });
  return { succeeded: r.succeeded, total: r.total };
}
