/**
 * Adaptive Card 1.5 rendering of the card model (Universal Actions: Action.Execute), for Teams.
 * https://adaptivecards.io/explorer/ · https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/overview
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

export type AdaptiveCard = Record<string, unknown> & { type: 'AdaptiveCard'; version: '1.5' };
export const ADAPTIVE_CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';

const text = (t: string, extra: Record<string, unknown> = {}) => ({ type: 'TextBlock', text: t, wrap: true, ...extra });

function card(body: unknown[], actions: unknown[] = []): AdaptiveCard {
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    body,
    ...(actions.length ? { actions } : {}),
  };
}

/** The approval card; `notice` is a line shown to the one person who sees this copy (a refusal's reason). */
export function approvalAdaptiveCard(
  model: ApprovalCardModel,
  notice?: { text: string; isError: boolean },
): AdaptiveCard {
  const facts = [
    { title: 'Cycle', value: model.cycleId },
    { title: 'Policy', value: model.policyName },
    { title: 'Scope', value: `${model.scopeText} (${model.endpoints} endpoints)` },
    { title: 'Requested by', value: model.requestedBy },
    { title: 'By severity', value: countsText(model.bySeverity) },
    { title: 'By type', value: countsText(model.byType) },
  ];
  if (model.testText) facts.push({ title: 'Test ring', value: model.testText });
  if (model.changeNumber)
    facts.push({
      title: 'Change',
      value: model.changeUrl ? `[${model.changeNumber}](${model.changeUrl})` : model.changeNumber,
    });
  if (model.deadline) facts.push({ title: 'Approve by', value: formatTime(model.deadline) });
  facts.push({ title: 'Approvals needed', value: String(model.approvalsNeeded) });
  if (model.approvers?.length) facts.push({ title: 'Approvers', value: model.approvers.join(', ') });

  const body: unknown[] = [
    text(headline(model), { size: 'Medium', weight: 'Bolder', color: model.emergency ? 'Attention' : 'Default' }),
    { type: 'FactSet', facts },
  ];
  if (model.topCves.length) {
    body.push(text('Top CVEs', { weight: 'Bolder', spacing: 'Medium' }));
    for (const c of model.topCves)
      body.push(
        text(`${c.knownExploited ? '⚠ ' : ''}${cveText(c)}`, {
          spacing: 'None',
          color: c.knownExploited ? 'Attention' : 'Default',
        }),
      );
  }
  const shown = model.decisions.slice(-9);
  if (model.decisions.length > shown.length)
    body.push(text(`${model.decisions.length - shown.length} earlier decisions`, { isSubtle: true, spacing: 'Small' }));
  for (const d of shown) body.push(text(decisionText(d, 'teams'), { isSubtle: true, spacing: 'Small' }));
  body.push(
    text(outcomeText(model), {
      weight: 'Bolder',
      spacing: 'Medium',
      color: model.outcome === 'approved' ? 'Good' : model.outcome === 'rejected' ? 'Attention' : 'Default',
    }),
  );
  if (notice) body.push(text(notice.text, { color: notice.isError ? 'Attention' : 'Good' }));

  const actions: unknown[] = [];
  if (model.outcome === 'pending') {
    body.push({
      type: 'Input.Text',
      id: 'reason',
      placeholder: 'Reason (required to reject)',
      isMultiline: true,
      label: 'Reason',
    });
    actions.push(
      {
        type: 'Action.Execute',
        title: 'Approve',
        verb: ACTION.approve,
        style: 'positive',
        data: { cycleId: model.cycleId },
      },
      {
        type: 'Action.Execute',
        title: 'Reject',
        verb: ACTION.reject,
        style: 'destructive',
        associatedInputs: 'auto',
        data: { cycleId: model.cycleId },
      },
    );
  }
  if (model.dashboardUrl) actions.push({ type: 'Action.OpenUrl', title: 'Dashboard', url: model.dashboardUrl });
  return card(body, actions);
}

export function pauseAdaptiveCard(
  q: PauseQuestion,
  resolved?: { by: string; action: 'resume' | 'rollback'; at: string },
): AdaptiveCard {
  const body: unknown[] = [text(pauseLine(q), { weight: 'Bolder' })];
  if (resolved) {
    body.push(
      text(
        `${resolved.action === 'resume' ? 'Resumed' : 'Roll back requested'} by ${resolved.by} at ${formatTime(resolved.at)}`,
        { isSubtle: true },
      ),
    );
    return card(body);
  }
  return card(body, [
    { type: 'Action.Execute', title: 'Resume', verb: ACTION.resume, style: 'positive', data: { cycleId: q.cycleId } },
    {
      type: 'Action.Execute',
      title: 'Roll back',
      verb: ACTION.rollback,
      style: 'destructive',
      data: { cycleId: q.cycleId },
    },
  ]);
}

export function summaryAdaptiveCard(r: CycleReport): AdaptiveCard {
  const [first, ...rest] = summaryLines(r);
  return card([text(first!, { weight: 'Bolder' }), ...rest.map((l) => text(l, { spacing: 'Small' }))]);
}

/** Facts and lines: the body of a command's reply (core/command-view.ts), under its title. */
export function factsCard(facts: Array<{ title: string; value: string }>, lines: string[] = []): AdaptiveCard {
  return card([{ type: 'FactSet', facts }, ...lines.map((l) => text(l, { spacing: 'Small' }))]);
}

export function messageCard(lines: string[]): AdaptiveCard {
  return card(lines.map((l) => text(l)));
}
