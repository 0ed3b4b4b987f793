/**
 * The change request as a gate: raised before the approval (with the plan and the test ring's result), and
 * after the approval the cycle waits until the change is scheduled (or being implemented). A cancelled or
 * rejected change ends the cycle CANCELLED.
 */
import type { AssessResult } from '../../domain/assessment';
import { CycleStage, type ChangeRequestStateEvent } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { followChange, openChange } from './change';
import { CycleEnded, type CycleState } from './state';

/** Raises the change request the policy asks for; status shows its number and state. */
export async function raiseChange(
  s: CycleState,
  a: CycleActs,
  policy: DeploymentPolicy,
  assessment: AssessResult,
): Promise<void> {
  const { status, input } = s;
  const ref = await openChange(s, a, {
    cycleId: s.cycleId,
    policy,
    assessment,
    requestedBy: input.requestedBy,
    ...(input.notBefore ? { plannedStart: input.notBefore } : {}),
    ...(status.test ? { test: status.test } : {}),
  });
  if (ref) {
    status.changeNumber = ref.number;
    status.changeState ??= ref.state;
  }
}

/** The reason a cancelled or rejected change gives for ending the cycle, or undefined while it stands. */
export function changeWithdrawn(
  changeNumber: string,
  ev: ChangeRequestStateEvent | undefined,
  when = '',
): string | undefined {
  if (ev?.state !== 'canceled' && ev?.approval !== 'rejected') return undefined;
  return `change ${changeNumber} ${ev.state === 'canceled' ? 'was cancelled' : 'was rejected'}${when}${ev.by ? ` by ${ev.by}` : ''}${ev.reason ? `: ${ev.reason}` : ''}`;
}

/**
 * Waits until change `changeNumber` is scheduled or being implemented; returns the start the cycle may deploy
 * from: the change's planned start when it is later than the cycle's own notBefore.
 */
export async function changeGate(s: CycleState, a: CycleActs, changeNumber: string): Promise<string | undefined> {
  let notBefore = s.input.notBefore;
  await followChange(s, a, changeNumber, {
    current: true,
    checkpoints: true,
    onState: (ev) => {
      const withdrawn = changeWithdrawn(changeNumber, ev);
      if (withdrawn) throw new CycleEnded(CycleStage.CANCELLED, withdrawn);
      if (ev?.state !== 'scheduled' && ev?.state !== 'implement') return false;
      if (ev.plannedStart && (!notBefore || Date.parse(ev.plannedStart) > Date.parse(notBefore)))
        notBefore = ev.plannedStart;
      return true;
    },
  });
  s.status.reasons.push(`change ${changeNumber} is ${s.changeEvent?.state}`);
  return notBefore;
}
