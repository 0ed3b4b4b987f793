/**
 * A test double of CycleService (the contract in src/services/cycle-service.ts) that records every call
 * and applies the approval rules the real validator applies: the requester cannot approve, one vote per
 * person, a rejection needs a reason, unknown cycles are NOT_FOUND. For front-end tests (Slack, Teams).
 */
import type { ApprovalResult, ApprovalVote, CycleStatus } from '../../src/domain/cycle';
import { CodedError, ErrorCode } from '../../src/domain/errors';
import type { CycleListItem, CycleService, StartCycleInput } from '../../src/services/cycle-service';

export interface RecordedCall {
  method: keyof CycleService;
  args: unknown[];
}

export class RecordingCycleService implements CycleService {
  readonly calls: RecordedCall[] = [];
  readonly cycles = new Map<
    string,
    {
      requestedBy: string;
      needed: number;
      votes: Array<ApprovalVote & { decision: 'approve' | 'reject' }>;
      stage: CycleStatus['stage'];
      paused: boolean;
      policyName: string;
    }
  >();
  /** Milliseconds each Update takes (a real one crosses Temporal). */
  delayMs = 0;

  addCycle(cycleId: string, o: { requestedBy: string; needed?: number; policyName?: string }): void {
    this.cycles.set(cycleId, {
      requestedBy: o.requestedBy,
      needed: o.needed ?? 1,
      votes: [],
      stage: 'AWAIT_APPROVAL',
      paused: false,
      policyName: o.policyName ?? 'monthly',
    });
  }

  callsOf(method: keyof CycleService): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  private get(cycleId: string) {
    const c = this.cycles.get(cycleId);
    if (!c) throw new CodedError(ErrorCode.NotFound, `no cycle ${cycleId}`);
    return c;
  }

  async start(input: StartCycleInput) {
    this.calls.push({ method: 'start', args: [input] });
    const cycleId = `c${this.cycles.size + 1}`;
    this.addCycle(cycleId, { requestedBy: input.requestedBy, policyName: input.policyName });
    return { cycleId, workflowId: `patch-cycle:${cycleId}` };
  }

  async status(cycleId: string): Promise<CycleStatus> {
    this.calls.push({ method: 'status', args: [cycleId] });
    const c = this.get(cycleId);
    const now = new Date().toISOString();
    return {
      cycleId,
      policyName: c.policyName,
      stage: c.stage,
      paused: c.paused,
      emergency: false,
      requestedBy: c.requestedBy,
      scope: {},
      endpoints: 0,
      patches: 0,
      bySeverity: {},
      approvals: {
        records: c.votes.map((v) => ({
          identity: v.identity,
          channel: v.channel,
          decision: v.decision,
          reason: v.reason,
          at: now,
        })),
        received: c.votes.filter((v) => v.decision === 'approve').length,
        needed: c.needed,
      },
      waves: [],
      reasons: [],
      startedAt: now,
      updatedAt: now,
    };
  }

  async list(): Promise<CycleListItem[]> {
    this.calls.push({ method: 'list', args: [] });
    const now = new Date().toISOString();
    return [...this.cycles].map(([cycleId, c]) => ({
      cycleId,
      policyName: c.policyName,
      stage: c.stage,
      emergency: false,
      requestedBy: c.requestedBy,
      changeNumber: null,
      createdAt: now,
      updatedAt: now,
    }));
  }

  private async vote(cycleId: string, vote: ApprovalVote, decision: 'approve' | 'reject'): Promise<ApprovalResult> {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const c = this.get(cycleId);
    if (c.stage !== 'AWAIT_APPROVAL')
      throw new CodedError(ErrorCode.ApprovalRefused, `the cycle is not waiting for approval (it is ${c.stage})`);
    if (vote.identity === c.requestedBy)
      throw new CodedError(ErrorCode.ApprovalRefused, 'you requested this cycle; someone else must approve');
    if (c.votes.some((v) => v.identity === vote.identity))
      throw new CodedError(ErrorCode.ApprovalRefused, 'you have already voted on this cycle');
    if (decision === 'reject' && !vote.reason)
      throw new CodedError(ErrorCode.InvalidInput, 'a rejection needs a reason');
    c.votes.push({ ...vote, decision });
    const received = c.votes.filter((v) => v.decision === 'approve').length;
    const outcome = decision === 'reject' ? 'rejected' : received >= c.needed ? 'approved' : 'pending';
    if (outcome !== 'pending') c.stage = outcome === 'approved' ? 'SCHEDULED' : 'CANCELLED';
    return { decision, outcome, approvalsReceived: received, approvalsNeeded: c.needed };
  }

  async approve(cycleId: string, vote: ApprovalVote) {
    this.calls.push({ method: 'approve', args: [cycleId, vote] });
    return this.vote(cycleId, vote, 'approve');
  }

  async reject(cycleId: string, vote: ApprovalVote) {
    this.calls.push({ method: 'reject', args: [cycleId, vote] });
    return this.vote(cycleId, vote, 'reject');
  }

  async pause(cycleId: string, by: string, reason?: string) {
    this.calls.push({ method: 'pause', args: [cycleId, by, reason] });
    this.get(cycleId).paused = true;
  }

  async resume(cycleId: string, by: string) {
    this.calls.push({ method: 'resume', args: [cycleId, by] });
    this.get(cycleId).paused = false;
  }

  async cancel(cycleId: string, by: string, reason?: string) {
    this.calls.push({ method: 'cancel', args: [cycleId, by, reason] });
    this.get(cycleId).stage = 'CANCELLED';
  }

  async rollback(cycleId: string, by: string, endpointId?: string) {
    this.calls.push({ method: 'rollback', args: [cycleId, by, endpointId] });
    this.get(cycleId);
  }

  async changeRequestState(cycleIdOrChangeNumber: string) {
    this.calls.push({ method: 'changeRequestState', args: [cycleIdOrChangeNumber] });
  }

  async scan() {
    this.calls.push({ method: 'scan', args: [] });
    return { workflowId: `fleet-scan:${Date.now()}` };
  }
}
