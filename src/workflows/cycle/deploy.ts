/**
 * DEPLOYING: the waves in order, each a child workflow in its maintenance window. A wave over its failure
 * threshold pauses the cycle and asks (resume goes on with the next wave; rollback undoes what was done).
 */
import { CycleStage } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { checkpoint, pauseAndAsk } from './checkpoint';
import { bestEffort, setStage } from './steps';
import type { CycleState } from './state';
import { runWave, waveStatus } from './waves';

export async function deploy(
  s: CycleState,
  a: CycleActs,
  policy: DeploymentPolicy,
  notBefore: string | undefined,
): Promise<void> {
  const { status } = s;
  s.step = 'deployment failed';
  await setStage(s, a, CycleStage.DEPLOYING, `${status.waves.length} wave(s)`);
  const changeNumber = status.changeNumber;
  if (changeNumber)
    await bestEffort('the change note', () => a.notify.addChangeNote({ changeNumber, note: 'Deployment started.' }));
  for (const w of status.waves) {
    await checkpoint(s, a);
    w.state = policy.maintenance.respectWindows ? 'waiting_window' : 'running';
    const r = await runWave(s, policy, { index: w.index, name: w.name, notBefore, test: false });
    s.wavesDone.push(w.index);
    if (!r) {
      w.state = 'done';
      await checkpoint(s, a); // interrupted: the checkpoint ends the cycle
      continue;
    }
    Object.assign(w, waveStatus(w.index, w.name, 'done', r));
    const left = r.pending ? `, ${r.pending} not started (window closed)` : '';
    const text = `wave ${w.index} of ${status.waves.length} (${w.name}) done: ${r.succeeded} ok, ${r.failed} failed, ${r.unreachable} unreachable${left}`;
    await bestEffort('the wave notification', () =>
      a.notify.notifyStage({ cycleId: s.cycleId, stage: CycleStage.DEPLOYING, text, wave: w }),
    );
    if (r.timedOut) status.reasons.push(`wave ${w.name}: window ended with ${r.pending} job(s) not started`);
    if (r.tripped) {
      w.state = 'paused';
      const limit = `limit ${policy.failureThreshold.percent}% / ${policy.failureThreshold.count}`;
      await pauseAndAsk(
        s,
        a,
        `wave ${w.name} reached its failure threshold: ${r.failed + r.unreachable} of ${r.total} failed (${limit})`,
        w,
      );
      w.state = 'done';
    }
  }
  await checkpoint(s, a);
}
