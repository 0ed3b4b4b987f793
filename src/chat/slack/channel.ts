/**
 * SlackChatChannel: the ChatNotifier on the Slack Web API. The approval message is posted once per
 * (cycle, channel) and updated in place; stage updates, pause questions and the summary go to its thread.
 * Every message goes through the shared message ledger (core/ledger.ts: reserve → post → release on failure),
 * so a retried activity updates what it posted and never posts twice.
 */
import { webApi } from '@slack/bolt';
import type { Db } from '../../db/client';
import { chatMessagesOf, updateChatMessageModel, type ChatMessageKey, type StoredChatMessage } from '../../db/chat';
import { approvalBlocks, pauseBlocks, summaryBlocks, type SlackMessage } from '../core/blocks';
import {
  approvalModelFromRequest,
  noticeLine,
  stageKey,
  stageLine,
  withDecision,
  type ApprovalCardModel,
} from '../core/card';
import { MessageLedger, type Delivery } from '../core/ledger';
import type {
  ApprovalRequest,
  ChatNotifier,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../../domain/ports';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { Logger } from '../../logging';

export type SlackWebClient = InstanceType<typeof webApi.WebClient>;

export function createSlackWebClient(token: string, apiUrl: string | undefined, logger?: Logger): SlackWebClient {
  return new webApi.WebClient(token, {
    slackApiUrl: apiUrl,
    retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2000 },
    ...(logger ? { logLevel: webApi.LogLevel.WARN } : {}),
  });
}

/** Slack `messageRef` is `<channel id>:<ts>` (chat.update needs the channel id, which a #name is not). */
export function slackRef(channelId: string, ts: string): string {
  return `${channelId}:${ts}`;
}
export function parseSlackRef(ref: string): { channel: string; ts: string } {
  const i = ref.indexOf(':');
  return { channel: ref.slice(0, i), ts: ref.slice(i + 1) };
}

export interface SlackChatChannelOptions {
  client: SlackWebClient;
  db: Db;
  logger: Logger;
  /** SLACK_DEFAULT_CHANNEL: where approvals go when the policy names no channel. */
  defaultChannel?: string;
}

export class SlackChatChannel implements ChatNotifier {
  private readonly ledger: MessageLedger;

  constructor(private readonly o: SlackChatChannelOptions) {
    this.ledger = new MessageLedger(o.db);
  }

  /** The Web API client (for the identity directory, which asks users.info). */
  get client(): SlackWebClient {
    return this.o.client;
  }

  async requestApproval(req: ApprovalRequest): Promise<void> {
    const conversationId = req.channel ?? this.o.defaultChannel;
    if (!conversationId) {
      this.o.logger.warn(
        { cycleId: req.cycleId },
        'no Slack channel for the approval request: set SLACK_DEFAULT_CHANNEL or a channel in the policy',
      );
      return;
    }
    const model = approvalModelFromRequest(req);
    const key: ChatMessageKey = { cycleId: req.cycleId, platform: 'slack', conversationId, key: 'approval' };
    const r = await this.ledger.postOnce(key, this.delivery(key, approvalBlocks(model)), {
      model: model as unknown as Record<string, unknown>,
    });
    if (r.posted) return;
    // Asked again (a reminder, a retried activity): refresh the same message, keeping the decisions.
    const existing = r.existing;
    if (!existing.messageRef) return;
    const old = existing.model as ApprovalCardModel | null;
    const merged: ApprovalCardModel = old ? { ...model, decisions: old.decisions, outcome: old.outcome } : model;
    await updateChatMessageModel(this.o.db, key, merged as unknown as Record<string, unknown>);
    await this.update(existing.messageRef, approvalBlocks(merged));
    if (req.notice && merged.outcome === 'pending') {
      const text = noticeLine(merged, req.notice, 'slack');
      await this.inThread(
        req.cycleId,
        `notice:${req.notice}`,
        { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] },
        false,
      );
    }
  }

  async recordDecision(notice: DecisionNotice): Promise<void> {
    const messages = await chatMessagesOf(this.o.db, notice.cycleId, 'slack', 'approval');
    for (const m of messages) {
      if (!m.messageRef || !m.model) continue;
      const model = withDecision(m.model as unknown as ApprovalCardModel, notice);
      await updateChatMessageModel(this.o.db, m, model as unknown as Record<string, unknown>);
      await this.update(m.messageRef, approvalBlocks(model));
    }
  }

  async stageUpdate(update: StageUpdate): Promise<void> {
    const text = stageLine(update);
    await this.inThread(
      update.cycleId,
      stageKey(update),
      { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] },
      false,
    );
  }

  async pauseQuestion(q: PauseQuestion): Promise<void> {
    await this.inThread(q.cycleId, `pause:${q.wave?.index ?? ''}:${q.reason}`.slice(0, 200), pauseBlocks(q), true, {
      question: q,
    });
  }

  async summary(report: CycleReport): Promise<void> {
    await this.inThread(report.cycleId, 'summary', summaryBlocks(report), true);
  }

  /** Marks a pause question answered (Resume / Roll back clicked): the buttons give way to who and when. */
  async resolvePause(
    m: StoredChatMessage,
    resolved: { by: string; action: 'resume' | 'rollback'; at: string },
  ): Promise<void> {
    const q = (m.model as { question?: PauseQuestion } | null)?.question;
    if (!q || !m.messageRef) return;
    await updateChatMessageModel(this.o.db, m, { question: q, resolved });
    await this.update(m.messageRef, pauseBlocks(q, resolved));
  }

  /** Posts under the cycle's thread in each channel that has one (the approval message), once per key. */
  private async inThread(
    cycleId: string,
    key: string,
    message: SlackMessage,
    broadcast: boolean,
    model?: Record<string, unknown>,
  ): Promise<void> {
    const parents = await this.threadParents(cycleId);
    for (const parent of parents) {
      const k: ChatMessageKey = { cycleId, platform: 'slack', conversationId: parent.conversationId, key };
      const thread = parseSlackRef(parent.messageRef!);
      // Already posted (a retried activity): never re-post.
      await this.ledger.postOnce(
        k,
        this.delivery(k, message, { thread_ts: thread.ts, channel: thread.channel, reply_broadcast: broadcast }),
        { threadRef: parent.messageRef, model },
      );
    }
  }

  /** The approval messages; for a cycle that needed none (auto-approved), a status message opens the thread. */
  private async threadParents(cycleId: string): Promise<StoredChatMessage[]> {
    const approvals = (await chatMessagesOf(this.o.db, cycleId, 'slack', 'approval')).filter((m) => m.messageRef);
    if (approvals.length) return approvals;
    const opened = (await chatMessagesOf(this.o.db, cycleId, 'slack', 'thread')).filter((m) => m.messageRef);
    if (opened.length) return opened;
    const conversationId = this.o.defaultChannel;
    if (!conversationId) return [];
    const k: ChatMessageKey = { cycleId, platform: 'slack', conversationId, key: 'thread' };
    const text = `Patch cycle ${cycleId}: progress in this thread.`;
    const r = await this.ledger.postOnce(
      k,
      this.delivery(k, { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] }),
    );
    if (!r.posted) return r.existing.messageRef ? [r.existing] : [];
    return [{ ...k, messageRef: r.ref, threadRef: null, model: null }];
  }

  /** chat.postMessage of `message` under key `k`, for the ledger; its reference is `channel:ts`. */
  private delivery(
    k: ChatMessageKey,
    message: SlackMessage,
    extra: { thread_ts?: string; channel?: string; reply_broadcast?: boolean } = {},
  ): Delivery {
    return {
      what: `Slack chat.postMessage to ${k.conversationId}`,
      send: async () => {
        const args = {
          channel: extra.channel ?? k.conversationId,
          text: message.text,
          blocks: message.blocks,
          unfurl_links: false,
          ...(extra.thread_ts ? { thread_ts: extra.thread_ts, reply_broadcast: extra.reply_broadcast ?? false } : {}),
        };
        const res = await this.o.client.chat.postMessage(
          args as unknown as Parameters<SlackWebClient['chat']['postMessage']>[0],
        );
        if (!res.ok || !res.ts || !res.channel) throw new Error(res.error ?? 'chat.postMessage returned no ts');
        return slackRef(res.channel, res.ts);
      },
    };
  }

  private async update(ref: string, message: SlackMessage): Promise<void> {
    const { channel, ts } = parseSlackRef(ref);
    try {
      await this.o.client.chat.update({ channel, ts, text: message.text, blocks: message.blocks as never });
    } catch (e) {
      throw new CodedError(ErrorCode.IntegrationFailed, `Slack chat.update of ${ref} failed: ${(e as Error).message}`, {
        cause: e,
        retryable: true,
      });
    }
  }
}
