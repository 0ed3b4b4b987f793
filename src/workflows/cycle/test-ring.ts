/**
 * TEST: the test ring deploys first, soaks, verifies; over its failure threshold it is rolled back and the
 * cycle ends before anyone is asked to approve.
 */
import { condition } from '@temporalio/workflow';
import { CycleStage } from '../../domain/cycle';
import { failureThresholdTripped, type DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { checkpoint } from './checkpoint';
import { setStage } from './steps';
import { CycleEnded, type CycleState } from './state';
import { rollbackWaves, runWave, verifyWaves, waveStatus } from './waves';

export async function testRing(s: CycleState, a: CycleActs, policy: DeploymentPolicy, size: number): Promise<void> {
  const { status } = s;
  if (size === 0) {
    status.reasons.push(
      policy.test.group
        ? `no test ring: no endpoint of group "${policy.test.group}" needs these patches`
        : 'no test ring: the policy has none',
    );
    return;
  }
  s.step = 'the test ring failed';
  status.test = { ...waveStatus(0, 'test', 'running'), total: size };
  await setStage(s, a, CycleStage.TEST, `test ring: ${size} endpoint(s), soak ${policy.test.soakSeconds}s`);
  const r = await runWave(s, policy, { index: 0, name: 'test', notBefore: undefined, test: true });
  s.wavesDone.push(0);
  if (!r) {
    await checkpoint(s, a); // interrupted: the checkpoint ends the cycle
    throw new Error('unreachable');
  }
  status.test = waveStatus(0, 'test', 'running', r);
  let failed = r.failed;
  if (!r.tripped && r.succeeded > 0) {
    await condition(() => s.interrupted(), policy.test.soakSeconds * 1000);
    await checkpoint(s, a);
    const v = await verifyWaves(s, a, policy, [0]);
    failed += v.failed + v.unreachable;
  }
  const counts = { total: r.total, failed, unreachable: r.unreachable + r.pending };
  if (r.tripped || failureThresholdTripped(policy.test.failureThreshold, counts)) {
    status.test = { ...status.test, failed, state: 'rolled_back' };
    const rb = await rollbackWaves(s, a, [0], 'system:workflow');
    const limit = `limit ${policy.test.failureThreshold.percent}% / ${policy.test.failureThreshold.count}`;
    const why = `test ring failed its threshold: ${failed + r.unreachable} of ${r.total} endpoint(s) failed (${limit}); ring rolled back (${rb.succeeded} of ${rb.total})`;
    status.reasons.push(why);
    throw new CycleEnded(CycleStage.ROLLED_BACK, why);
  }
  status.test = { ...status.test, failed, state: 'done' };
}
