/**
 * Approval policy: risk level of a cycle, quorum, auto-approval, and the rules a vote must pass
 * (approver, separation of duties, one vote each, reasons for rejections). Used by the workflow's
 * update validator, so a refused click gets its reason synchronously. Pure; safe in workflow code.
 */
import { type ApprovalRecord, type ApprovalVote } from './cycle';
import { SEVERITY_RANK, type PatchType, type Severity } from './patch';
import { type DeploymentPolicy } from './policy';

export type RiskLevel = 'low' | 'moderate' | 'high' | 'critical';
export const RISK_LEVELS: readonly RiskLevel[] = ['low', 'moderate', 'high', 'critical'];

/**
 * A cycle's risk: critical severity starts at high, important at moderate, anything else at low; a
 * known-exploited vulnerability adds one level and business-critical endpoints (criticality 4) add one,
 * capped at critical. So a known-exploited critical patch on critical servers is "critical".
 */
export function cycleRiskLevel(x: {
  maxSeverity: Severity;
  knownExploited: boolean;
  maxCriticality: number;
}): RiskLevel {
  let level = x.maxSeverity === 'critical' ? 2 : x.maxSeverity === 'important' ? 1 : 0;
  if (x.knownExploited) level += 1;
  if (x.maxCriticality >= 4) level += 1;
  return RISK_LEVELS[Math.min(level, 3)]!;
}

/** Distinct approvals a cycle of this risk needs under the policy. */
export function approvalsNeeded(approval: DeploymentPolicy['approval'], risk: RiskLevel): number {
  return Math.max(1, approval.quorum[risk]);
}

/** Does a patch fall under the policy's auto-approval rule (type listed, severity not above the cap)? */
export function isAutoApproved(
  policy: Pick<DeploymentPolicy, 'autoApprove'>,
  patch: { type: PatchType; severity: Severity },
): boolean {
  const rule = policy.autoApprove;
  if (!rule.types.includes(patch.type)) return false;
  if (rule.maxSeverity !== undefined && SEVERITY_RANK[patch.severity] > SEVERITY_RANK[rule.maxSeverity]) return false;
  return true;
}

/** False when every patch matches the auto-approval rule (and for an empty list: nothing to approve). */
export function needsHumanApproval(
  policy: Pick<DeploymentPolicy, 'autoApprove'>,
  patches: Array<{ type: PatchType; severity: Severity }>,
): boolean {
  return patches.some((p) => !isAutoApproved(policy, p));
}

export interface ApprovalState {
  /** Identity that started the cycle. */
  requestedBy: string;
  /** The person who started it (PatchCycleInput.requestedByPerson); absent in older cycles: `requestedBy` is the person. */
  requestedByPerson?: string;
  /** Identities (slack:U123, teams:<aad id>, cli:alice …) allowed to vote, resolved from the approver groups. */
  approvers: string[];
  /** Identities of the escalation groups; their votes count only once `escalated`. */
  escalationApprovers: string[];
  escalated: boolean;
  needed: number;
  records: ApprovalRecord[];
  separationOfDuties: boolean;
}

export type VoteCheck = { ok: true } | { ok: false; reason: string };

/** The person a vote or record counts for: its `person` when the boundary resolved one, else the identity (older histories). */
export function voterOf(x: { identity: string; person?: string }): string {
  return x.person?.trim() || x.identity.trim();
}

/**
 * Did the cycle's requester cast this: the same identity, the same person as at the start, or a person who now
 * holds the identity that started it (linked since)?
 */
function isRequester(
  state: ApprovalState,
  x: { identity: string; person?: string; personIdentities?: string[] },
): boolean {
  return (
    x.identity.trim() === state.requestedBy ||
    voterOf(x) === (state.requestedByPerson ?? state.requestedBy) ||
    (x.personIdentities?.includes(state.requestedBy) ?? false)
  );
}

/** May this person cast this vote now? The reason is shown to the voter as is. */
export function checkVote(state: ApprovalState, vote: ApprovalVote, decision: 'approve' | 'reject'): VoteCheck {
  const who = vote.identity.trim();
  if (who === '') return { ok: false, reason: 'the vote carries no identity; sign in and try again' };
  const outcome = tally(state);
  if (outcome !== 'pending') return { ok: false, reason: `this cycle is already ${outcome}; votes are closed` };
  if (decision === 'approve' && state.separationOfDuties && isRequester(state, vote)) {
    return { ok: false, reason: 'you requested this cycle; someone else must approve' };
  }
  // Roles belong to identities: the identity voting must be an approver of this cycle.
  const eligible = state.approvers.includes(who) || (state.escalated && state.escalationApprovers.includes(who));
  if (!eligible) {
    const later = !state.escalated && state.escalationApprovers.includes(who);
    return {
      ok: false,
      reason: later
        ? `${who} is an escalation approver; escalation approvers can vote once the request is escalated`
        : `${who} is not an approver for this cycle`,
    };
  }
  // One vote per person, whichever of their identities cast it.
  const person = voterOf(vote);
  const previous = state.records.find(
    (r) => r.identity === who || voterOf(r) === person || vote.personIdentities?.includes(r.identity),
  );
  if (previous) {
    return {
      ok: false,
      reason: `you already voted (${previous.decision} at ${previous.at}${previous.identity === who ? '' : ` as ${previous.identity}`})`,
    };
  }
  if (decision === 'reject' && !vote.reason?.trim()) return { ok: false, reason: 'a rejection needs a reason' };
  return { ok: true };
}

/** Distinct approving people that count (the requester's own approval never counts under separation of duties). */
export function approvalsReceived(state: ApprovalState): number {
  const people = new Set<string>();
  for (const r of state.records) {
    if (r.decision !== 'approve') continue;
    if (state.separationOfDuties && isRequester(state, r)) continue;
    people.add(voterOf(r));
  }
  return people.size;
}

/** Any rejection vetoes; approved once distinct approvals reach the quorum. */
export function tally(state: ApprovalState): 'pending' | 'approved' | 'rejected' {
  if (state.records.some((r) => r.decision === 'reject')) return 'rejected';
  return approvalsReceived(state) >= state.needed ? 'approved' : 'pending';
}
