/**
 * Compliance reports, CSV and PDF: compliance by group (and OS), SLA breaches, cycle results. The same
 * data and the same chart images (reports/charts.ts) serve the dashboard, `patchops report` and email.
 */
import PDFDocument from 'pdfkit';
import type { Db } from '../db/client';
import { cycleResults, type CycleResult } from '../db/dashboard';
import {
  complianceSummary,
  SEVERITIES,
  slaBreaches,
  type ComplianceSummary as Overview,
  type SlaBreach,
} from '../db/read-model/compliance';
import { CodedError, ErrorCode } from '../domain/errors';
import { renderChartPng, type ChartSpec } from './charts';
import { csvLine } from './csv';

export const REPORT_SCOPES = ['all', 'compliance', 'sla', 'cycles'] as const;
export type ReportScope = (typeof REPORT_SCOPES)[number];
export type ReportFormat = 'csv' | 'pdf';

export function parseReportScope(s: string | undefined): ReportScope {
  const v = (s ?? 'all').toLowerCase();
  if (!(REPORT_SCOPES as readonly string[]).includes(v)) {
    throw new CodedError(
      ErrorCode.InvalidInput,
      `report scope "${s}" is not known: use one of ${REPORT_SCOPES.join(', ')}`,
    );
  }
  return v as ReportScope;
}

export interface ReportData {
  scope: ReportScope;
  generatedAt: string;
  overview?: Overview;
  breaches?: SlaBreach[];
  breachesTotal?: number;
  cycles?: CycleResult[];
}

export type Progress = (done: number, total: number, step: string) => void;

/** The most SLA breach rows a report lists (the totals always count them all). */
export const MAX_BREACH_ROWS = 50_000;

export async function collectReport(
  db: Db,
  scope: ReportScope,
  options: { now?: Date; onProgress?: Progress } = {},
): Promise<ReportData> {
  const now = options.now ?? new Date();
  const steps: Array<[string, () => Promise<Partial<ReportData>>]> = [];
  if (scope === 'all' || scope === 'compliance' || scope === 'sla')
    steps.push(['compliance', async () => ({ overview: await complianceSummary(db, { now }) })]);
  if (scope === 'all' || scope === 'sla') {
    steps.push([
      'sla breaches',
      // The most overdue MAX_BREACH_ROWS, read as one page; the total is the overview's overdue count (the same
      // rule over the maintained aggregates), read just before.
      async () => ({
        breaches: await slaBreaches(db, { now, limit: MAX_BREACH_ROWS }),
        breachesTotal: data.overview?.overdue,
      }),
    ]);
  }
  if (scope === 'all' || scope === 'cycles')
    steps.push(['cycle results', async () => ({ cycles: await cycleResults(db) })]);
  let data: ReportData = { scope, generatedAt: now.toISOString() };
  for (const [i, [name, run]] of steps.entries()) {
    options.onProgress?.(i, steps.length, name);
    data = { ...data, ...(await run()) };
  }
  options.onProgress?.(steps.length, steps.length, 'done');
  return data;
}

// ---------------------------------------------------------------- charts (shared with the dashboard and email)

export function complianceByGroupChart(o: Overview): ChartSpec {
  return {
    kind: 'bar',
    title: 'Compliance by group',
    labels: o.byGroup.map((g) => g.key),
    series: [{ name: 'compliant endpoints', values: o.byGroup.map((g) => g.pct), color: '#2e9e5b' }],
    unit: '%',
  };
}

export function complianceByOsChart(o: Overview): ChartSpec {
  return {
    kind: 'bar',
    title: 'Compliance by OS',
    labels: o.byOs.map((g) => g.key),
    series: [{ name: 'compliant endpoints', values: o.byOs.map((g) => g.pct), color: '#2f6fde' }],
    unit: '%',
  };
}

export function severityChart(o: Overview): ChartSpec {
  return {
    kind: 'donut',
    title: 'Missing patches by severity',
    labels: [...SEVERITIES],
    series: [{ name: 'missing', values: SEVERITIES.map((s) => o.bySeverity[s] ?? 0) }],
  };
}

export function overdueChart(o: Overview): ChartSpec {
  return {
    kind: 'stackedBar',
    title: 'Outstanding vs SLA',
    labels: [...SEVERITIES],
    series: [
      {
        name: 'within SLA',
        values: SEVERITIES.map((s) => (o.bySeverity[s] ?? 0) - (o.overdueBySeverity[s] ?? 0)),
        color: '#2f6fde',
      },
      { name: 'overdue', values: SEVERITIES.map((s) => o.overdueBySeverity[s] ?? 0), color: '#d9453d' },
    ],
  };
}

export function cycleResultsChart(cycles: CycleResult[]): ChartSpec {
  const recent = cycles.slice(0, 12).reverse();
  return {
    kind: 'stackedBar',
    title: 'Cycle results (install jobs)',
    labels: recent.map((c) => c.cycleId.slice(0, 14)),
    series: [
      { name: 'succeeded', values: recent.map((c) => c.succeeded), color: '#2e9e5b' },
      { name: 'failed', values: recent.map((c) => c.failed), color: '#d9453d' },
      { name: 'unreachable', values: recent.map((c) => c.unreachable), color: '#8a8f98' },
    ],
  };
}

// ---------------------------------------------------------------- CSV

export function reportCsv(d: ReportData): string {
  const sections: string[] = [];
  const multi = d.scope === 'all';
  const section = (name: string, body: string) => sections.push(multi ? `# ${name}\r\n${body}` : body);
  if (d.overview && (d.scope === 'all' || d.scope === 'compliance')) {
    const o = d.overview;
    let body = csvLine(['dimension', 'name', 'endpoints', 'compliant', 'compliance_pct']);
    body += csvLine(['fleet', 'all', o.endpoints, o.compliant, o.compliancePct]);
    for (const g of o.byGroup) body += csvLine(['group', g.key, g.endpoints, g.compliant, g.pct]);
    for (const g of o.byOs) body += csvLine(['os', g.key, g.endpoints, g.compliant, g.pct]);
    section('compliance by group', body);
  }
  if (d.breaches) {
    let body = csvLine([
      'endpoint_id',
      'hostname',
      'patch_id',
      'severity',
      'known_exploited',
      'state',
      'detected_at',
      'due_at',
      'days_overdue',
    ]);
    for (const b of d.breaches)
      body += csvLine([
        b.endpointId,
        b.hostname,
        b.patchId,
        b.severity,
        b.knownExploited,
        b.state,
        b.detectedAt,
        b.dueAt,
        b.daysOverdue,
      ]);
    section('sla breaches', body);
  }
  if (d.cycles) {
    let body = csvLine([
      'cycle_id',
      'policy',
      'stage',
      'emergency',
      'requested_by',
      'change_number',
      'created_at',
      'completed_at',
      'install_jobs',
      'succeeded',
      'failed',
      'unreachable',
    ]);
    for (const c of d.cycles)
      body += csvLine([
        c.cycleId,
        c.policyName,
        c.stage,
        c.emergency,
        c.requestedBy,
        c.changeNumber,
        c.createdAt,
        c.completedAt,
        c.jobs,
        c.succeeded,
        c.failed,
        c.unreachable,
      ]);
    section('cycle results', body);
  }
  return sections.join('\r\n');
}

// ---------------------------------------------------------------- PDF

const MARGIN = 48;

/** A PDF report: title page figures, chart images (PNG, as in email) and tables. */
export async function reportPdf(d: ReportData, options: { onProgress?: Progress } = {}): Promise<Buffer> {
  const charts: Array<{ spec: ChartSpec }> = [];
  if (d.overview) {
    charts.push({ spec: complianceByGroupChart(d.overview) }, { spec: complianceByOsChart(d.overview) });
    if (d.scope !== 'compliance') charts.push({ spec: severityChart(d.overview) }, { spec: overdueChart(d.overview) });
  }
  if (d.cycles && d.cycles.length > 0) charts.push({ spec: cycleResultsChart(d.cycles) });
  const images: Array<{ title: string; png: Buffer }> = [];
  for (const [i, c] of charts.entries()) {
    options.onProgress?.(i, charts.length, `chart: ${c.spec.title}`);
    images.push({ title: c.spec.title, png: await renderChartPng({ ...c.spec, width: 900, height: 420 }) });
  }

  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    info: { Title: `patchops report (${d.scope})`, Author: 'patchops', CreationDate: new Date(d.generatedAt) },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const width = doc.page.width - MARGIN * 2;

  doc.font('Helvetica-Bold').fontSize(20).text('patchops compliance report');
  doc
    .font('Helvetica')
    .fontSize(10)
    .fillColor('#59636e')
    .text(`Scope: ${d.scope}. Generated ${d.generatedAt}.`)
    .fillColor('#000');
  doc.moveDown();
  if (d.overview) {
    const o = d.overview;
    doc.fontSize(12).text(`Endpoints: ${o.endpoints}   Compliant: ${o.compliant} (${o.compliancePct}%)`);
    doc.text(
      `Outstanding patches: ${Object.values(o.bySeverity).reduce((a, b) => a + b, 0)}   Known exploited: ${o.knownExploited}   Overdue vs SLA: ${o.overdue}   Failed: ${o.failed}`,
    );
    doc.moveDown();
  }
  for (const img of images) {
    const h = (width * 420) / 900;
    if (doc.y + h > doc.page.height - MARGIN) doc.addPage();
    doc.image(img.png, MARGIN, doc.y, { width });
    doc.y += h + 10;
  }

  const tableOut = (title: string, headers: string[], rows: string[][], widths: number[]) => {
    doc.addPage();
    doc.font('Helvetica-Bold').fontSize(14).text(title, MARGIN, MARGIN);
    doc.moveDown(0.5);
    const scale = width / widths.reduce((a, b) => a + b, 0);
    const line = (cells: string[], bold: boolean) => {
      if (doc.y > doc.page.height - MARGIN - 14) doc.addPage();
      const y = doc.y;
      let x = MARGIN;
      doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(8);
      cells.forEach((c, i) => {
        const w = widths[i]! * scale;
        doc.text(c, x, y, { width: w - 4, lineBreak: false, ellipsis: true });
        x += w;
      });
      doc.x = MARGIN;
      doc.y = y + 12;
    };
    line(headers, true);
    for (const r of rows) line(r, false);
  };

  if (d.overview && (d.scope === 'all' || d.scope === 'compliance')) {
    const rows = [
      ...d.overview.byGroup.map((g) => ['group', g.key, String(g.endpoints), String(g.compliant), `${g.pct}%`]),
      ...d.overview.byOs.map((g) => ['os', g.key, String(g.endpoints), String(g.compliant), `${g.pct}%`]),
    ];
    tableOut(
      'Compliance by group and OS',
      ['dimension', 'name', 'endpoints', 'compliant', 'compliance'],
      rows,
      [2, 5, 2, 2, 2],
    );
  }
  if (d.breaches) {
    const shown = d.breaches.slice(0, 2000);
    const title = `SLA breaches (${d.breachesTotal ?? d.breaches.length}${shown.length < (d.breachesTotal ?? 0) ? `, the ${shown.length} most overdue listed` : ''})`;
    tableOut(
      title,
      ['endpoint', 'patch', 'severity', 'KEV', 'state', 'detected', 'due', 'days over'],
      shown.map((b) => [
        b.hostname,
        b.patchId,
        b.severity,
        b.knownExploited ? 'yes' : '',
        b.state,
        b.detectedAt.slice(0, 10),
        b.dueAt.slice(0, 10),
        String(b.daysOverdue),
      ]),
      [4, 4, 2, 1, 2, 2, 2, 1.5],
    );
  }
  if (d.cycles) {
    tableOut(
      'Cycle results',
      ['cycle', 'policy', 'stage', 'change', 'created', 'jobs', 'ok', 'failed', 'unreach.'],
      d.cycles.map((c) => [
        c.cycleId,
        c.policyName,
        c.stage,
        c.changeNumber ?? '',
        c.createdAt.slice(0, 16).replace('T', ' '),
        String(c.jobs),
        String(c.succeeded),
        String(c.failed),
        String(c.unreachable),
      ]),
      [4, 3, 2.5, 2.5, 3, 1.2, 1.2, 1.2, 1.4],
    );
  }
  doc.end();
  return done;
}

export async function renderReport(
  d: ReportData,
  format: ReportFormat,
  options: { onProgress?: Progress } = {},
): Promise<Buffer> {
  return format === 'csv' ? Buffer.from(reportCsv(d), 'utf8') : reportPdf(d, options);
}
