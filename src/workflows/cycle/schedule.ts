/**
 * SCHEDULED: waits for the planned start. With a change request it follows the change meanwhile: the change
 * manager may move the window (the wait follows it, never before the cycle's own notBefore) or cancel or
 * reject the change (the cycle ends CANCELLED, nothing deployed).
 */
import { condition, patched } from '@temporalio/workflow';
import { CycleStage } from '../../domain/cycle';
import type { CycleActs } from './proxies';
import { followChange } from './change';
import { changeWithdrawn } from './change-gate';
import { checkpoint } from './checkpoint';
import { control, setStage } from './steps';
import { CycleEnded, iso, type CycleState } from './state';

/** Patch ids (patched()): histories recorded before each change still replay. */
const SCHEDULED_FOLLOWS_CHANGE = 'scheduled-follows-change';
/** News of the change that came while SCHEDULED was being recorded counts too (it was missed before). */
const SCHEDULED_SEES_EARLY_NEWS = 'scheduled-sees-early-news';

/** Returns the start the cycle waited for (undefined: deploying now). */
export async function schedule(
  s: CycleState,
  a: CycleActs,
  notBefore: string | undefined,
  followsChange: boolean,
): Promise<string | undefined> {
  s.step = 'scheduling failed';
  await setStage(
    s,
    a,
    CycleStage.SCHEDULED,
    notBefore ? `deploying from ${notBefore}` : 'deploying now',
    notBefore ? { notBefore } : {},
  );
  if (notBefore) {
    s.status.nextWindow = { start: notBefore, end: notBefore };
    if (s.status.changeNumber && followsChange && patched(SCHEDULED_FOLLOWS_CHANGE)) {
      notBefore = await followWhileScheduled(s, a, s.status.changeNumber, notBefore);
    } else {
      const wait = Date.parse(notBefore) - Date.now();
      if (wait > 0) await condition(() => s.interrupted(), wait);
    }
  }
  await checkpoint(s, a);
  return notBefore;
}

async function followWhileScheduled(
  s: CycleState,
  a: CycleActs,
  changeNumber: string,
  plannedStart: string,
): Promise<string> {
  let at = plannedStart;
  await followChange(s, a, changeNumber, {
    current: patched(SCHEDULED_SEES_EARLY_NEWS),
    until: () => Date.parse(at),
    checkpoints: false,
    onState: async (ev) => {
      const withdrawn = changeWithdrawn(changeNumber, ev, ' while scheduled');
      if (withdrawn) throw new CycleEnded(CycleStage.CANCELLED, withdrawn);
      if (!ev?.plannedStart) return false;
      const { notBefore } = s.input;
      const next = notBefore && Date.parse(notBefore) > Date.parse(ev.plannedStart) ? notBefore : ev.plannedStart;
      if (Date.parse(next) === Date.parse(at)) return false;
      s.status.reasons.push(`change ${changeNumber} rescheduled: deploying from ${next} (was ${at})`);
      await control(s, a, 'rescheduled', ev.by ?? 'servicenow', { changeNumber, from: at, to: next });
      at = next;
      s.status.nextWindow = { start: at, end: at };
      s.status.updatedAt = iso();
      return false;
    },
  });
  return at;
}
