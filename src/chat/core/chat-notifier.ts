/**
 * CompositeChatNotifier: fans each notification out to every configured chat (Slack, Teams). Each channel
 * stores what it posted, so when one fails and the activity retries, the others update rather than re-post.
 */
import type {
  ApprovalRequest,
  ChatNotifier,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../../domain/ports';
import { CodedError, ErrorCode } from '../../domain/errors';

export class CompositeChatNotifier implements ChatNotifier {
  constructor(private readonly channels: Array<{ name: string; notifier: ChatNotifier }>) {}

  private async all(what: string, call: (n: ChatNotifier) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(this.channels.map((c) => call(c.notifier)));
    const failed = results
      .map((r, i) =>
        r.status === 'rejected'
          ? `${this.channels[i]!.name}: ${(r.reason as Error)?.message ?? String(r.reason)}`
          : undefined,
      )
      .filter((x): x is string => x !== undefined);
    if (failed.length) {
      throw new CodedError(ErrorCode.IntegrationFailed, `chat ${what} failed in ${failed.join('; ')}`, {
        retryable: true,
        cause: (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason,
      });
    }
  }

  requestApproval(req: ApprovalRequest) {
    return this.all('approval request', (n) => n.requestApproval(req));
  }
  recordDecision(notice: DecisionNotice) {
    return this.all('decision update', (n) => n.recordDecision(notice));
  }
  stageUpdate(update: StageUpdate) {
    return this.all('stage update', (n) => n.stageUpdate(update));
  }
  pauseQuestion(q: PauseQuestion) {
    return this.all('pause question', (n) => n.pauseQuestion(q));
  }
  summary(report: CycleReport) {
    return this.all('summary', (n) => n.summary(report));
  }
}
