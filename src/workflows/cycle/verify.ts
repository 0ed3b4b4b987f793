/** VERIFYING: every deployed wave rescanned; the cycle's outcome in numbers. */
import { CycleStage } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { setStage } from './steps';
import type { CycleState } from './state';
import { verifyWaves } from './waves';

/** Returns the outcome of a completed cycle. */
export async function verify(s: CycleState, a: CycleActs, policy: DeploymentPolicy): Promise<string> {
  const { status } = s;
  s.step = 'verification failed';
  const deployed = status.waves.map((w) => w.index).filter((i) => s.wavesDone.includes(i));
  await setStage(s, a, CycleStage.VERIFYING, `verifying ${deployed.length} wave(s)`);
  const v = await verifyWaves(s, a, policy, deployed);
  const installed = status.waves.reduce((n, w) => ({ ok: n.ok + w.succeeded, bad: n.bad + w.failed + w.unreachable }), {
    ok: 0,
    bad: 0,
  });
  const notVerified = v.failed + v.unreachable;
  const verified = `verified ${v.succeeded} of ${v.total} endpoint(s)${notVerified ? `, ${notVerified} not verified` : ''}`;
  status.reasons.push(verified);
  return `${installed.ok} endpoint(s) patched, ${installed.bad} failed; ${verified}`;
}
