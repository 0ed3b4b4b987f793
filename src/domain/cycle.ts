/**
 * The patch cycle's public shapes: what the workflow takes, what its status query returns, what a vote is.
 * Shared by the workflow, the activities, the bot, the CLI, the dashboard and the tests. Pure types and
 * constants only (imported by workflow code). Change additively: running workflows depend on these.
 */

export const CycleStage = {
  IDENTIFY: 'IDENTIFY',
  ASSESS: 'ASSESS',
  TEST: 'TEST',
  AWAIT_APPROVAL: 'AWAIT_APPROVAL',
  SCHEDULED: 'SCHEDULED',
  DEPLOYING: 'DEPLOYING',
  VERIFYING: 'VERIFYING',
  REPORTING: 'REPORTING',
  COMPLETED: 'COMPLETED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
  ROLLED_BACK: 'ROLLED_BACK',
} as const;
export type CycleStage = (typeof CycleStage)[keyof typeof CycleStage];

export const TERMINAL_STAGES: readonly CycleStage[] = [
  CycleStage.COMPLETED,
  CycleStage.FAILED,
  CycleStage.CANCELLED,
  CycleStage.ROLLED_BACK,
];

/** Where a person acted from. Identities are `<channel>:<id>`: slack:U123, teams:<aad id>, servicenow:<user>, cli:<user>, web:<user>. */
export type Channel = 'slack' | 'teams' | 'servicenow' | 'cli' | 'web' | 'email' | 'api' | 'system';

export interface CycleScope {
  groups?: string[];
  tags?: string[];
  osFamilies?: Array<'windows' | 'macos' | 'linux'>;
  endpointIds?: string[];
}

/** One input object, so fields can be added without breaking running workflows. */
export interface PatchCycleInput {
  cycleId: string;
  policyName: string;
  /** Pinned policy version; undefined = the latest at start (the cycle records which it ran under). */
  policyVersion?: number;
  scope: CycleScope;
  /** Identity of whoever started it (separation of duties: they cannot approve). */
  requestedBy: string;
  /**
   * The person behind `requestedBy` (`person:<name>`, or the identity itself when it is linked to nobody), resolved
   * where the start entered (the cycle service); absent in cycles started before people existed.
   */
  requestedByPerson?: string;
  emergency?: boolean;
  /** ISO time; the cycle does not deploy before it (tests pass near-future times). */
  notBefore?: string;
}

export interface ApprovalVote {
  identity: string;
  /**
   * The person behind `identity`, resolved where the vote entered (the cycle service reads person_identities;
   * the workflow cannot): quorum counts people and separation of duties compares people. Absent in votes sent
   * before people existed: the identity is then the person.
   */
  person?: string;
  /**
   * Every identity linked to that person when the vote arrived (the voting one included), so an identity linked
   * after the cycle started or after an earlier vote is still known as the same person's. Absent in older votes.
   */
  personIdentities?: string[];
  channel: Channel;
  /** Required for a rejection. */
  reason?: string;
  /** Where the click came from (Slack message ts, Teams activity id), for the audit log. */
  messageRef?: string;
}

export interface ApprovalResult {
  decision: 'approve' | 'reject';
  /** After this vote. */
  outcome: 'pending' | 'approved' | 'rejected';
  approvalsReceived: number;
  approvalsNeeded: number;
}

export interface ApprovalRecord {
  identity: string;
  /** The person who voted (see ApprovalVote.person); absent in records made before people existed. */
  person?: string;
  channel: Channel;
  decision: 'approve' | 'reject';
  reason?: string;
  at: string;
}

/** A ServiceNow change request's state as the webhook or the poller saw it (signal payload). */
export interface ChangeRequestStateEvent {
  changeNumber: string;
  /** ServiceNow change states, lower-case: new, assess, authorize, scheduled, implement, review, closed, canceled. */
  state: 'new' | 'assess' | 'authorize' | 'scheduled' | 'implement' | 'review' | 'closed' | 'canceled';
  /** Approval field of the change: requested, approved, rejected, not requested. */
  approval?: 'requested' | 'approved' | 'rejected' | 'not requested';
  plannedStart?: string;
  plannedEnd?: string;
  by?: string;
  reason?: string;
}

export interface WaveCounts {
  total: number;
  succeeded: number;
  failed: number;
  unreachable: number;
  /** Still queued or running when the wave ended (window closed, threshold tripped). */
  pending: number;
}

export interface WaveStatus extends WaveCounts {
  index: number;
  name: string;
  state: 'planned' | 'waiting_window' | 'running' | 'done' | 'paused' | 'rolled_back' | 'skipped';
  windowStart?: string;
  windowEnd?: string;
}

export interface CycleStatus {
  cycleId: string;
  policyName: string;
  policyVersion?: number;
  stage: CycleStage;
  paused: boolean;
  pauseReason?: string;
  emergency: boolean;
  requestedBy: string;
  scope: CycleScope;
  endpoints: number;
  patches: number;
  /** Missing patches by severity in scope, after assessment. */
  bySeverity: Record<string, number>;
  approvals: { records: ApprovalRecord[]; received: number; needed: number; deadline?: string };
  test?: WaveStatus;
  waves: WaveStatus[];
  nextWindow?: { start: string; end: string };
  changeNumber?: string;
  changeState?: string;
  /** Plain-words reasons for each decision taken (priority, exceptions, supersedence, rejections). */
  reasons: string[];
  startedAt: string;
  updatedAt: string;
  outcome?: string;
}

export function workflowIdForCycle(cycleId: string): string {
  return `patch-cycle:${cycleId}`;
}
