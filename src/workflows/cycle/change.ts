/**
 * The cycle's change request in ServiceNow: raising it (openChange), asking for its state (pollChange) and
 * following it while the cycle waits on it (followChange), by webhook signal or by polling.
 */
import { condition, patched } from '@temporalio/workflow';
import type { CycleActivities } from '../../activities/cycle';
import { CycleStage, type ChangeRequestStateEvent } from '../../domain/cycle';
import { failureMessage, isOutage } from '../failures';
import type { CycleActs } from './proxies';
import { askAfterFailure, checkpoint } from './checkpoint';
import { bestEffort } from './steps';
import { CycleEnded, type CycleState } from './state';

/** Patch id (patched()): histories recorded before failures of the change desk were handled still replay. */
export const FAILURES_END_VISIBLY = 'failures-end-visibly';

/**
 * Raises the change request (idempotent by cycle id). ServiceNow refusing it ends the cycle FAILED in its
 * own words; ServiceNow not answering pauses the cycle and asks (resume retries, cancel ends it).
 */
export async function openChange(
  s: CycleState,
  a: CycleActs,
  args: Parameters<CycleActivities['openChange']>[0],
): Promise<Awaited<ReturnType<CycleActivities['openChange']>>> {
  for (;;) {
    try {
      return await a.desk.openChange(args);
    } catch (e) {
      if (!patched(FAILURES_END_VISIBLY)) throw e;
      if (!isOutage(e))
        throw new CycleEnded(CycleStage.FAILED, `could not create the change request: ${failureMessage(e)}`);
      await askAfterFailure(
        s,
        a,
        `ServiceNow is not answering, so the change request could not be created (${failureMessage(e)})`,
      );
    }
  }
}

/**
 * Polls the change. An unanswered poll is no news (the next poll or the webhook brings the state), said once
 * per outage; a refused one (credentials, ACL) pauses and asks, since only a person can fix it.
 */
async function pollChange(s: CycleState, a: CycleActs, changeNumber: string): Promise<ChangeRequestStateEvent | null> {
  for (;;) {
    try {
      const polled = await a.desk.getChangeState({ changeNumber });
      if (s.pollFailing) s.status.reasons.push(`ServiceNow answers again: following change ${changeNumber}`);
      s.pollFailing = false;
      return polled;
    } catch (e) {
      if (!patched(FAILURES_END_VISIBLY)) throw e;
      if (!isOutage(e)) {
        await askAfterFailure(
          s,
          a,
          `ServiceNow refused to show change ${changeNumber} (${failureMessage(e)}): fix the integration's access to change requests`,
        );
        continue;
      }
      if (!s.pollFailing) {
        s.pollFailing = true;
        const why = `ServiceNow did not answer when asked for change ${changeNumber} (${failureMessage(e)}): still waiting; the next poll or the webhook brings its state`;
        s.status.reasons.push(why);
        await bestEffort('the note that ServiceNow is not answering', () =>
          a.notify.notifyStage({ cycleId: s.cycleId, stage: s.status.stage, text: why }),
        );
      }
      return null;
    }
  }
}

export interface FollowChange {
  /** Look at the state already known before waiting for news (the change may have moved already). */
  current: boolean;
  /** Stop following at this time (ms since the epoch; read again after each news): no poll is due after it. */
  until?: () => number;
  /**
   * Serve checkpoints while following (pause waits, a cancel or rollback ends the cycle). Without it, a cancel
   * or rollback stops the following and the caller's own checkpoint serves it.
   */
  checkpoints: boolean;
  /** Sees each state of the change; returns true when the cycle no longer waits on the change. */
  onState(ev: ChangeRequestStateEvent | undefined): Promise<boolean> | boolean;
}

/**
 * Follows change `changeNumber` until `o.onState` is satisfied, `o.until` passes or (without checkpoints) the
 * cycle is interrupted. News comes by webhook signal (changeRequestStateSignal), or, when none comes within
 * the policy's `change.pollSeconds`, by polling ServiceNow; a polled state that differs from the known one is
 * news like a signal.
 */
export async function followChange(s: CycleState, a: CycleActs, changeNumber: string, o: FollowChange): Promise<void> {
  const pollMs = s.policy!.change.pollSeconds * 1000;
  let seen = s.changeSeq;
  if (o.current && (await o.onState(s.changeEvent))) return;
  for (;;) {
    const until = o.until?.();
    if (!o.checkpoints && ((until !== undefined && until - Date.now() <= 0) || s.interrupted())) return;
    const news = await condition(
      () => s.changeSeq !== seen || s.interrupted(),
      until === undefined ? pollMs : Math.min(until - Date.now(), pollMs),
    );
    if (o.checkpoints) await checkpoint(s, a);
    else if (s.interrupted()) return;
    if (!news && (until === undefined || until > Date.now())) {
      const polled = await pollChange(s, a, changeNumber);
      const known = s.changeEvent;
      if (
        polled &&
        (polled.state !== known?.state ||
          polled.approval !== known?.approval ||
          polled.plannedStart !== known?.plannedStart)
      )
        s.noteChange(polled);
    }
    if (s.changeSeq === seen) continue;
    seen = s.changeSeq;
    if (await o.onState(s.changeEvent)) return;
  }
}
