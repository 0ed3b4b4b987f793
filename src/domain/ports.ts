/**
 * Ports: what the cycle's activities need from the outside world. Real adapters live in integrations/
 * (ServiceNowChangeDesk, SlackChatChannel, TeamsChatChannel, SmtpMailer) and db/ (DrizzleAgentJobs);
 * test doubles implement the same interfaces. Methods return small plain objects, never ORM rows.
 * Change additively.
 */
import type { ChangeRequestStateEvent, CycleScope, CycleStage, CycleStatus, WaveCounts, WaveStatus } from './cycle';

// ---------------------------------------------------------------- agent jobs

export type JobKind = 'scan' | 'install' | 'rollback' | 'verify' | 'reboot';
export type RebootBehaviour = 'never' | 'if_required' | 'always';

export interface JobSpec {
  endpointId: string;
  kind: JobKind;
  /** Patch ids (install/rollback/verify) with the exact package identities, reboot policy, etc. */
  payload: Record<string, unknown>;
}

export interface DispatchJobsInput {
  cycleId: string;
  /** 0 = test ring; 1… = waves; null for fleet scans outside a cycle. */
  wave: number | null;
  jobs: JobSpec[];
  notBefore?: string;
  /** Window end minus expected install time: no job starts after it. */
  deadline?: string;
  /** Write the jobs 'held' (not handed to agents) until release() lets them go, for concurrency limits. */
  hold?: boolean;
  /**
   * Spread the jobs over this many seconds from notBefore (or now): each endpoint's job waits its own delay
   * (splayOffsetMs), the same on every retry of the dispatch.
   */
  splaySeconds?: number;
}

/**
 * AgentJobs — "returns counts" contract: dispatch is idempotent (job ids are deterministic from
 * (cycle, wave, endpoint, kind)), so a retried dispatch creates nothing new.
 */
export interface AgentJobs {
  dispatch(input: DispatchJobsInput): Promise<{ created: number; existing: number }>;
  /** Counts for the jobs of (cycle, wave, kind) now. */
  counts(cycleId: string, wave: number | null, kind: JobKind): Promise<WaveCounts>;
  /** Marks leased jobs past their lease + grace as unreachable; returns how many. */
  expireUnreachable(cycleId: string, wave: number | null, olderThanSeconds: number, now: Date): Promise<number>;
  /** Cancels queued jobs (pause/cancel/window end); returns how many. */
  cancelQueued(cycleId: string, wave: number | null): Promise<number>;
  /**
   * Hands held jobs to agents (held → queued): at most `batchSize` now, and never more than
   * `concurrency` queued or leased at once. Returns how many were released. Optional: adapters
   * without holding dispatch everything at once.
   */
  release?(cycleId: string, wave: number | null, limits: { concurrency: number; batchSize: number }): Promise<number>;
}

// ---------------------------------------------------------------- chat

export interface PatchSummaryLine {
  patchId: string;
  title: string;
  severity: string;
  type: string;
  cvss?: number;
  cves: string[];
  knownExploited: boolean;
  endpoints: number;
}

export interface ApprovalRequest {
  cycleId: string;
  policyName: string;
  emergency: boolean;
  requestedBy: string;
  scope: CycleScope;
  endpoints: number;
  bySeverity: Record<string, number>;
  byType: Record<string, number>;
  topPatches: PatchSummaryLine[];
  test?: WaveStatus;
  changeNumber?: string;
  changeUrl?: string;
  deadline?: string;
  approvalsNeeded: number;
  /** Policy's channel override (Slack channel id, Teams conversation id), else the default. */
  channel?: string;
  dashboardUrl?: string;
  /** Set on a repeated request: 'reminder' after approval.reminderSeconds, 'escalation' when the escalation groups are asked too. */
  notice?: 'reminder' | 'escalation';
  /** Who may vote now (identities), so a notifier can mention them. */
  approvers?: string[];
}

export interface StageUpdate {
  cycleId: string;
  stage: CycleStage;
  /** One line for the thread: "Test ring: 5/5 succeeded", "Wave 2 of 3 done: 40 ok, 1 failed". */
  text: string;
  wave?: WaveStatus;
}

export interface PauseQuestion {
  cycleId: string;
  reason: string;
  wave?: WaveStatus;
}

export interface DecisionNotice {
  cycleId: string;
  identity: string;
  /** The person behind the identity when the vote carried one (`person:<name>`). */
  person?: string;
  channel: string;
  decision: 'approve' | 'reject';
  reason?: string;
  outcome: 'pending' | 'approved' | 'rejected';
  at: string;
}

export interface CycleReport {
  cycleId: string;
  policyName: string;
  outcome: CycleStage;
  status: CycleStatus;
  /** Compliance % of the scope before and after the cycle. */
  complianceBefore?: number;
  complianceAfter?: number;
  failures: Array<{ endpointId: string; hostname: string; patchId?: string; reason: string }>;
  changeNumber?: string;
  startedAt: string;
  finishedAt: string;
}

/** ChatNotifier — messages are stored per (cycle, channel) and updated in place, never re-posted. */
export interface ChatNotifier {
  requestApproval(req: ApprovalRequest): Promise<void>;
  recordDecision(notice: DecisionNotice): Promise<void>;
  stageUpdate(update: StageUpdate): Promise<void>;
  pauseQuestion(question: PauseQuestion): Promise<void>;
  summary(report: CycleReport): Promise<void>;
}

// ---------------------------------------------------------------- change management

export type ChangeType = 'normal' | 'standard' | 'emergency';

export interface ChangeRequestInput {
  /** correlation_id: a retried open finds the change it already made. */
  cycleId: string;
  type: ChangeType;
  /** For standard changes: the template sys_id or name. */
  standardTemplate?: string;
  shortDescription: string;
  description: string;
  risk: 'high' | 'moderate' | 'low';
  impact: 1 | 2 | 3;
  plannedStart?: string;
  plannedEnd?: string;
  implementationPlan: string;
  backoutPlan: string;
  testPlan: string;
  assignmentGroup?: string;
  /** Endpoint hostnames; CIs are attached where CMDB names match. */
  configurationItems: string[];
}

export interface ChangeRef {
  number: string;
  sysId: string;
  state: ChangeRequestStateEvent['state'];
  url: string;
}

export type CloseCode = 'successful' | 'successful_issues' | 'unsuccessful';

export interface ChangeDesk {
  /** Idempotent by cycleId (correlation_id). */
  open(input: ChangeRequestInput): Promise<ChangeRef>;
  /** Returns null when the change is unknown. */
  get(changeNumber: string): Promise<ChangeRequestStateEvent | null>;
  addWorkNote(changeNumber: string, note: string): Promise<void>;
  /** Moves to Review, then Closed with the close code and notes. */
  close(changeNumber: string, closeCode: CloseCode, closeNotes: string): Promise<void>;
}

// ---------------------------------------------------------------- email

export interface Mailer {
  sendCycleReport(report: CycleReport, to: string[]): Promise<void>;
  sendApprovalRequest(req: ApprovalRequest, to: string[]): Promise<void>;
}

/**
 * Where a chat platform says who an identity is (Slack `users.info`): the e-mail it holds for an identity of its
 * own (`slack:U…`), so `people link` can record the person's address for linking their other identities by e-mail.
 * Returns undefined for an identity that is not this platform's, an unknown user, or an address withheld (a
 * missing scope); throws on transport errors (callers treat every lookup as best effort).
 */
export interface IdentityDirectory {
  emailOf(identity: string): Promise<string | undefined>;
}
