/**
 * TeamsChatChannel: the ChatNotifier on the Bot Framework connector (botbuilder 4.23 CloudAdapter). It posts
 * proactively to the conversations the bot was installed into (stored conversation references): the
 * approval as an Adaptive Card 1.5, updated for everyone with updateActivity on the stored activity id;
 * stages, pause questions and the summary as replies to it. Each message goes through the shared message
 * ledger (core/ledger.ts: reserve → post → release on failure), so a retried activity never re-posts.
 *
 * Bot Framework SDK 4.23 is its final release; the Microsoft 365 Agents SDK is its successor. Only this file
 * and src/chat/teams/ know about botbuilder: the rest of the product sees the ChatNotifier port.
 */
import { CardFactory, TurnContext, type CloudAdapter, type ConversationReference } from 'botbuilder';
import type { Db } from '../../db/client';
import {
  chatMessagesOf,
  listConversations,
  updateChatMessageModel,
  type ChatMessageKey,
  type StoredChatMessage,
  type StoredConversation,
} from '../../db/chat';
import { approvalAdaptiveCard, pauseAdaptiveCard, summaryAdaptiveCard, type AdaptiveCard } from '../core/adaptive';
import {
  approvalModelFromRequest,
  noticeLine,
  stageKey,
  stageLine,
  withDecision,
  type ApprovalCardModel,
} from '../core/card';
import { MessageLedger, type Delivery } from '../core/ledger';
import { CodedError, ErrorCode } from '../../domain/errors';
import type {
  ApprovalRequest,
  ChatNotifier,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../../domain/ports';
import type { Logger } from '../../logging';
import type { ServiceUrlPolicy } from './service-url';

export interface TeamsChatChannelOptions {
  adapter: CloudAdapter;
  /** TEAMS_APP_ID; empty in local/emulator mode. */
  appId: string | undefined;
  db: Db;
  logger: Logger;
  /** Which serviceUrls posts may go to: a stored conversation naming another is skipped (and logged). */
  serviceUrlAllowed: ServiceUrlPolicy;
}

type Outgoing = { text?: string; card?: AdaptiveCard; replyToId?: string | null };

export class TeamsChatChannel implements ChatNotifier {
  private readonly ledger: MessageLedger;

  constructor(private readonly o: TeamsChatChannelOptions) {
    this.ledger = new MessageLedger(o.db);
  }

  async requestApproval(req: ApprovalRequest): Promise<void> {
    let targets = await this.allowedConversations();
    if (req.channel && targets.some((t) => t.conversationId === req.channel))
      targets = targets.filter((t) => t.conversationId === req.channel);
    if (targets.length === 0) {
      this.o.logger.info(
        { cycleId: req.cycleId },
        'no Teams conversation to post the approval to (install the bot in a team or chat first)',
      );
      return;
    }
    const model = approvalModelFromRequest(req);
    for (const conv of targets) {
      const k: ChatMessageKey = {
        cycleId: req.cycleId,
        platform: 'teams',
        conversationId: conv.conversationId,
        key: 'approval',
      };
      const r = await this.ledger.postOnce(k, this.delivery(conv, { card: approvalAdaptiveCard(model) }), {
        model: model as unknown as Record<string, unknown>,
      });
      if (r.posted || !r.existing.messageRef) continue;
      const old = r.existing.model as ApprovalCardModel | null;
      const merged = old ? { ...model, decisions: old.decisions, outcome: old.outcome } : model;
      await updateChatMessageModel(this.o.db, k, merged as unknown as Record<string, unknown>);
      await this.update(conv, r.existing.messageRef, approvalAdaptiveCard(merged));
      if (req.notice && merged.outcome === 'pending') {
        const nk: ChatMessageKey = { ...k, key: `notice:${req.notice}` };
        await this.ledger.postOnce(
          nk,
          this.delivery(conv, { text: noticeLine(merged, req.notice, 'teams'), replyToId: r.existing.messageRef }),
          { threadRef: r.existing.messageRef },
        );
      }
    }
  }

  async recordDecision(notice: DecisionNotice): Promise<void> {
    const messages = await chatMessagesOf(this.o.db, notice.cycleId, 'teams', 'approval');
    if (messages.length === 0) return;
    const convs = await this.conversations();
    for (const m of messages) {
      const conv = convs.get(m.conversationId);
      if (!m.messageRef || !m.model || !conv) continue;
      const model = withDecision(m.model as unknown as ApprovalCardModel, notice);
      await updateChatMessageModel(this.o.db, m, model as unknown as Record<string, unknown>);
      await this.update(conv, m.messageRef, approvalAdaptiveCard(model));
    }
  }

  async stageUpdate(update: StageUpdate): Promise<void> {
    await this.inThread(update.cycleId, stageKey(update), { text: stageLine(update) });
  }

  async pauseQuestion(q: PauseQuestion): Promise<void> {
    await this.inThread(
      q.cycleId,
      `pause:${q.wave?.index ?? ''}:${q.reason}`.slice(0, 200),
      { card: pauseAdaptiveCard(q) },
      { question: q },
    );
  }

  async summary(report: CycleReport): Promise<void> {
    await this.inThread(report.cycleId, 'summary', { card: summaryAdaptiveCard(report) });
  }

  /** Pause question answered: the card shows who resumed or rolled back, for everyone. */
  async resolvePause(
    m: StoredChatMessage,
    resolved: { by: string; action: 'resume' | 'rollback'; at: string },
  ): Promise<AdaptiveCard | undefined> {
    const q = (m.model as { question?: PauseQuestion } | null)?.question;
    const conv = (await this.conversations()).get(m.conversationId);
    if (!q || !m.messageRef || !conv) return undefined;
    const card = pauseAdaptiveCard(q, resolved);
    await updateChatMessageModel(this.o.db, m, { question: q, resolved });
    await this.update(conv, m.messageRef, card);
    return card;
  }

  private async conversations(): Promise<Map<string, StoredConversation>> {
    return new Map((await this.allowedConversations()).map((c) => [c.conversationId, c]));
  }

  /** The installed conversations whose serviceUrl is an allowed connector (one stored before the check is skipped). */
  private async allowedConversations(): Promise<StoredConversation[]> {
    const all = await listConversations(this.o.db, 'teams');
    return all.filter((c) => {
      const ok = this.o.serviceUrlAllowed(c.reference.serviceUrl);
      if (!ok)
        this.o.logger.warn(
          { conversationId: c.conversationId },
          'skipping a Teams conversation whose serviceUrl is not an allowed connector (reinstall the bot there)',
        );
      return ok;
    });
  }

  /** Replies to the approval card in each conversation that has one; else posts to every installed conversation. */
  private async inThread(cycleId: string, key: string, out: Outgoing, model?: Record<string, unknown>): Promise<void> {
    const convs = await this.conversations();
    const parents = (await chatMessagesOf(this.o.db, cycleId, 'teams', 'approval')).filter(
      (m) => m.messageRef && convs.has(m.conversationId),
    );
    const targets = parents.length
      ? parents.map((p) => ({ conv: convs.get(p.conversationId)!, replyToId: p.messageRef }))
      : [...convs.values()].map((conv) => ({ conv, replyToId: null }));
    for (const t of targets) {
      const k: ChatMessageKey = { cycleId, platform: 'teams', conversationId: t.conv.conversationId, key };
      await this.ledger.postOnce(k, this.delivery(t.conv, { ...out, replyToId: t.replyToId }), {
        threadRef: t.replyToId,
        model,
      });
    }
  }

  private async continueWith(conv: StoredConversation, logic: (ctx: TurnContext) => Promise<void>): Promise<void> {
    if (!this.o.serviceUrlAllowed(conv.reference.serviceUrl)) {
      throw new CodedError(
        ErrorCode.Forbidden,
        `conversation ${conv.conversationId} names a serviceUrl that is not an allowed Teams connector`,
      );
    }
    await this.o.adapter.continueConversationAsync(
      this.o.appId ?? '',
      conv.reference as Partial<ConversationReference>,
      logic,
    );
  }

  /** A proactive post of `out` to `conv`, for the ledger; its reference is the activity id. */
  private delivery(conv: StoredConversation, out: Outgoing): Delivery {
    return { what: `Teams post to conversation ${conv.conversationId}`, send: () => this.send(conv, out) };
  }

  private async send(conv: StoredConversation, out: Outgoing): Promise<string> {
    let id: string | undefined;
    await this.continueWith(conv, async (ctx) => {
      // Straight to the adapter: TurnContext.sendActivity would make every proactive post a reply to the
      // continuation activity. A new message goes to the conversation; a stage update replies to the card.
      const activity = TurnContext.applyConversationReference(
        {
          type: 'message',
          ...(out.text ? { text: out.text, textFormat: 'markdown' } : {}),
          ...(out.card ? { attachments: [CardFactory.adaptiveCard(out.card)] } : {}),
        },
        conv.reference as Partial<ConversationReference>,
      );
      delete activity.replyToId;
      if (out.replyToId) activity.replyToId = out.replyToId;
      const [res] = await ctx.adapter.sendActivities(ctx, [activity]);
      id = res?.id;
    });
    if (!id) throw new Error('the connector returned no activity id');
    return id;
  }

  private async update(conv: StoredConversation, activityId: string, card: AdaptiveCard): Promise<void> {
    try {
      await this.continueWith(conv, async (ctx) => {
        await ctx.updateActivity({ type: 'message', id: activityId, attachments: [CardFactory.adaptiveCard(card)] });
      });
    } catch (e) {
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `Teams updateActivity ${activityId} failed: ${(e as Error).message}`,
        { cause: e, retryable: true },
      );
    }
  }
}
