/**
 * Every query, signal and update of the patch cycle (messages.ts), registered in one place. Handlers change
 * only the cycle's state; the stages notice at their next checkpoint or condition.
 */
import { setHandler } from '@temporalio/workflow';
import { approvalsReceived, checkVote, tally } from '../../domain/approval';
import { CycleStage, type ApprovalResult, type ApprovalVote } from '../../domain/cycle';
import {
  approveCycleUpdate,
  cancelCycleSignal,
  changeRequestStateSignal,
  cycleStatusQuery,
  pauseCycleSignal,
  rejectCycleUpdate,
  resumeCycleSignal,
  rollbackCycleSignal,
} from '../messages';
import type { CycleActs } from './proxies';
import { bestEffort, control } from './steps';
import { iso, type CycleState } from './state';

export function registerHandlers(s: CycleState, a: CycleActs): void {
  const { status } = s;
  setHandler(cycleStatusQuery, () => status);

  setHandler(approveCycleUpdate, (vote) => castVote(s, a, vote, 'approve'), {
    validator: (vote) => validateVote(s, vote, 'approve'),
  });
  setHandler(rejectCycleUpdate, (vote) => castVote(s, a, vote, 'reject'), {
    validator: (vote) => validateVote(s, vote, 'reject'),
  });

  // Pause/resume also act mid-wave (recordControl holds the installs not yet handed out); `seq` orders them.
  setHandler(pauseCycleSignal, async (c) => {
    status.paused = true;
    status.pauseReason = c.reason ?? `paused by ${c.by}`;
    await control(s, a, 'paused', c.by, { reason: status.pauseReason, seq: ++s.pauseSeq });
  });
  setHandler(resumeCycleSignal, async (c) => {
    status.paused = false;
    delete status.pauseReason;
    await control(s, a, 'resumed', c.by, { seq: ++s.pauseSeq });
  });
  setHandler(cancelCycleSignal, (c) => {
    s.cancelRequested ??= c;
  });
  setHandler(rollbackCycleSignal, (c) => {
    if (c.endpointId) s.endpointRollbacks.push({ by: c.by, endpointId: c.endpointId });
    else s.rollbackAll ??= c;
  });
  setHandler(changeRequestStateSignal, (e) => s.noteChange(e));
}

/** The update validator: refuses a vote (with the reason, synchronously) unless the approval policy allows it. */
function validateVote(s: CycleState, vote: ApprovalVote, decision: 'approve' | 'reject'): void {
  if (!s.approval || s.status.stage !== CycleStage.AWAIT_APPROVAL)
    throw new Error(`approvals are not open: the cycle is in ${s.status.stage}`);
  const c = checkVote(s.approval, vote, decision);
  if (!c.ok) throw new Error(c.reason);
}

async function castVote(
  s: CycleState,
  a: CycleActs,
  vote: ApprovalVote,
  decision: 'approve' | 'reject',
): Promise<ApprovalResult> {
  const approval = s.approval!;
  const { status } = s;
  const at = iso();
  const identity = vote.identity.trim();
  const person = vote.person?.trim();
  approval.records.push({
    identity,
    ...(person ? { person } : {}),
    channel: vote.channel,
    decision,
    ...(vote.reason ? { reason: vote.reason } : {}),
    at,
  });
  const outcome = tally(approval);
  status.approvals = {
    ...status.approvals,
    records: [...approval.records],
    received: approvalsReceived(approval),
    needed: approval.needed,
  };
  status.updatedAt = at;
  if (decision === 'reject') status.reasons.push(`rejected by ${vote.identity}: ${vote.reason ?? ''}`);
  await bestEffort('recording a vote', () =>
    a.notify.recordVote({
      cycleId: s.cycleId,
      notice: {
        cycleId: s.cycleId,
        identity,
        ...(person ? { person } : {}),
        channel: vote.channel,
        decision,
        ...(vote.reason ? { reason: vote.reason } : {}),
        outcome,
        at,
      },
      ...(vote.messageRef ? { messageRef: vote.messageRef } : {}),
    }),
  );
  return { decision, outcome, approvalsReceived: approvalsReceived(approval), approvalsNeeded: approval.needed };
}
