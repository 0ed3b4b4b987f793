/**
 * LogChatNotifier: the real notifier when no chat is configured. It posts nowhere; every message goes to
 * the log and to the audit log, so what would have been said is still on record.
 */
import { appendAudit } from '../db/audit';
import type { Db } from '../db/client';
import type {
  ApprovalRequest,
  ChatNotifier,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../domain/ports';
import type { Logger } from '../logging';

export class LogChatNotifier implements ChatNotifier {
  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  private async record(kind: string, cycleId: string, text: string, details: Record<string, unknown>): Promise<void> {
    this.logger.info({ cycleId, kind, ...details }, `chat (not configured): ${text}`);
    await appendAudit(this.db, {
      actor: 'system:chat-log',
      action: `chat.${kind}`,
      subjectType: 'cycle',
      subjectId: cycleId,
      details: { text, ...details },
    });
  }

  async requestApproval(req: ApprovalRequest): Promise<void> {
    await this.record(
      'approval_request',
      req.cycleId,
      `cycle ${req.cycleId} (${req.policyName}) needs ${req.approvalsNeeded} approval(s): ${req.endpoints} endpoint(s)`,
      {
        approvalsNeeded: req.approvalsNeeded,
        endpoints: req.endpoints,
        bySeverity: req.bySeverity,
        ...(req.notice ? { notice: req.notice } : {}),
      },
    );
  }

  async recordDecision(n: DecisionNotice): Promise<void> {
    await this.record(
      'decision',
      n.cycleId,
      `${n.identity} voted ${n.decision}${n.reason ? ` (${n.reason})` : ''}: ${n.outcome}`,
      { identity: n.identity, decision: n.decision, outcome: n.outcome },
    );
  }

  async stageUpdate(u: StageUpdate): Promise<void> {
    await this.record('stage', u.cycleId, `${u.stage}: ${u.text}`, { stage: u.stage });
  }

  async pauseQuestion(q: PauseQuestion): Promise<void> {
    await this.record('pause_question', q.cycleId, `paused: ${q.reason} — resume, roll back or cancel?`, {
      reason: q.reason,
    });
  }

  async summary(r: CycleReport): Promise<void> {
    await this.record('summary', r.cycleId, `cycle ${r.cycleId} ended ${r.outcome}`, {
      outcome: r.outcome,
      failures: r.failures.length,
    });
  }
}
