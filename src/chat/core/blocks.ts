/**
 * Slack Block Kit rendering of the card model and the thread messages.
 * https://api.slack.com/reference/block-kit/blocks
 */
import type { CycleReport, PauseQuestion } from '../../domain/ports';
import {
  ACTION,
  countsText,
  cveText,
  decisionText,
  formatTime,
  headline,
  outcomeText,
  pauseLine,
  summaryLines,
  type ApprovalCardModel,
} from './card';

export type SlackBlock = Record<string, unknown>;
export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

const mrkdwn = (text: string) => ({ type: 'mrkdwn', text });
const section = (text: string): SlackBlock => ({ type: 'section', text: mrkdwn(text) });

/** Escapes &, <, > as Slack asks for text that is not meant as markup. */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function approvalBlocks(model: ApprovalCardModel): SlackMessage {
  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: headline(model).slice(0, 150) } },
    {
      type: 'section',
      fields: [
        mrkdwn(`*Cycle*\n\`${model.cycleId}\``),
        mrkdwn(`*Policy*\n${slackEscape(model.policyName)}`),
        mrkdwn(`*Scope*\n${slackEscape(model.scopeText)} (${model.endpoints} endpoints)`),
        mrkdwn(
          `*Requested by*\n${model.requestedBy.startsWith('slack:') ? `<@${model.requestedBy.slice(6)}>` : slackEscape(model.requestedBy)}`,
        ),
        mrkdwn(`*By severity*\n${countsText(model.bySeverity)}`),
        mrkdwn(`*By type*\n${countsText(model.byType)}`),
      ],
    },
  ];
  if (model.topCves.length) {
    blocks.push(
      section(
        `*Top CVEs*\n${model.topCves.map((c) => `• ${c.knownExploited ? ':rotating_light: ' : ''}${slackEscape(cveText(c))}`).join('\n')}`,
      ),
    );
  }
  const facts: string[] = [];
  if (model.testText) facts.push(`*Test ring:* ${slackEscape(model.testText)}`);
  if (model.changeNumber)
    facts.push(`*Change:* ${model.changeUrl ? `<${model.changeUrl}|${model.changeNumber}>` : model.changeNumber}`);
  if (model.deadline) facts.push(`*Approve by:* ${formatTime(model.deadline)}`);
  facts.push(`*Approvals needed:* ${model.approvalsNeeded}`);
  if (model.approvers?.length)
    facts.push(
      `*Approvers:* ${model.approvers.map((a) => (a.startsWith('slack:') ? `<@${a.slice(6)}>` : slackEscape(a))).join(' ')}`,
    );
  if (model.dashboardUrl) facts.push(`<${model.dashboardUrl}|Open in the dashboard>`);
  blocks.push(section(facts.join('\n')));
  if (model.decisions.length) {
    // A context block holds at most 10 elements: the latest 9 decisions, and how many came before.
    const shown = model.decisions.slice(-9);
    const earlier = model.decisions.length - shown.length;
    blocks.push({
      type: 'context',
      elements: [
        ...(earlier > 0
          ? [mrkdwn(`${earlier} earlier decision${earlier === 1 ? '' : 's'} (see \`status ${model.cycleId}\`)`)]
          : []),
        ...shown.map((d) =>
          mrkdwn(decisionText({ ...d, reason: d.reason && slackEscape(d.reason.slice(0, 500)) }, 'slack')),
        ),
      ],
    });
  }
  blocks.push({ type: 'divider' });
  if (model.outcome === 'pending') {
    blocks.push(section(outcomeText(model)));
    blocks.push({
      type: 'actions',
      block_id: `patchops_approval:${model.cycleId}`,
      elements: [
        {
          type: 'button',
          action_id: ACTION.approve,
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          value: model.cycleId,
        },
        {
          type: 'button',
          action_id: ACTION.reject,
          style: 'danger',
          text: { type: 'plain_text', text: 'Reject' },
          value: model.cycleId,
        },
      ],
    });
  } else {
    blocks.push(section(`*${outcomeText(model)}*`));
  }
  return { text: `${headline(model)}: ${countsText(model.bySeverity)}`, blocks };
}

export function pauseBlocks(
  q: PauseQuestion,
  resolved?: { by: string; action: 'resume' | 'rollback'; at: string },
): SlackMessage {
  const text = pauseLine(q);
  const blocks: SlackBlock[] = [section(`:double_vertical_bar: ${slackEscape(text)}`)];
  if (resolved) {
    const who = resolved.by.startsWith('slack:') ? `<@${resolved.by.slice(6)}>` : slackEscape(resolved.by);
    blocks.push({
      type: 'context',
      elements: [
        mrkdwn(
          `${resolved.action === 'resume' ? 'Resumed' : 'Roll back requested'} by ${who} at ${formatTime(resolved.at)}`,
        ),
      ],
    });
  } else {
    blocks.push({
      type: 'actions',
      block_id: `patchops_pause:${q.cycleId}`,
      elements: [
        {
          type: 'button',
          action_id: ACTION.resume,
          style: 'primary',
          text: { type: 'plain_text', text: 'Resume' },
          value: q.cycleId,
        },
        {
          type: 'button',
          action_id: ACTION.rollback,
          style: 'danger',
          text: { type: 'plain_text', text: 'Roll back' },
          value: q.cycleId,
          confirm: {
            title: { type: 'plain_text', text: 'Roll back?' },
            text: mrkdwn(`Roll back every endpoint patched by cycle \`${q.cycleId}\`?`),
            confirm: { type: 'plain_text', text: 'Roll back' },
            deny: { type: 'plain_text', text: 'Cancel' },
          },
        },
      ],
    });
  }
  return { text, blocks };
}

export function summaryBlocks(r: CycleReport): SlackMessage {
  const lines = summaryLines(r);
  return { text: lines[0]!, blocks: [section(lines.map(slackEscape).join('\n'))] };
}

/** The Reject modal: a reason is required (Slack enforces non-optional inputs). */
export function rejectModal(cycleId: string, privateMetadata: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: 'patchops_reject_modal',
    private_metadata: privateMetadata,
    title: { type: 'plain_text', text: 'Reject patch cycle' },
    submit: { type: 'plain_text', text: 'Reject' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(`Reject cycle \`${cycleId}\`? The cycle ends and the requester is told your reason.`),
      {
        type: 'input',
        block_id: 'reason',
        label: { type: 'plain_text', text: 'Reason' },
        element: { type: 'plain_text_input', action_id: 'reason', multiline: true, min_length: 3 },
      },
    ],
  };
}
