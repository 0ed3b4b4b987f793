/**
 * Email bodies (HTML and plain text, same content) for the cycle report, the approval request and the
 * weekly compliance digest. Pure functions: the SmtpMailer sends what these return. The HTML uses inline
 * styles and tables only (what mail clients render); every value is escaped.
 */
import type { CycleStage, WaveStatus } from '../../domain/cycle';
import { normalizeSeverity, SEVERITY_RANK } from '../../domain/patch';
import type { ApprovalRequest, CycleReport } from '../../domain/ports';
import type { ChartSpec } from '../../reports/charts';
import { escapeHtml as esc } from '../../shared/html-escape';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
  /** Rendered to PNG and attached inline as cid:chart. */
  chart?: ChartSpec;
}

export const CHART_CID = 'chart@patchops';

export interface ComplianceDigest {
  generatedAt: string;
  periodStart: string;
  endpoints: number;
  compliantEndpoints: number;
  /** Percent of counted endpoints with nothing outstanding (README "Compliance"). */
  compliancePercent: number;
  /** Outstanding (missing or failed) endpoint×patch pairs by severity. */
  missingBySeverity: Record<string, number>;
  topMissing: Array<{ patchId: string; title: string; severity: string; endpoints: number; knownExploited: boolean }>;
  cycles: Array<{ cycleId: string; policyName: string; stage: string; changeNumber?: string; createdAt: string }>;
}

const OUTCOME_WORDS: Partial<Record<CycleStage, string>> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  ROLLED_BACK: 'rolled back',
};

export function cycleLink(publicUrl: string, cycleId: string): string {
  return `${publicUrl.replace(/\/$/, '')}/cycles/${encodeURIComponent(cycleId)}`;
}

export function renderCycleReport(report: CycleReport, o: { publicUrl: string; changeUrl?: string }): RenderedEmail {
  const s = report.status;
  const waves: WaveStatus[] = [...(s.test ? [{ ...s.test, name: s.test.name || 'Test ring' }] : []), ...s.waves];
  const totals = waves.reduce(
    (a, w) => ({
      ok: a.ok + w.succeeded,
      failed: a.failed + w.failed,
      unreachable: a.unreachable + w.unreachable,
      pending: a.pending + w.pending,
    }),
    { ok: 0, failed: 0, unreachable: 0, pending: 0 },
  );
  const outcome = OUTCOME_WORDS[report.outcome] ?? report.outcome.toLowerCase();
  const compliance =
    report.complianceBefore !== undefined && report.complianceAfter !== undefined
      ? `${pct(report.complianceBefore)} → ${pct(report.complianceAfter)}`
      : report.complianceAfter !== undefined
        ? pct(report.complianceAfter)
        : 'not measured';
  const subject = `[patchops] Cycle ${outcome}: ${report.policyName} (${report.cycleId}) — compliance ${compliance}`;
  const link = cycleLink(o.publicUrl, report.cycleId);

  const summary: Array<[string, string]> = [
    ['Cycle', report.cycleId],
    ['Policy', `${report.policyName}${s.policyVersion !== undefined ? ` v${s.policyVersion}` : ''}`],
    ['Outcome', outcome],
    ['Requested by', s.requestedBy],
    ['Endpoints', String(s.endpoints)],
    ['Patches', String(s.patches)],
    [
      'Succeeded / failed / unreachable / pending',
      `${totals.ok} / ${totals.failed} / ${totals.unreachable} / ${totals.pending}`,
    ],
    ['Compliance before → after', compliance],
    ['Change request', report.changeNumber ?? 'none'],
    ['Started', report.startedAt],
    ['Finished', report.finishedAt],
  ];
  if (s.outcome) summary.splice(3, 0, ['Why', s.outcome]);

  const waveRows = waves.map((w) => [
    w.name || `Wave ${w.index}`,
    w.state,
    String(w.total),
    String(w.succeeded),
    String(w.failed),
    String(w.unreachable),
    String(w.pending),
  ]);
  const failureRows = report.failures.map((f) => [f.hostname, f.patchId ?? '', f.reason]);

  const text = [
    subject.replace('[patchops] ', ''),
    '',
    ...summary.map(([k, v]) => `${k}: ${v}`),
    '',
    'Waves',
    ...(waveRows.length
      ? waveRows.map(
          (r) => `  ${r[0]} (${r[1]}): ${r[3]} ok, ${r[4]} failed, ${r[5]} unreachable, ${r[6]} pending of ${r[2]}`,
        )
      : ['  none ran']),
    '',
    `Failures (${report.failures.length})`,
    ...(failureRows.length ? failureRows.map((r) => `  ${r[0]}${r[1] ? ` ${r[1]}` : ''}: ${r[2]}`) : ['  none']),
    ...(s.reasons.length ? ['', 'Decisions', ...s.reasons.map((r) => `  - ${r}`)] : []),
    '',
    `Details: ${link}`,
    ...(o.changeUrl ? [`Change request: ${o.changeUrl}`] : []),
  ].join('\n');

  const chart: ChartSpec | undefined = waves.length
    ? {
        kind: 'stackedBar',
        title: 'Results per wave',
        labels: waves.map((w) => w.name || `Wave ${w.index}`),
        series: [
          { name: 'succeeded', values: waves.map((w) => w.succeeded), color: '#2e9e5b' },
          { name: 'failed', values: waves.map((w) => w.failed), color: '#d9453d' },
          { name: 'unreachable', values: waves.map((w) => w.unreachable), color: '#8a8f98' },
          { name: 'pending', values: waves.map((w) => w.pending), color: '#e0a100' },
        ],
        width: 640,
        height: 300,
        unit: '',
      }
    : report.complianceBefore !== undefined && report.complianceAfter !== undefined
      ? {
          kind: 'bar',
          title: 'Compliance',
          labels: ['before', 'after'],
          series: [{ name: 'compliance', values: [report.complianceBefore, report.complianceAfter] }],
          unit: '%',
          width: 480,
          height: 260,
        }
      : undefined;

  const html = page(
    subject.replace('[patchops] ', ''),
    [
      kvTable(summary),
      chartImage(chart),
      h2('Waves'),
      waveRows.length
        ? table(['Wave', 'State', 'Total', 'Succeeded', 'Failed', 'Unreachable', 'Pending'], waveRows)
        : '<p>None ran.</p>',
      h2(`Failures (${report.failures.length})`),
      failureRows.length ? table(['Endpoint', 'Patch', 'Reason'], failureRows) : '<p>None.</p>',
      s.reasons.length ? `${h2('Decisions')}<ul>${s.reasons.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>` : '',
      button(link, 'Open the cycle'),
      o.changeUrl ? `<p><a href="${esc(o.changeUrl)}">Change request ${esc(report.changeNumber ?? '')}</a></p>` : '',
    ].join('\n'),
  );
  return { subject, text, html, ...(chart ? { chart } : {}) };
}

export function renderApprovalRequest(req: ApprovalRequest, o: { publicUrl: string }): RenderedEmail {
  const link = req.dashboardUrl ?? cycleLink(o.publicUrl, req.cycleId);
  const sev =
    Object.entries(req.bySeverity)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ') || 'none';
  const subject = `[patchops] ${req.emergency ? 'EMERGENCY ' : ''}Approval needed: ${req.policyName} — ${req.endpoints} endpoints (${sev})`;
  const summary: Array<[string, string]> = [
    ['Cycle', req.cycleId],
    ['Policy', req.policyName],
    ['Requested by', req.requestedBy],
    ['Endpoints', String(req.endpoints)],
    ['Missing by severity', sev],
    [
      'By type',
      Object.entries(req.byType)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ') || 'none',
    ],
    ['Approvals needed', String(req.approvalsNeeded)],
  ];
  if (req.test)
    summary.push([
      'Test ring',
      `${req.test.succeeded}/${req.test.total} succeeded, ${req.test.failed} failed, ${req.test.unreachable} unreachable`,
    ]);
  if (req.changeNumber) summary.push(['Change request', req.changeNumber]);
  if (req.deadline) summary.push(['Decide by', req.deadline]);
  const patchRows = req.topPatches.map((p) => [
    p.patchId,
    p.title,
    p.severity,
    p.cvss === undefined ? '' : String(p.cvss),
    p.cves.join(', ') + (p.knownExploited ? ' (known exploited)' : ''),
    String(p.endpoints),
  ]);
  const text = [
    subject.replace('[patchops] ', ''),
    '',
    ...summary.map(([k, v]) => `${k}: ${v}`),
    '',
    'Top patches',
    ...(patchRows.length
      ? patchRows.map((r) => `  ${r[0]} ${r[1]} [${r[2]}${r[3] ? `, CVSS ${r[3]}` : ''}] ${r[4]} — ${r[5]} endpoints`)
      : ['  none']),
    '',
    `Approve or reject: ${link}`,
    ...(req.changeUrl ? [`Change request: ${req.changeUrl}`] : []),
    '',
    'You can also decide in Slack or Teams. Whoever requested the cycle cannot approve it.',
  ].join('\n');
  const html = page(
    subject.replace('[patchops] ', ''),
    [
      kvTable(summary),
      h2('Top patches'),
      patchRows.length ? table(['Patch', 'Title', 'Severity', 'CVSS', 'CVEs', 'Endpoints'], patchRows) : '<p>None.</p>',
      button(link, 'Approve or reject'),
      req.changeUrl ? `<p><a href="${esc(req.changeUrl)}">Change request ${esc(req.changeNumber ?? '')}</a></p>` : '',
      '<p style="color:#59636e">You can also decide in Slack or Teams. Whoever requested the cycle cannot approve it.</p>',
    ].join('\n'),
  );
  return { subject, text, html };
}

export function renderDigest(d: ComplianceDigest, o: { publicUrl: string }): RenderedEmail {
  const subject = `[patchops] Weekly compliance: ${pct(d.compliancePercent)} of ${d.endpoints} endpoints fully patched`;
  const sev = Object.entries(d.missingBySeverity).sort((a, b) => severityRankOf(b[0]) - severityRankOf(a[0]));
  const summary: Array<[string, string]> = [
    ['Endpoints', String(d.endpoints)],
    ['Fully patched', `${d.compliantEndpoints} (${pct(d.compliancePercent)})`],
    ['Missing patches by severity', sev.map(([k, n]) => `${n} ${k}`).join(', ') || 'none'],
    ['Cycles since', `${d.periodStart}: ${d.cycles.length}`],
  ];
  const topRows = d.topMissing.map((p) => [
    p.patchId,
    p.title,
    p.severity + (p.knownExploited ? ' (known exploited)' : ''),
    String(p.endpoints),
  ]);
  const cycleRows = d.cycles.map((c) => [c.cycleId, c.policyName, c.stage, c.changeNumber ?? '', c.createdAt]);
  const chart: ChartSpec | undefined = sev.length
    ? {
        kind: 'donut',
        title: 'Missing patches by severity',
        labels: sev.map(([k]) => k),
        series: [{ name: 'missing', values: sev.map(([, n]) => n) }],
        width: 560,
        height: 260,
      }
    : undefined;
  const text = [
    subject.replace('[patchops] ', ''),
    '',
    ...summary.map(([k, v]) => `${k}: ${v}`),
    '',
    'Most missing',
    ...(topRows.length ? topRows.map((r) => `  ${r[0]} ${r[1]} [${r[2]}] on ${r[3]} endpoints`) : ['  none']),
    '',
    'Cycles',
    ...(cycleRows.length ? cycleRows.map((r) => `  ${r[0]} ${r[1]}: ${r[2]}${r[3] ? ` (${r[3]})` : ''}`) : ['  none']),
    '',
    `Dashboard: ${o.publicUrl}`,
  ].join('\n');
  const html = page(
    subject.replace('[patchops] ', ''),
    [
      kvTable(summary),
      chartImage(chart),
      h2('Most missing'),
      topRows.length ? table(['Patch', 'Title', 'Severity', 'Endpoints'], topRows) : '<p>None.</p>',
      h2('Cycles'),
      cycleRows.length ? table(['Cycle', 'Policy', 'Stage', 'Change', 'Started'], cycleRows) : '<p>None.</p>',
      button(o.publicUrl, 'Open the dashboard'),
    ].join('\n'),
  );
  return { subject, text, html, ...(chart ? { chart } : {}) };
}

// ---------------------------------------------------------------- HTML helpers

/** Most severe first, by the domain's ranking of the word (a vendor's word such as "high" ranks as its severity). */
function severityRankOf(word: string): number {
  return SEVERITY_RANK[normalizeSeverity('vendor', word)];
}

function pct(v: number): string {
  return `${Math.round(v * 10) / 10}%`;
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body style="font-family:Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328;max-width:760px;margin:0 auto;padding:16px">
<h1 style="font-size:20px">${esc(title)}</h1>
${body}
<p style="color:#8a8f98;font-size:12px">Sent by patchops.</p>
</body></html>`;
}

function h2(t: string): string {
  return `<h2 style="font-size:16px;margin-top:24px">${esc(t)}</h2>`;
}

function kvTable(rows: Array<[string, string]>): string {
  return `<table style="border-collapse:collapse">${rows
    .map(
      ([k, v]) =>
        `<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#59636e;font-weight:normal">${esc(k)}</th><td style="padding:2px 0">${esc(v)}</td></tr>`,
    )
    .join('')}</table>`;
}

function table(head: string[], rows: string[][]): string {
  const th = head
    .map((h) => `<th style="text-align:left;border-bottom:1px solid #d8dee4;padding:4px 8px">${esc(h)}</th>`)
    .join('');
  const trs = rows
    .map(
      (r) =>
        `<tr>${r.map((c) => `<td style="border-bottom:1px solid #eef1f4;padding:4px 8px">${esc(c)}</td>`).join('')}</tr>`,
    )
    .join('');
  return `<table style="border-collapse:collapse;width:100%"><thead><tr>${th}</tr></thead><tbody>${trs}</tbody></table>`;
}

/** The inline chart (attached as cid:chart), or nothing. */
function chartImage(chart: ChartSpec | undefined): string {
  if (!chart) return '';
  return `<p><img src="cid:${CHART_CID}" alt="${esc(chart.title)}" width="${chart.width}" height="${chart.height}" style="max-width:100%"></p>`;
}

function button(href: string, label: string): string {
  return `<p style="margin:20px 0"><a href="${esc(href)}" style="background:#2f6fde;color:#fff;padding:8px 14px;border-radius:4px;text-decoration:none">${esc(label)}</a></p>`;
}
