/**
 * Between steps the cycle serves what people asked of it: single-endpoint rollbacks, a pause (it waits), a
 * cancel or a whole-cycle rollback (it ends).
 */
import { condition } from '@temporalio/workflow';
import { CycleStage, type WaveStatus } from '../../domain/cycle';
import type { CycleActs } from './proxies';
import { bestEffort, control } from './steps';
import { CycleEnded, iso, type CycleState } from './state';
import { rollbackWaves } from './waves';

export async function checkpoint(s: CycleState, a: CycleActs): Promise<void> {
  const { status, wavesDone } = s;
  while (s.endpointRollbacks.length > 0) {
    const r = s.endpointRollbacks.shift()!;
    if (wavesDone.length > 0) {
      const d = await a.acts.dispatchCycleJobs({
        cycleId: s.cycleId,
        waves: wavesDone,
        kind: 'rollback',
        endpointId: r.endpointId,
      });
      status.reasons.push(`rollback of ${r.endpointId} requested by ${r.by}: ${d.total} job(s)`);
      await control(s, a, 'rollback.endpoint', r.by, { endpointId: r.endpointId, jobs: d.total });
    }
  }
  if (status.paused && !s.interrupted()) {
    await condition(() => !status.paused || s.interrupted());
  }
  if (s.rollbackAll) {
    const { by, reason } = s.rollbackAll;
    const r = wavesDone.length > 0 ? await rollbackWaves(s, a, wavesDone, by) : { succeeded: 0, total: 0 };
    for (const w of status.waves) if (wavesDone.includes(w.index)) w.state = 'rolled_back';
    if (status.test && wavesDone.includes(0)) status.test.state = 'rolled_back';
    throw new CycleEnded(
      CycleStage.ROLLED_BACK,
      `rolled back by ${by}${reason ? `: ${reason}` : ''} (${r.succeeded} of ${r.total} endpoint(s) rolled back)`,
    );
  }
  if (s.cancelRequested) {
    const { by, reason } = s.cancelRequested;
    await a.acts.cancelQueuedJobs({ cycleId: s.cycleId, waves: [0, ...status.waves.map((w) => w.index)] });
    throw new CycleEnded(CycleStage.CANCELLED, `cancelled by ${by}${reason ? `: ${reason}` : ''}`);
  }
}

/**
 * Pauses the cycle with `reason` (recorded, asked in chat) and waits at a checkpoint: resume goes on, cancel
 * or rollback ends the cycle. `wave` is the wave that tripped, if one did.
 */
export async function pauseAndAsk(s: CycleState, a: CycleActs, reason: string, wave?: WaveStatus): Promise<void> {
  const { status } = s;
  status.paused = true;
  status.pauseReason = reason;
  status.reasons.push(reason);
  status.updatedAt = iso();
  await control(s, a, 'paused', 'system:workflow', {
    reason,
    ...(wave ? { wave: wave.index } : {}),
    seq: ++s.pauseSeq,
  });
  await bestEffort('the pause question', () =>
    a.notify.notifyPause({ cycleId: s.cycleId, reason, ...(wave ? { wave } : {}) }),
  );
  await checkpoint(s, a);
}

/** After a failed call to an outside service: pauses and asks; resume retries, cancel ends the cycle. */
export async function askAfterFailure(s: CycleState, a: CycleActs, what: string): Promise<void> {
  await pauseAndAsk(s, a, `${what}. Resume to retry, or cancel the cycle.`);
}
