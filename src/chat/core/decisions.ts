/**
 * What a click does, the same for Slack and Teams: an approval or rejection becomes a CycleService call
 * (the workflow Update, whose validator says yes or no synchronously), a resume or roll back becomes a
 * signal (admins only). Each is audited with channel, user and message; the cards everywhere are updated
 * through the ChatNotifier. A person's repeated click while the first is in flight, or after it was
 * recorded, is answered without calling the workflow again (counted once).
 */
import { appendAudit } from '../../db/audit';
import type { Db } from '../../db/client';
import { hasRole } from '../../db/identities';
import type { ApprovalResult, Channel } from '../../domain/cycle';
import { CodedError, ErrorCode, isCodedError } from '../../domain/errors';
import type { ChatNotifier } from '../../domain/ports';
import type { Logger } from '../../logging';
import type { CycleService } from '../../services/cycle-service';
import { linkPersonByEmail, type EmailLookup } from './person-link';

export interface DecisionInput {
  cycleId: string;
  identity: string;
  channel: Channel;
  decision: 'approve' | 'reject';
  reason?: string;
  /** Slack `channel:ts`, Teams activity id. */
  messageRef?: string;
  /**
   * The platform's e-mail lookup for this identity (Slack users.info, the Teams roster): when the identity is linked
   * to nobody, it is linked to the person with that e-mail before the vote goes in (best effort, person-link.ts).
   */
  findEmail?: EmailLookup;
}

export type DecisionOutcome =
  | { ok: true; duplicate: boolean; result: ApprovalResult; at: string; text: string }
  | { ok: false; code: string; text: string };

export interface ChatControlInput {
  cycleId: string;
  identity: string;
  channel: Channel;
  action: 'resume' | 'rollback';
  messageRef?: string;
}

export type ControlOutcome = { ok: true; at: string; text: string } | { ok: false; code: string; text: string };

export interface DecisionDeskDeps {
  service: CycleService;
  db: Db;
  logger: Logger;
  /** Updates the cards in every channel after a decision; optional so a front-end can run alone. */
  chat?: ChatNotifier;
  now?: () => Date;
}

export class DecisionDesk {
  private readonly inFlight = new Map<string, Promise<DecisionOutcome>>();
  private readonly decided = new Map<string, { result: ApprovalResult; at: string; decision: 'approve' | 'reject' }>();
  private readonly now: () => Date;

  constructor(private readonly deps: DecisionDeskDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  decide(input: DecisionInput): Promise<DecisionOutcome> {
    const key = `${input.cycleId}\u0000${input.identity}`;
    const done = this.decided.get(key);
    if (done) {
      return Promise.resolve({
        ok: true,
        duplicate: true,
        result: done.result,
        at: done.at,
        text: `Your ${done.decision === 'approve' ? 'approval' : 'rejection'} of cycle ${input.cycleId} was already recorded at ${done.at}; it counts once.`,
      });
    }
    const running = this.inFlight.get(key);
    if (running) {
      return running.then((o) => (o.ok ? { ...o, duplicate: true, text: `Already recorded: ${o.text}` } : o));
    }
    const p = this.run(input, key).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async run(input: DecisionInput, key: string): Promise<DecisionOutcome> {
    const { service, logger } = this.deps;
    const vote = {
      identity: input.identity,
      channel: input.channel,
      reason: input.reason,
      messageRef: input.messageRef,
    };
    const verb = input.decision === 'approve' ? 'approval' : 'rejection';
    if (input.decision === 'reject' && !input.reason?.trim()) {
      return {
        ok: false,
        code: ErrorCode.InvalidInput,
        text: 'A rejection needs a reason: say why, so the requester can act on it.',
      };
    }
    // Before the vote enters the cycle service, which resolves the identity's person from what is linked now.
    if (input.findEmail) await linkPersonByEmail({ db: this.deps.db, logger }, input.identity, input.findEmail);
    let result: ApprovalResult;
    try {
      result =
        input.decision === 'approve'
          ? await service.approve(input.cycleId, vote)
          : await service.reject(input.cycleId, vote);
    } catch (e) {
      const code = isCodedError(e) ? e.code : 'ERROR';
      const text =
        code === ErrorCode.ApprovalRefused
          ? `Your ${verb} of cycle ${input.cycleId} was not recorded: ${(e as Error).message}`
          : code === ErrorCode.NotFound
            ? `Cycle ${input.cycleId} is not known (it may have finished). Try \`status\` to see the active cycles.`
            : `Your ${verb} of cycle ${input.cycleId} could not be recorded (${(e as Error).message}). Try again in a moment, or use the \`${input.decision} ${input.cycleId}\` command.`;
      if (code !== ErrorCode.ApprovalRefused && code !== ErrorCode.NotFound)
        logger.error({ err: e, cycleId: input.cycleId }, 'recording a chat decision failed');
      await this.audit('chat.decision_refused', input, { code, message: (e as Error).message }).catch((err: unknown) =>
        logger.error({ err }, 'audit failed'),
      );
      return { ok: false, code, text };
    }
    const at = this.now().toISOString();
    this.decided.set(key, { result, at, decision: input.decision });
    if (this.decided.size > 10_000) this.decided.delete(this.decided.keys().next().value!);
    const audited = await this.audited(input.decision === 'approve' ? 'chat.approved' : 'chat.rejected', input, {
      outcome: result.outcome,
      received: result.approvalsReceived,
      needed: result.approvalsNeeded,
    });
    if (this.deps.chat) {
      await this.deps.chat
        .recordDecision({
          cycleId: input.cycleId,
          identity: input.identity,
          channel: input.channel,
          decision: input.decision,
          reason: input.reason,
          outcome: result.outcome,
          at,
        })
        .catch((err: unknown) =>
          logger.warn({ err, cycleId: input.cycleId }, 'updating the approval cards failed (the vote is recorded)'),
        );
    }
    const progress =
      result.outcome === 'pending'
        ? `${result.approvalsReceived} of ${result.approvalsNeeded} approvals so far.`
        : result.outcome === 'approved'
          ? 'The cycle is approved.'
          : 'The cycle is rejected and ends.';
    return {
      ok: true,
      duplicate: false,
      result,
      at,
      text: `You ${input.decision === 'approve' ? 'approved' : 'rejected'} cycle ${input.cycleId}. ${progress}${audited}`,
    };
  }

  /** Resume or roll back a paused cycle: admins only. */
  async control(input: ChatControlInput): Promise<ControlOutcome> {
    const { service, db, logger } = this.deps;
    const what = input.action === 'resume' ? 'resume' : 'roll back';
    try {
      if (!(await hasRole(db, input.identity, 'admin'))) {
        throw new CodedError(
          ErrorCode.Forbidden,
          `only admins can ${what} a cycle; ask an admin, or have one grant you the role with \`roles grant ${input.identity} admin\``,
        );
      }
      if (input.action === 'resume') await service.resume(input.cycleId, input.identity);
      else await service.rollback(input.cycleId, input.identity);
    } catch (e) {
      const code = isCodedError(e) ? e.code : 'ERROR';
      if (!isCodedError(e)) logger.error({ err: e, cycleId: input.cycleId }, `${what} from chat failed`);
      return { ok: false, code, text: `Could not ${what} cycle ${input.cycleId}: ${(e as Error).message}` };
    }
    const audited = await this.audited(`chat.${input.action}`, input, {});
    return {
      ok: true,
      at: this.now().toISOString(),
      text:
        (input.action === 'resume' ? `Cycle ${input.cycleId} resumes.` : `Rolling back cycle ${input.cycleId}.`) +
        audited,
    };
  }

  /**
   * Audits what already took effect (appendAudit retries transient failures itself). When it still cannot be
   * written, the person is told, with what to do, instead of the gap being only in a log: returns that sentence,
   * or '' when the row is written.
   */
  private async audited(
    action: string,
    input: { cycleId: string; identity: string; channel: Channel; messageRef?: string; reason?: string },
    details: Record<string, unknown>,
  ): Promise<string> {
    try {
      await this.audit(action, input, details);
      return '';
    } catch (err) {
      this.deps.logger.error(
        { err, action, cycleId: input.cycleId },
        'audit failed: the action took effect but is not in the audit log',
      );
      return ` It took effect, but the audit log could not record it (${(err as Error).message}): tell an admin (\`patchops audit verify\`, database health).`;
    }
  }

  private async audit(
    action: string,
    input: { cycleId: string; identity: string; channel: Channel; messageRef?: string; reason?: string },
    details: Record<string, unknown>,
  ) {
    await appendAudit(this.deps.db, {
      actor: input.identity,
      action,
      subjectType: 'cycle',
      subjectId: input.cycleId,
      details: {
        channel: input.channel,
        messageRef: input.messageRef ?? null,
        ...(input.reason ? { reason: input.reason } : {}),
        ...details,
      },
    });
  }
}
