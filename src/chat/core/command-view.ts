/**
 * A command's outcome as chat shows it, the same for Slack and Teams: a title, facts (label and value) when
 * the verb's data has them, and the remaining lines. Built from the typed data (status, report), else from
 * the outcome's words. Slack turns it into blocks (slack/command-reply.ts), Teams into a card or text
 * (teams/command-reply.ts).
 */
import type { AnyCommandOutcome, DataOf } from '../../commands/outcome';
import { isScoped, SEVERITIES } from '../../db/read-model/compliance';
import type { CycleStatus } from '../../domain/cycle';
import { scopeText } from './card';

export interface CommandFact {
  title: string;
  value: string;
}

export interface CommandView {
  isError: boolean;
  title: string;
  facts: CommandFact[];
  /** Lines after the title and facts (waves, reasons, list rows, usage). */
  lines: string[];
  /** All the words, for notifications and plain-text clients. */
  text: string;
}

const counts = (by: Record<string, number>): string => {
  const parts = SEVERITIES.filter((s) => (by[s] ?? 0) > 0).map((s) => `${by[s]} ${s}`);
  return parts.length ? parts.join(', ') : 'none';
};

function statusView(s: CycleStatus, text: string): CommandView {
  const facts: CommandFact[] = [
    { title: 'Policy', value: `${s.policyName}${s.policyVersion !== undefined ? ` v${s.policyVersion}` : ''}` },
    { title: 'Scope', value: scopeText(s.scope) },
    { title: 'Requested by', value: s.requestedBy },
    { title: 'Patches', value: `${s.patches} on ${s.endpoints} endpoint(s)` },
  ];
  if (s.approvals.needed > 0 || s.approvals.records.length > 0)
    facts.push({ title: 'Approvals', value: `${s.approvals.received} of ${s.approvals.needed}` });
  if (s.changeNumber)
    facts.push({ title: 'Change', value: `${s.changeNumber}${s.changeState ? ` (${s.changeState})` : ''}` });
  if (s.outcome) facts.push({ title: 'Outcome', value: s.outcome });
  const lines: string[] = [];
  if (s.test) lines.push(`test ring: ${s.test.state}, ${s.test.succeeded}/${s.test.total} ok, ${s.test.failed} failed`);
  for (const w of s.waves)
    lines.push(
      `wave ${w.index} ${w.name}: ${w.state}, ${w.succeeded}/${w.total} ok, ${w.failed} failed, ${w.unreachable} unreachable`,
    );
  for (const r of s.reasons.slice(-10)) lines.push(`• ${r}`);
  const title = `${s.cycleId} — ${s.stage}${s.paused ? ` (paused: ${s.pauseReason ?? ''})` : ''}${s.emergency ? ' [emergency]' : ''}`;
  return { isError: false, title, facts, lines, text };
}

function reportView(d: DataOf<'report'>, text: string): CommandView {
  const c = d.summary;
  const where = isScoped(d.scope) ? ` in ${scopeText(d.scope)}` : '';
  if (c.endpoints === 0) return { isError: false, title: text, facts: [], lines: [], text };
  return {
    isError: false,
    title: `Compliance${where}: ${c.compliancePct}%`,
    facts: [
      { title: 'Fully patched', value: `${c.compliant} of ${c.endpoints} endpoints` },
      { title: 'Outstanding', value: counts(c.bySeverity) },
      { title: 'Past SLA', value: counts(c.overdueBySeverity) },
      { title: 'Known exploited', value: `${c.knownExploited} outstanding` },
    ],
    lines: c.byGroup.slice(0, 20).map((g) => `group ${g.key}: ${g.pct}% (${g.compliant} of ${g.endpoints})`),
    text,
  };
}

export function commandView(outcome: AnyCommandOutcome): CommandView {
  if (!outcome.ok) {
    const [title = '', ...lines] = outcome.message.split('\n');
    return { isError: true, title, facts: [], lines: lines[0] === '' ? lines.slice(1) : lines, text: outcome.message };
  }
  const d = outcome.data;
  if (d.verb === 'status' && d.status) return statusView(d.status, outcome.text);
  if (d.verb === 'report') return reportView(d, outcome.text);
  const [title = '', ...lines] = outcome.text.split('\n');
  return { isError: false, title, facts: [], lines, text: outcome.text };
}
