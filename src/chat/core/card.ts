/**
 * The one approval-card model (built from an ApprovalRequest, updated with decisions) and the plain-text
 * lines for stage updates, pause questions and summaries. Renderers: blocks.ts (Slack Block Kit) and
 * adaptive.ts (Adaptive Card 1.5). Pure code: no I/O.
 */
import type { CycleScope } from '../../domain/cycle';
import type { ApprovalRequest, CycleReport, DecisionNotice, PauseQuestion, StageUpdate } from '../../domain/ports';

/** Interactive action ids, shared by both renderers and both front-ends. */
export const ACTION = {
  approve: 'patchops_approve',
  reject: 'patchops_reject',
  resume: 'patchops_resume',
  rollback: 'patchops_rollback',
} as const;
export type ActionId = (typeof ACTION)[keyof typeof ACTION];

export const SEVERITY_ORDER = ['critical', 'important', 'high', 'moderate', 'medium', 'low', 'unspecified', 'none'];

export interface CardDecision {
  identity: string;
  channel: string;
  decision: 'approve' | 'reject';
  reason?: string;
  at: string;
}

export interface CardCve {
  id: string;
  knownExploited: boolean;
  cvss?: number;
  patchTitle: string;
}

export interface ApprovalCardModel {
  cycleId: string;
  policyName: string;
  emergency: boolean;
  requestedBy: string;
  scopeText: string;
  endpoints: number;
  patches: number;
  bySeverity: Array<{ name: string; count: number }>;
  byType: Array<{ name: string; count: number }>;
  topCves: CardCve[];
  testText?: string;
  changeNumber?: string;
  changeUrl?: string;
  deadline?: string;
  approvalsNeeded: number;
  dashboardUrl?: string;
  /** Who may vote (identities), shown as mentions. */
  approvers?: string[];
  decisions: CardDecision[];
  outcome: 'pending' | 'approved' | 'rejected';
}

export function scopeText(scope: CycleScope): string {
  const parts: string[] = [];
  if (scope.groups?.length) parts.push(`groups ${scope.groups.join(', ')}`);
  if (scope.tags?.length) parts.push(`tags ${scope.tags.join(', ')}`);
  if (scope.osFamilies?.length) parts.push(`OS ${scope.osFamilies.join(', ')}`);
  if (scope.endpointIds?.length)
    parts.push(`${scope.endpointIds.length} named endpoint${scope.endpointIds.length === 1 ? '' : 's'}`);
  return parts.length ? parts.join('; ') : 'all endpoints';
}

function ordered(counts: Record<string, number>, order: string[] = []): Array<{ name: string; count: number }> {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([a, x], [b, y]) => {
      const ia = order.indexOf(a.toLowerCase());
      const ib = order.indexOf(b.toLowerCase());
      if (ia !== ib) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
      return y - x || a.localeCompare(b);
    })
    .map(([name, count]) => ({ name, count }));
}

/** Builds the card model of an approval request: what the approver sees before clicking. */
export function approvalModelFromRequest(req: ApprovalRequest, maxCves = 5): ApprovalCardModel {
  const cves: CardCve[] = [];
  const seen = new Set<string>();
  const patches = [...req.topPatches].sort(
    (a, b) => Number(b.knownExploited) - Number(a.knownExploited) || (b.cvss ?? 0) - (a.cvss ?? 0),
  );
  for (const p of patches) {
    for (const id of p.cves) {
      if (seen.has(id)) continue;
      seen.add(id);
      cves.push({ id, knownExploited: p.knownExploited, cvss: p.cvss, patchTitle: p.title });
    }
  }
  const test = req.test;
  return {
    cycleId: req.cycleId,
    policyName: req.policyName,
    emergency: req.emergency,
    requestedBy: req.requestedBy,
    scopeText: scopeText(req.scope),
    endpoints: req.endpoints,
    patches: Object.values(req.byType).reduce((a, b) => a + b, 0) || req.topPatches.length,
    bySeverity: ordered(req.bySeverity, SEVERITY_ORDER),
    byType: ordered(req.byType),
    topCves: cves.slice(0, maxCves),
    testText: test
      ? `${test.name}: ${test.succeeded}/${test.total} succeeded, ${test.failed} failed, ${test.unreachable} unreachable`
      : undefined,
    changeNumber: req.changeNumber,
    changeUrl: req.changeUrl,
    deadline: req.deadline,
    approvalsNeeded: req.approvalsNeeded,
    dashboardUrl: req.dashboardUrl,
    approvers: req.approvers,
    decisions: [],
    outcome: 'pending',
  };
}

/** The model after a decision. A person's vote is counted once: a repeated notice changes nothing. */
export function withDecision(
  model: ApprovalCardModel,
  notice: Pick<DecisionNotice, 'identity' | 'channel' | 'decision' | 'reason' | 'at' | 'outcome'>,
): ApprovalCardModel {
  const already = model.decisions.some((d) => d.identity === notice.identity && d.decision === notice.decision);
  const decisions = already
    ? model.decisions
    : [
        ...model.decisions,
        {
          identity: notice.identity,
          channel: notice.channel,
          decision: notice.decision,
          reason: notice.reason,
          at: notice.at,
        },
      ];
  const outcome = model.outcome === 'pending' ? notice.outcome : model.outcome;
  return { ...model, decisions, outcome };
}

export function approvalsReceived(model: ApprovalCardModel): number {
  return model.decisions.filter((d) => d.decision === 'approve').length;
}

/** `slack:U123` → `<@U123>` on Slack; otherwise the identity as is. */
export function displayIdentity(identity: string, platform: 'slack' | 'teams' | 'text' = 'text'): string {
  if (platform === 'slack' && identity.startsWith('slack:')) return `<@${identity.slice(6)}>`;
  return identity;
}

/** "27 Nov 2026 10:40 UTC": one format for both platforms. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return `${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${hh}:${mm} UTC`;
}

export function headline(model: ApprovalCardModel): string {
  return `${model.emergency ? 'EMERGENCY ' : ''}Patch cycle ${model.cycleId} (${model.policyName}) needs approval`;
}

export function countsText(items: Array<{ name: string; count: number }>): string {
  return items.length ? items.map((i) => `${i.name} ${i.count}`).join(' · ') : 'none';
}

export function cveText(c: CardCve): string {
  return `${c.id}${c.knownExploited ? ' (known exploited)' : ''}${c.cvss !== undefined ? ` CVSS ${c.cvss}` : ''}: ${c.patchTitle}`;
}

export function decisionText(d: CardDecision, platform: 'slack' | 'teams' | 'text'): string {
  const who = displayIdentity(d.identity, platform);
  const verb = d.decision === 'approve' ? 'Approved' : 'Rejected';
  return `${verb} by ${who} (${d.channel}) at ${formatTime(d.at)}${d.reason ? `: ${d.reason}` : ''}`;
}

export function outcomeText(model: ApprovalCardModel): string {
  if (model.outcome === 'approved') return 'Approved: deployment will proceed in the maintenance windows.';
  if (model.outcome === 'rejected') return 'Rejected: the cycle ends here.';
  return `Waiting for approval: ${approvalsReceived(model)} of ${model.approvalsNeeded} received.`;
}

// ---------------------------------------------------------------- thread lines

/** A reminder or escalation of a pending approval, for the thread. */
export function noticeLine(
  model: ApprovalCardModel,
  notice: 'reminder' | 'escalation',
  platform: 'slack' | 'teams' | 'text',
): string {
  const who = (model.approvers ?? [])
    .filter((a) => !model.decisions.some((d) => d.identity === a))
    .map((a) => displayIdentity(a, platform));
  const head =
    notice === 'reminder'
      ? 'Reminder: this cycle is still waiting for approval'
      : 'Escalation: this cycle is still waiting for approval, more approvers are asked now';
  return `${head} (${approvalsReceived(model)} of ${model.approvalsNeeded} received${model.deadline ? `, deadline ${formatTime(model.deadline)}` : ''}).${who.length ? ` ${who.join(' ')}` : ''}`;
}

export function stageLine(update: StageUpdate): string {
  return `[${update.stage}] ${update.text}`;
}

export function pauseLine(q: PauseQuestion): string {
  const wave = q.wave
    ? ` in ${q.wave.name} (${q.wave.failed} failed, ${q.wave.unreachable} unreachable of ${q.wave.total})`
    : '';
  return `Cycle ${q.cycleId} is paused${wave}: ${q.reason}. Resume, or roll back?`;
}

export function summaryLines(r: CycleReport): string[] {
  const lines = [`Cycle ${r.cycleId} (${r.policyName}) finished: ${r.outcome}.`];
  const ok = r.status.waves.reduce((a, w) => a + w.succeeded, 0);
  const failed = r.status.waves.reduce((a, w) => a + w.failed, 0);
  const unreachable = r.status.waves.reduce((a, w) => a + w.unreachable, 0);
  lines.push(
    `Endpoints: ${ok} patched, ${failed} failed, ${unreachable} unreachable, in ${r.status.waves.length} wave${r.status.waves.length === 1 ? '' : 's'}.`,
  );
  if (r.complianceBefore !== undefined && r.complianceAfter !== undefined) {
    lines.push(`Compliance: ${r.complianceBefore.toFixed(1)}% → ${r.complianceAfter.toFixed(1)}%.`);
  }
  if (r.changeNumber) lines.push(`Change ${r.changeNumber} closed.`);
  for (const f of r.failures.slice(0, 5)) lines.push(`• ${f.hostname}${f.patchId ? ` ${f.patchId}` : ''}: ${f.reason}`);
  if (r.failures.length > 5) lines.push(`… and ${r.failures.length - 5} more failures (see the report).`);
  return lines;
}

/** The thread/message key of a stage update: a retried notification updates instead of re-posting. */
export function stageKey(update: StageUpdate): string {
  return `stage:${update.stage}:${update.wave?.index ?? ''}:${update.wave?.state ?? ''}:${fnv1a(update.text)}`;
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}
