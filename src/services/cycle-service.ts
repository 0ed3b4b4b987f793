/**
 * The one service every front-end drives cycles through: the CLI, Slack, Teams, the dashboard and the
 * ServiceNow webhook. It talks to workflows through the Temporal client and reads Postgres; it never
 * runs workflow logic itself. Implemented by createCycleService (services/temporal-cycle-service.ts).
 *
 * Error contract: a refused approval throws CodedError(APPROVAL_REFUSED) whose message is the
 * validator's reason ("you requested this cycle; someone else must approve"); an unknown cycle throws
 * CodedError(NOT_FOUND); bad input throws CodedError(INVALID_INPUT). Nothing else is thrown on purpose.
 */
import type {
  ApprovalResult,
  ApprovalVote,
  ChangeRequestStateEvent,
  CycleScope,
  CycleStage,
  CycleStatus,
} from '../domain/cycle';

export interface StartCycleInput {
  policyName: string;
  scope: CycleScope;
  requestedBy: string;
  emergency?: boolean;
  notBefore?: string;
}

export interface CycleListItem {
  cycleId: string;
  policyName: string;
  stage: CycleStage;
  emergency: boolean;
  requestedBy: string;
  changeNumber: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface CycleService {
  start(input: StartCycleInput): Promise<{ cycleId: string; workflowId: string }>;
  /** Live status from the workflow's query; for a finished cycle, the last recorded status. */
  status(cycleId: string): Promise<CycleStatus>;
  list(options?: { limit?: number; activeOnly?: boolean }): Promise<CycleListItem[]>;
  approve(cycleId: string, vote: ApprovalVote): Promise<ApprovalResult>;
  reject(cycleId: string, vote: ApprovalVote): Promise<ApprovalResult>;
  pause(cycleId: string, by: string, reason?: string): Promise<void>;
  resume(cycleId: string, by: string): Promise<void>;
  cancel(cycleId: string, by: string, reason?: string): Promise<void>;
  rollback(cycleId: string, by: string, endpointId?: string): Promise<void>;
  /** Forwards a ServiceNow change state to the cycle that owns the change (found by change number or correlation id). */
  changeRequestState(cycleIdOrChangeNumber: string, event: ChangeRequestStateEvent): Promise<void>;
  /** Starts a fleet scan for a scope; returns its workflow id. */
  scan(scope: CycleScope, requestedBy: string): Promise<{ workflowId: string }>;
}
