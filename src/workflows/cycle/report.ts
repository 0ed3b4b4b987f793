/**
 * REPORTING and the terminal stage: however the cycle ended, the change is closed with the result, the report
 * is mailed and the end is recorded with its reason. Runs even when the workflow was asked to cancel.
 */
import { CancellationScope, isCancellation, log, patched } from '@temporalio/workflow';
import { CycleStage } from '../../domain/cycle';
import { failureMessage } from '../failures';
import type { CycleActs } from './proxies';
import { FAILURES_END_VISIBLY } from './change';
import { bestEffort, setStage } from './steps';
import { CycleEnded, type CycleState } from './state';

export interface Ending {
  stage: CycleStage;
  outcome: string;
}

/**
 * How a failure ends the cycle: a stage's own ending (CycleEnded), a cancel request to the workflow, or any
 * other failure, told with what the cycle was doing. Rethrows for histories from before failures ended visibly.
 */
export function endingOf(s: CycleState, e: unknown): Ending {
  if (e instanceof CycleEnded) return { stage: e.stage, outcome: e.outcome };
  if (!patched(FAILURES_END_VISIBLY)) throw e;
  const ending = isCancellation(e)
    ? { stage: CycleStage.CANCELLED, outcome: 'cancelled in Temporal (a cancel request to the workflow)' }
    : { stage: CycleStage.FAILED, outcome: `${s.step}: ${failureMessage(e)}` };
  log.warn('cycle ended by a failure', { outcome: ending.outcome });
  return ending;
}

export async function report(s: CycleState, a: CycleActs, ending: Ending): Promise<void> {
  const { status, policy } = s;
  status.outcome = ending.outcome;
  await CancellationScope.nonCancellable(async () => {
    status.paused = false;
    delete status.pauseReason;
    await setStage(s, a, CycleStage.REPORTING, ending.outcome);
    const changeNumber = status.changeNumber;
    if (changeNumber && policy && policy.change.type !== 'none') {
      const failures = status.waves.some((w) => w.failed + w.unreachable > 0);
      const closeCode =
        ending.stage !== CycleStage.COMPLETED ? 'unsuccessful' : failures ? 'successful_issues' : 'successful';
      // The state the cycle leaves the change in (closed, or canceled when it was never approved).
      const left = await bestEffort(
        'closing the change',
        () => a.notify.closeChange({ changeNumber, closeCode, notes: ending.outcome }),
        (reason) =>
          status.reasons.push(`change ${changeNumber} could not be closed (${reason}): close it in ServiceNow`),
      );
      if (left) status.changeState = left;
    }
    await bestEffort('the report', () =>
      a.notify.sendReport({ status, outcome: ending.stage, emails: policy?.notify.email ?? [] }),
    );
    await setStage(s, a, ending.stage, ending.outcome, {}, ending.outcome);
  });
}
