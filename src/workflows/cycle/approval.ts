/**
 * AWAIT_APPROVAL: automatic for the patch types the policy approves itself, else votes (workflow updates,
 * handlers.ts) until the quorum approves, someone rejects, or the approval times out; reminders and
 * escalation while no one answers.
 */
import { condition } from '@temporalio/workflow';
import type { AssessResult } from '../../domain/assessment';
import { approvalsReceived, tally, type ApprovalState } from '../../domain/approval';
import { CycleStage } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { checkpoint } from './checkpoint';
import { bestEffort, control, setStage } from './steps';
import { CycleEnded, iso, type CycleState } from './state';

export async function approve(
  s: CycleState,
  a: CycleActs,
  policy: DeploymentPolicy,
  assessment: AssessResult,
): Promise<void> {
  const { status } = s;
  if (!assessment.needsApproval) {
    await setStage(s, a, CycleStage.AWAIT_APPROVAL, 'auto-approved');
    status.reasons.push(
      `auto-approved: every patch is of a type the policy approves automatically (${policy.autoApprove.types.join(', ')})`,
    );
    return;
  }
  const who = await a.acts.resolveApprovers({ policy });
  const approval: ApprovalState = {
    requestedBy: s.input.requestedBy,
    ...(s.input.requestedByPerson ? { requestedByPerson: s.input.requestedByPerson } : {}),
    approvers: who.approvers,
    escalationApprovers: who.escalationApprovers,
    escalated: false,
    needed: assessment.approvalsNeeded,
    records: [],
    separationOfDuties: policy.approval.separationOfDuties,
  };
  s.approval = approval;
  const opened = Date.now();
  const deadline = opened + policy.approval.timeoutSeconds * 1000;
  status.approvals = { records: [], received: 0, needed: assessment.approvalsNeeded, deadline: iso(deadline) };
  await setStage(
    s,
    a,
    CycleStage.AWAIT_APPROVAL,
    `waiting for ${assessment.approvalsNeeded} approval(s) from ${policy.approval.approverGroups.join(', ')}`,
  );
  const ask = (notice?: 'reminder' | 'escalation') => askForApproval(s, a, policy, assessment, iso(deadline), notice);
  await ask();
  let lastNotice = opened;
  const escalateAt =
    policy.approval.escalationGroups.length > 0 ? opened + policy.approval.escalateAfterSeconds * 1000 : Infinity;
  for (;;) {
    const wake = Math.min(
      deadline,
      lastNotice + policy.approval.reminderSeconds * 1000,
      approval.escalated ? Infinity : escalateAt,
    );
    const decided = await condition(
      () => tally(approval) !== 'pending' || s.interrupted(),
      Math.max(1, wake - Date.now()),
    );
    if (decided) break;
    const t = Date.now();
    if (t >= deadline) {
      const why = `approval timed out after ${policy.approval.timeoutSeconds}s with ${approvalsReceived(approval)} of ${approval.needed} approval(s)`;
      status.reasons.push(why);
      throw new CycleEnded(CycleStage.FAILED, why);
    }
    if (!approval.escalated && t >= escalateAt) {
      approval.escalated = true;
      status.reasons.push(
        `escalated to ${policy.approval.escalationGroups.join(', ')} after ${policy.approval.escalateAfterSeconds}s`,
      );
      await control(s, a, 'approval.escalated', 'system:workflow', { groups: policy.approval.escalationGroups });
      await ask('escalation');
    } else {
      await control(s, a, 'approval.reminded', 'system:workflow', {});
      await ask('reminder');
    }
    lastNotice = t;
  }
  await checkpoint(s, a);
  if (tally(approval) === 'rejected') {
    const r = approval.records.find((x) => x.decision === 'reject')!;
    throw new CycleEnded(CycleStage.CANCELLED, `rejected by ${r.identity}: ${r.reason ?? ''}`);
  }
  status.reasons.push(
    `approved by ${approval.records
      .filter((x) => x.decision === 'approve')
      .map((x) => x.identity)
      .join(', ')}`,
  );
}

/** The approval request (or a reminder, or the escalation) to the approvers, in chat: best effort. */
async function askForApproval(
  s: CycleState,
  a: CycleActs,
  policy: DeploymentPolicy,
  assessment: AssessResult,
  deadline: string,
  notice?: 'reminder' | 'escalation',
): Promise<void> {
  const { status } = s;
  const approval = s.approval!;
  await bestEffort('the approval request', () =>
    a.notify.notifyApprovalRequest({
      cycleId: s.cycleId,
      policyName: policy.name,
      emergency: policy.emergency,
      requestedBy: s.input.requestedBy,
      scope: s.input.scope,
      endpoints: assessment.endpoints,
      bySeverity: assessment.bySeverity,
      byType: assessment.byType,
      topPatches: assessment.topPatches,
      ...(status.test ? { test: status.test } : {}),
      ...(status.changeNumber ? { changeNumber: status.changeNumber } : {}),
      deadline,
      approvalsNeeded: assessment.approvalsNeeded,
      ...(policy.notify.slackChannel ? { channel: policy.notify.slackChannel } : {}),
      ...(notice ? { notice } : {}),
      approvers: approval.escalated ? [...approval.approvers, ...approval.escalationApprovers] : approval.approvers,
    }),
  );
}
